//! How each scenario's run is set up before the workload starts: failpoints armed,
//! more coordinators, the card network slowed, who the fans call.

use std::time::Duration;

use proto::v1::Protocol;

use super::Scenario;
use crate::chaos::lab::Target;
use crate::chaos::workload::Want;

/// How a run of a scenario is set up before the workload starts.
pub struct Setup {
    /// Failpoints per service, set with `FAILPOINTS` (the service restarts).
    pub failpoints: Vec<(Target, String)>,
    /// Decline this share of cards.
    pub decline_rate: Option<f64>,
    /// A second cluster (a coordinator with a log of its own), and who calls it.
    pub rival: bool,
    /// Coordinators on the lab's log beside its own, serving fans from the start.
    pub peers: usize,
    /// The card network's extra latency.
    pub card_latency: Option<(Duration, Duration)>,
    pub unfenced: bool,
    pub route: crate::chaos::workload::Route,
}

impl Setup {
    /// The name of the failpoint the scenario arms in `target` ("" when none).
    pub fn failpoint(&self, target: Target) -> String {
        self.failpoints
            .iter()
            .find(|(t, _)| *t == target)
            .and_then(|(_, spec)| spec.split('=').next())
            .unwrap_or_default()
            .to_owned()
    }
}

fn lab_coordinator(_: u32, _: &Want) -> usize {
    0
}

/// In the pause scenario: the fans wanting a hot seat call the coordinator that will be
/// paused, the best-available fans the rival.
fn paused_and_rival(_: u32, want: &Want) -> usize {
    match want {
        Want::Seat(_) => 0,
        Want::BestAvailable => 1,
    }
}

/// Two clusters sell at once: every other fan calls the rival.
fn both_clusters(fan: u32, _: &Want) -> usize {
    (fan % 2) as usize
}

/// The failpoint at "the protocol's step" for each protocol.
fn point(protocol: Protocol, two_pc: &str, saga: &str, lease: &str) -> String {
    match protocol {
        Protocol::Saga => saga,
        Protocol::Lease => lease,
        _ => two_pc,
    }
    .to_owned()
}

/// Crash once, on the `hits`-th time the point is reached.
fn once_after(point: &str, hits: u32) -> String {
    format!("{point}={}*off->1*return->off", hits.saturating_sub(1))
}

pub fn setup(scenario: &Scenario, protocol: Protocol) -> Setup {
    let mut setup = Setup {
        failpoints: Vec::new(),
        decline_rate: None,
        rival: false,
        peers: 0,
        card_latency: None,
        unfenced: false,
        route: lab_coordinator,
    };
    match scenario.name {
        "kill-inventory-during-prepare" => setup.failpoints.push((
            Target::Inventory,
            once_after(
                &point(
                    protocol,
                    "inventory::prepare",
                    "inventory::hold",
                    "inventory::sell",
                ),
                4,
            ),
        )),
        "kill-orders-after-write-before-reply" => setup
            .failpoints
            .push((Target::Orders, once_after("orders::after_write", 4))),
        "payments-lose-response-after-capture" => setup.failpoints.push((
            Target::Payments,
            "payments::lose_capture_response=2*off->3*return->off".into(),
        )),
        "kill-coordinator-after-prepare-before-decision" => setup
            .failpoints
            .push((Target::Coordinator, once_after("2pc::before_decision", 4))),
        "kill-coordinator-after-decision" => setup.failpoints.push((
            Target::Coordinator,
            once_after(
                &point(
                    protocol,
                    "2pc::after_decision",
                    "saga::after_decision",
                    "lease::after_decision",
                ),
                4,
            ),
        )),
        "kill-coordinator-during-compensation" => {
            setup.decline_rate = Some(0.4);
            setup.failpoints.push((
                Target::Coordinator,
                once_after(
                    &point(
                        protocol,
                        "2pc::during_abort",
                        "saga::during_compensation",
                        "lease::during_undo",
                    ),
                    2,
                ),
            ));
        }
        "pause-lease-holder-past-lease" | "pause-lease-holder-past-lease-no-fencing" => {
            setup.rival = true;
            setup.route = paused_and_rival;
            setup.unfenced = scenario.negative_control;
            // No declined card spoils the rival's sale of the held seats.
            setup.decline_rate = Some(0.0);
            // The paused holder's purchases stop 1 s between taking their leases and
            // writing: the SIGSTOP below lands inside that window.
            setup.failpoints.push((
                Target::Coordinator,
                "lease::after_acquire=sleep(1000)".into(),
            ));
        }
        "kill-one-of-three-coordinators" => setup.peers = 2,
        "pause-coordinator-past-ownership" | "partition-coordinator-from-log" => setup.peers = 1,
        "second-log-shares-participants" => {
            setup.rival = true;
            setup.route = both_clusters;
            setup.card_latency = Some((Duration::from_millis(300), Duration::from_millis(600)));
        }
        _ => {}
    }
    setup
}
