//! What the nemesis did during one run, and what proves it.

use std::time::Instant;

use serde::Serialize;

use crate::chaos::workload::Op;

/// One thing the nemesis did, at a time relative to the workload's start.
#[derive(Debug, Clone, Serialize)]
pub struct FaultEvent {
    pub at_ms: f64,
    pub what: String,
}

/// What the nemesis did during one run.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Faults {
    pub events: Vec<FaultEvent>,
    /// When the first fault began and when the last one healed (ms after the start).
    pub window_ms: Option<(f64, f64)>,
    /// The same, on the wall clock, for the log's timestamps.
    #[serde(skip)]
    pub window_wall: Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
    /// What shows that the planned fault happened: an exit signal, a failpoint's count,
    /// a prepared branch or lease seen, bytes held by a black hole, a takeover logged.
    pub evidence: Vec<String>,
    /// Whether the evidence the scenario requires was seen; without it the row is "fault
    /// not injected" and fails.
    pub injected: bool,
    /// The seats a paused lease holder had leased and the rival then sold (the pause
    /// scenarios): the negative control's double sale must name one of them.
    pub contested_seats: Vec<String>,
    /// Purchases the nemesis made itself (the rival's sale in the pause scenario), part
    /// of the history like every fan's.
    #[serde(skip)]
    pub ops: Vec<Op>,
    /// Scenarios that stop a coordinator: milliseconds from the fault to each takeover
    /// of its purchases by another coordinator.
    pub takeover_ms: Vec<f64>,
    /// What the nemesis itself saw go wrong (beside what the checker finds in the stores).
    #[serde(skip)]
    pub violations: Vec<crate::chaos::checker::Violation>,
}

impl Faults {
    pub(super) fn note(&mut self, started: Instant, what: impl Into<String>) {
        self.events.push(FaultEvent {
            at_ms: started.elapsed().as_secs_f64() * 1e3,
            what: what.into(),
        });
    }

    /// Records evidence that the fault happened (a note as well).
    pub(super) fn prove(&mut self, started: Instant, what: impl Into<String>) {
        let what = what.into();
        self.note(started, what.clone());
        self.evidence.push(what);
    }

    /// Marks the start of the fault window (the fault is not proven by it).
    pub(super) fn begin(&mut self, started: Instant) {
        let now = started.elapsed().as_secs_f64() * 1e3;
        let wall = chrono::Utc::now();
        match (&mut self.window_ms, &mut self.window_wall) {
            (Some(_), Some(_)) => {}
            _ => {
                self.window_ms = Some((now, now));
                self.window_wall = Some((wall, wall));
            }
        }
    }

    pub(super) fn heal(&mut self, started: Instant) {
        let now = started.elapsed().as_secs_f64() * 1e3;
        if let (Some(window), Some(wall)) = (&mut self.window_ms, &mut self.window_wall) {
            window.1 = now;
            wall.1 = chrono::Utc::now();
        }
    }
}
