//! The scenarios, and the nemesis that carries each out against the lab while the
//! workload runs: failpoints armed at precise protocol points (crash = abort the
//! process), SIGKILL / SIGSTOP / SIGCONT of any of the processes, and the proxies.

use std::time::{Duration, Instant};

use proto::v1::Protocol;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::chaos::lab::{Lab, Link, Target, signal_of};
use crate::chaos::proxy::Mode;
use crate::chaos::workload::{Op, Spec, Want};

/// One scenario of the catalog.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    /// The protocols it applies to.
    pub protocols: &'static [Protocol],
    /// Must show a violation: it proves the checker can fail.
    pub negative_control: bool,
}

const ALL: &[Protocol] = &[Protocol::TwoPhaseCommit, Protocol::Saga, Protocol::Lease];
const TWO_PC: &[Protocol] = &[Protocol::TwoPhaseCommit];
const LEASE: &[Protocol] = &[Protocol::Lease];

/// Every scenario, in the order the lab runs them.
pub const CATALOG: &[Scenario] = &[
    Scenario {
        name: "kill-inventory-during-prepare",
        about: "inventory-pg aborts with seats locked in an open transaction (2pc prepare, \
                saga hold, lease sell); restarted 1 s later",
        protocols: ALL,
        negative_control: false,
    },
    Scenario {
        name: "kill-orders-after-write-before-reply",
        about: "orders-dynamo aborts after its TransactWriteItems committed, before it \
                answers; restarted 1 s later",
        protocols: ALL,
        negative_control: false,
    },
    Scenario {
        name: "payments-lose-response-after-capture",
        about: "three captures (2pc: commits) are committed and their answers lost",
        protocols: ALL,
        negative_control: false,
    },
    Scenario {
        name: "kill-coordinator-after-prepare-before-decision",
        about: "the coordinator aborts with every participant prepared and no decision \
                logged; restarted 1 s later",
        protocols: TWO_PC,
        negative_control: false,
    },
    Scenario {
        name: "kill-coordinator-after-decision",
        about: "the coordinator aborts right after logging its decision (2pc commit, saga \
                pivot, lease commit); restarted 1 s later",
        protocols: ALL,
        negative_control: false,
    },
    Scenario {
        name: "kill-coordinator-during-compensation",
        about: "with 40% of cards declined, the coordinator aborts as it starts undoing a \
                purchase (2pc abort, saga compensations, lease undo); restarted 1 s later",
        protocols: ALL,
        negative_control: false,
    },
    Scenario {
        name: "kill-postgres-with-prepared-transactions",
        about: "PostgreSQL (every database but DynamoDB's) is SIGKILLed mid-drop — under \
                2pc once prepared transactions exist — and restarted 1.5 s later",
        protocols: ALL,
        negative_control: false,
    },
    Scenario {
        name: "kill-dynamodb",
        about: "DynamoDB Local is SIGKILLed mid-drop and restarted 1.5 s later on its data",
        protocols: ALL,
        negative_control: false,
    },
    Scenario {
        name: "kill-redis-with-leases-held",
        about: "Redis is SIGKILLed while seat leases are held, restarted 1 s later from its \
                append-only file",
        protocols: LEASE,
        negative_control: false,
    },
    Scenario {
        name: "restart-redis-losing-last-second",
        about: "Redis is SIGKILLed and restarted without the last second of its writes \
                (its append-only file fsyncs every second): the fencing counter goes back, \
                yet no token at or below one a seat already saw is handed out again",
        protocols: LEASE,
        negative_control: false,
    },
    Scenario {
        name: "pause-lease-holder-past-lease",
        about: "a coordinator holding seat leases is SIGSTOPped past its lease; a second \
                coordinator then sells the same seats; SIGCONT, and the first one writes",
        protocols: LEASE,
        negative_control: false,
    },
    Scenario {
        name: "pause-lease-holder-past-lease-no-fencing",
        about: "the same with --unsafe-no-fencing: the negative control, which must show a \
                double sale",
        protocols: LEASE,
        negative_control: true,
    },
    Scenario {
        name: "blackhole-participant",
        about: "the link to one participant (picked by the seed) holds every byte for 2 s, \
                then heals",
        protocols: ALL,
        negative_control: false,
    },
    Scenario {
        name: "kill-one-of-three-coordinators",
        about: "three coordinators share the log and serve the fans; one of them is \
                SIGKILLed while it drives purchases and stays down: the other two take its \
                purchases over and finish them",
        protocols: ALL,
        negative_control: false,
    },
    Scenario {
        name: "pause-coordinator-past-ownership",
        about: "two coordinators share the log; one is SIGSTOPped while it drives purchases, \
                for twice its ownership, and the other takes them over; SIGCONT: its late \
                writes are refused and it stops driving them",
        protocols: ALL,
        negative_control: false,
    },
    Scenario {
        name: "second-coordinator-on-the-same-log",
        about: "the coordinator is SIGSTOPped while it drives purchases; a second coordinator \
                is started on the same log and takes them over; SIGCONT",
        protocols: ALL,
        negative_control: false,
    },
    Scenario {
        name: "second-log-shares-participants",
        about: "a second cluster, with a log of its own, sells the same event through the \
                same participants at once, the card network slowed to 300-600 ms: neither \
                commits, aborts or compensates a branch of the other",
        protocols: ALL,
        negative_control: false,
    },
    Scenario {
        name: "random",
        about: "from the seed, a fault at once and then every 0.3-1 s: a random process \
                (of eight) SIGKILLed or SIGSTOPped, or the link to a participant \
                black-holed, slowed or reset, undone 0.5-1.5 s later, while the workload runs",
        protocols: ALL,
        negative_control: false,
    },
];

pub fn find(name: &str) -> Option<&'static Scenario> {
    CATALOG.iter().find(|s| s.name == name)
}

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
    fn note(&mut self, started: Instant, what: impl Into<String>) {
        self.events.push(FaultEvent {
            at_ms: started.elapsed().as_secs_f64() * 1e3,
            what: what.into(),
        });
    }

    /// Records evidence that the fault happened (a note as well).
    fn prove(&mut self, started: Instant, what: impl Into<String>) {
        let what = what.into();
        self.note(started, what.clone());
        self.evidence.push(what);
    }

    /// Marks the start of the fault window (the fault is not proven by it).
    fn begin(&mut self, started: Instant) {
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

    fn heal(&mut self, started: Instant) {
        let now = started.elapsed().as_secs_f64() * 1e3;
        if let (Some(window), Some(wall)) = (&mut self.window_ms, &mut self.window_wall) {
            window.1 = now;
            wall.1 = chrono::Utc::now();
        }
    }
}

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
        "pause-coordinator-past-ownership" => setup.peers = 1,
        "second-log-shares-participants" => {
            setup.rival = true;
            setup.route = both_clusters;
            setup.card_latency = Some((Duration::from_millis(300), Duration::from_millis(600)));
        }
        _ => {}
    }
    setup
}

/// How long a process the nemesis killed stays down.
const DOWN: Duration = Duration::from_millis(1_000);
/// Longest wait for an armed failpoint to crash its process.
const CRASH_WAIT: Duration = Duration::from_secs(20);

/// Carries out the scenario's faults while `workload` runs, and heals.
#[allow(clippy::too_many_arguments)]
pub async fn inject(
    scenario: &Scenario,
    setup: &Setup,
    protocol: Protocol,
    lab: &mut Lab,
    seed: u64,
    spec: &Spec,
    started: Instant,
    workload: &JoinHandle<Vec<Op>>,
) -> anyhow::Result<Faults> {
    let event = spec.event.as_str();
    let mut faults = Faults::default();
    match scenario.name {
        "baseline" => {
            faults.injected = true;
            faults.evidence.push("no fault planned".into());
        }
        "kill-inventory-during-prepare" => {
            let failpoint = setup.failpoint(Target::Inventory);
            crash_and_restart(
                lab,
                Target::Inventory,
                &failpoint,
                started,
                &mut faults,
                workload,
            )
            .await?;
        }
        "kill-orders-after-write-before-reply" => {
            let failpoint = setup.failpoint(Target::Orders);
            crash_and_restart(
                lab,
                Target::Orders,
                &failpoint,
                started,
                &mut faults,
                workload,
            )
            .await?;
        }
        "kill-coordinator-after-prepare-before-decision"
        | "kill-coordinator-after-decision"
        | "kill-coordinator-during-compensation" => {
            let failpoint = setup.failpoint(Target::Coordinator);
            crash_and_restart(
                lab,
                Target::Coordinator,
                &failpoint,
                started,
                &mut faults,
                workload,
            )
            .await?;
        }
        "payments-lose-response-after-capture" => {
            // The failpoint is the fault, armed from the start: it is in force for the
            // whole workload. Payments counts each answer it lost.
            faults.begin(started);
            faults.note(started, "payments is to lose the answers of three captures");
            while !workload.is_finished() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            faults.heal(started);
            let lost = lab
                .payments
                .metric_total("ticketdrop_failpoint_fired_total")
                .await
                .unwrap_or(0);
            if lost > 0 {
                faults.injected = true;
                faults.prove(
                    started,
                    format!(
                        "payments lost the answers of {lost} committed captures \
                         (ticketdrop_failpoint_fired_total)"
                    ),
                );
            } else {
                faults.note(
                    started,
                    "payments lost no answer: the failpoint never fired",
                );
            }
        }
        "kill-postgres-with-prepared-transactions" => {
            // Under 2pc the fault is a kill with prepared transactions; under the others,
            // a kill with purchases in flight.
            let ready = if protocol == Protocol::TwoPhaseCommit {
                wait_for(Duration::from_secs(10), || prepared_exists(lab, event)).await
            } else {
                wait_for(Duration::from_secs(10), || in_flight(lab, event)).await
            };
            let what = if protocol == Protocol::TwoPhaseCommit {
                "prepared transactions"
            } else {
                "purchases in flight"
            };
            if ready {
                faults.prove(started, format!("{what} of the event exist at the kill"));
            } else {
                faults.note(started, format!("no {what} seen within 10 s"));
            }
            let killed = down_and_up(
                lab,
                Target::Postgres,
                Duration::from_millis(1_500),
                started,
                &mut faults,
            )
            .await?;
            faults.injected = ready && killed;
        }
        "kill-dynamodb" => {
            let ready = wait_for(Duration::from_secs(10), || in_flight(lab, event)).await;
            if ready {
                faults.prove(started, "purchases of the event in flight at the kill");
            }
            let killed = down_and_up(
                lab,
                Target::Dynamodb,
                Duration::from_millis(1_500),
                started,
                &mut faults,
            )
            .await?;
            faults.injected = ready && killed;
        }
        "kill-redis-with-leases-held" => {
            let held = wait_for(Duration::from_secs(10), || leases_held(lab, event)).await;
            if held {
                faults.prove(started, "seat leases of the event are held at the kill");
            } else {
                faults.note(started, "no lease seen within 10 s");
            }
            let killed = down_and_up(lab, Target::Redis, DOWN, started, &mut faults).await?;
            faults.injected = held && killed;
        }
        "pause-lease-holder-past-lease" | "pause-lease-holder-past-lease-no-fencing" => {
            pause_lease_holder(lab, spec, started, &mut faults).await?;
        }
        "restart-redis-losing-last-second" => {
            redis_losing_last_second(lab, spec, started, &mut faults, workload).await?;
        }
        "blackhole-participant" => {
            let link = [Link::Inventory, Link::Orders, Link::Payments][(seed % 3) as usize];
            wait_for(Duration::from_secs(10), || in_flight(lab, event)).await;
            faults.begin(started);
            let before = lab.proxy(link).counts();
            lab.proxy(link).set(Mode::Blackhole);
            faults.note(started, format!("black-hole the link to {link:?}"));
            tokio::time::sleep(Duration::from_secs(2)).await;
            let held = lab.proxy(link).counts().held - before.held;
            lab.proxy(link).set(Mode::Pass);
            faults.note(started, format!("the link to {link:?} heals"));
            faults.heal(started);
            if held > 0 {
                faults.injected = true;
                faults.prove(
                    started,
                    format!(
                        "the black hole held bytes of {held} connection direction(s) to {link:?}"
                    ),
                );
            } else {
                faults.note(
                    started,
                    format!("no traffic to {link:?} during the black hole"),
                );
            }
        }
        "kill-one-of-three-coordinators" => {
            kill_one_of_three(lab, event, started, &mut faults, workload).await?;
        }
        "pause-coordinator-past-ownership" => {
            pause_past_ownership(lab, event, started, &mut faults, workload).await?;
        }
        "second-coordinator-on-the-same-log" => {
            second_on_the_same_log(lab, event, started, &mut faults, workload).await?;
        }
        "second-log-shares-participants" => {
            faults.begin(started);
            faults.note(
                started,
                "two clusters sell the event at once; cards take 300-600 ms",
            );
            while !workload.is_finished() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            faults.heal(started);
            let sold = sold_by_each_log(lab, event).await;
            faults.note(
                started,
                format!(
                    "purchases committed by each log: {}",
                    sold.iter()
                        .map(|(log, n)| format!("{log} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            // The fault is real only when both clusters sold.
            faults.injected = sold.len() == 2 && sold.iter().all(|(_, n)| *n > 0);
            if faults.injected {
                faults.evidence.push(format!(
                    "both clusters committed purchases: {}",
                    sold.iter()
                        .map(|(log, n)| format!("{log} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        "random" => random(lab, seed, started, &mut faults, workload).await?,
        other => anyhow::bail!("unknown scenario {other}"),
    }
    Ok(faults)
}

/// Waits for the armed failpoint to crash `target`, keeps it down for [`DOWN`], and
/// starts it again without failpoints. Evidence: the process died of SIGABRT, and its log
/// says which failpoint crashed it.
async fn crash_and_restart(
    lab: &mut Lab,
    target: Target,
    failpoint: &str,
    started: Instant,
    faults: &mut Faults,
    workload: &JoinHandle<Vec<Op>>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + CRASH_WAIT;
    while lab.is_running(target) {
        if Instant::now() > deadline || workload.is_finished() {
            faults.note(
                started,
                format!("{} never reached its failpoint {failpoint}", target.name()),
            );
            return lab.set_failpoints(target, None).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    faults.begin(started);
    let status = lab.exit_status(target);
    let aborted = status.as_ref().and_then(signal_of) == Some(6);
    let logged = lab
        .log(target)
        .lines()
        .any(|line| line.contains("crashing the process") && line.contains(failpoint));
    let how = status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
    if aborted && logged {
        faults.injected = true;
        faults.prove(
            started,
            format!(
                "{} died at failpoint {failpoint} ({how}; its log: crashing the process)",
                target.name()
            ),
        );
    } else {
        faults.note(
            started,
            format!(
                "{} stopped ({how}), but not at failpoint {failpoint} as far as its log says",
                target.name()
            ),
        );
    }
    tokio::time::sleep(DOWN).await;
    lab.set_failpoints(target, None).await?;
    faults.note(started, format!("{} restarted", target.name()));
    faults.heal(started);
    Ok(())
}

/// SIGKILL, `down`, start again; whether the kill is proven (the process died of it).
async fn down_and_up(
    lab: &mut Lab,
    target: Target,
    down: Duration,
    started: Instant,
    faults: &mut Faults,
) -> anyhow::Result<bool> {
    faults.begin(started);
    let killed = lab.kill(target).await?;
    match &killed {
        Some(how) => faults.prove(started, format!("SIGKILL {how}")),
        None => faults.note(
            started,
            format!("{} was not running to be killed", target.name()),
        ),
    }
    tokio::time::sleep(down).await;
    lab.start_again(target).await?;
    faults.note(started, format!("{} started again", target.name()));
    faults.heal(started);
    Ok(killed.is_some())
}

/// Every 0.3-1 s, a random fault (a process killed or paused, a link cut, slowed or
/// reset) undone 0.5-1.5 s later, until the workload ends (at most six faults).
async fn random(
    lab: &mut Lab,
    seed: u64,
    started: Instant,
    faults: &mut Faults,
    workload: &JoinHandle<Vec<Op>>,
) -> anyhow::Result<()> {
    let mut rng = fastrand::Rng::with_seed(seed);
    for fault in 0..6 {
        let pause = if fault == 0 { 50..=200 } else { 300..=1_000 };
        tokio::time::sleep(Duration::from_millis(rng.u64(pause))).await;
        if workload.is_finished() {
            break;
        }
        let target = Target::ALL[rng.usize(..Target::ALL.len())];
        let link = [Link::Inventory, Link::Orders, Link::Payments][rng.usize(..3)];
        let down = Duration::from_millis(rng.u64(500..=1_500));
        faults.begin(started);
        let before = lab.proxy(link).counts();
        match rng.u8(0..10) {
            0..=3 => {
                match lab.kill(target).await? {
                    Some(how) => faults.prove(started, format!("SIGKILL {how}")),
                    None => faults.note(started, format!("{} was not running", target.name())),
                }
                tokio::time::sleep(down).await;
                lab.start_again(target).await?;
                faults.note(started, format!("{} started again", target.name()));
            }
            4..=6 => {
                match lab.pause(target) {
                    Ok(()) => faults.prove(started, format!("SIGSTOP {}: stopped", target.name())),
                    Err(error) => faults.note(
                        started,
                        format!("SIGSTOP {} failed: {error:#}", target.name()),
                    ),
                }
                tokio::time::sleep(down).await;
                lab.resume(target)?;
                faults.note(started, format!("SIGCONT {}", target.name()));
            }
            // The link to one participant: black-holed, slowed, or reset.
            mode => {
                let (set, what) = match mode {
                    7 => (Mode::Blackhole, "black-hole"),
                    8 => (Mode::Delay(Duration::from_millis(300)), "delay by 300 ms"),
                    _ => (Mode::Reset, "reset every connection of"),
                };
                lab.proxy(link).set(set);
                faults.note(started, format!("{what} the link to {link:?}"));
                tokio::time::sleep(down).await;
                let after = lab.proxy(link).counts();
                lab.proxy(link).set(Mode::Pass);
                faults.note(started, format!("the link to {link:?} heals"));
                let touched = (after.held - before.held)
                    + (after.delayed - before.delayed)
                    + (after.reset - before.reset);
                if touched > 0 {
                    faults.prove(
                        started,
                        format!("{what} the link to {link:?}: {touched} connection(s) or chunk(s) affected"),
                    );
                }
            }
        }
        faults.heal(started);
    }
    faults.injected = !faults.evidence.is_empty();
    Ok(())
}

/// Polls `check` every 10 ms for up to `limit`.
async fn wait_for<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

async fn prepared_exists(lab: &Lab, event: &str) -> bool {
    let Ok(sql) = crate::stores::postgres("inventory", &lab.pg.url("inventory")).await else {
        return false;
    };
    sql.query_one(
        "SELECT count(*) FROM txn_prepared p
           JOIN pg_prepared_xacts x ON x.gid = 'td-' || p.txid
          WHERE p.event_id = $1",
        &[&event],
    )
    .await
    .is_ok_and(|row| row.get::<_, i64>(0) > 0)
}

/// Whether a purchase of `event` is in flight, as the lab's log says.
async fn in_flight(lab: &Lab, event: &str) -> bool {
    let Ok(sql) = crate::stores::postgres("coordinator", &lab.pg.url("coordinator")).await else {
        return false;
    };
    sql.query_one(
        "SELECT count(*) FROM transactions
          WHERE event_id = $1 AND state IN ('RUNNING', 'COMMITTING', 'ABORTING')",
        &[&event],
    )
    .await
    .is_ok_and(|row| row.get::<_, i64>(0) > 0)
}

async fn leases_held(lab: &Lab, event: &str) -> bool {
    let Ok(client) = redis::Client::open(lab.redis.url()) else {
        return false;
    };
    let Ok(mut redis) = client.get_multiplexed_async_connection().await else {
        return false;
    };
    redis::cmd("KEYS")
        .arg(format!("lock:seat:{{{event}}}:*"))
        .query_async::<Vec<String>>(&mut redis)
        .await
        .is_ok_and(|keys| !keys.is_empty())
}

/// The lease story, made to happen every run: a purchase of the event's last seat (the
/// one best-available fans reach last, so it is still free) goes to the lab coordinator,
/// which stops 1 s after taking its lease (failpoint); it is SIGSTOPped there, holding the
/// lease. Past the lease, the rival coordinator sells every seat the paused one leased.
/// Then SIGCONT: the paused holder writes on its stale lease — refused by fencing, or,
/// without fencing, a second sale of the seat.
async fn pause_lease_holder(
    lab: &mut Lab,
    spec: &Spec,
    started: Instant,
    faults: &mut Faults,
) -> anyhow::Result<()> {
    let event = spec.event.as_str();
    let coordinators = lab.coordinators()?;
    let (holder, rival) = (coordinators[0].clone(), coordinators[1].clone());
    let seat = format!("A-1-{}", spec.seats.clamp(1, 100));
    let holder_op = {
        let (spec, seat) = (spec.clone(), seat.clone());
        let fan = spec.fans;
        tokio::spawn(async move {
            crate::chaos::workload::purchase(&spec, holder, fan, Want::Seat(seat), 0, started).await
        })
    };
    let holding = wait_for(Duration::from_secs(10), || intent_logged(lab, event)).await;
    if !holding {
        faults.note(
            started,
            format!("no lease intent seen within 10 s (wanted {seat})"),
        );
        faults.ops.push(holder_op.await?);
        return Ok(());
    }
    faults.begin(started);
    lab.pause(Target::Coordinator)?;
    let held = leased_seats(lab, event).await;
    let sold_before = sold_seats(lab, event, &held).await;
    faults.note(
        started,
        format!(
            "SIGSTOP coordinator, its purchases holding leases of 1.5 s on {}",
            held.join(", ")
        ),
    );
    tokio::time::sleep(LEASE_TTL + Duration::from_millis(300)).await;
    for (i, seat) in held.iter().enumerate() {
        let op = crate::chaos::workload::purchase(
            spec,
            rival.clone(),
            spec.fans + 1 + i as u32,
            Want::Seat(seat.clone()),
            1,
            started,
        )
        .await;
        faults.note(
            started,
            format!(
                "the rival sells {seat} past the lease: {}",
                op.completion.summary()
            ),
        );
        faults.ops.push(op);
    }
    // The fault: seats the stopped holder had leased were sold by someone else while it
    // was stopped (the nemesis's own purchase, or a fan's on the rival).
    let sold_after = sold_seats(lab, event, &held).await;
    faults.contested_seats = sold_after
        .into_iter()
        .filter(|seat| !sold_before.contains(seat))
        .collect();
    lab.resume(Target::Coordinator)?;
    faults.note(started, "SIGCONT coordinator: the paused holder writes");
    let op = holder_op.await?;
    faults.note(
        started,
        format!(
            "the paused holder's purchase of {seat}: {}",
            op.completion.summary()
        ),
    );
    faults.ops.push(op);
    faults.heal(started);
    if !faults.contested_seats.is_empty() {
        faults.injected = true;
        let contested = faults.contested_seats.join(", ");
        faults.prove(
            started,
            format!(
                "seat(s) {contested}, leased by the stopped holder, were sold by another \
                 buyer while it was stopped"
            ),
        );
    }
    Ok(())
}

/// Which of `seats` inventory has SOLD now.
async fn sold_seats(lab: &Lab, event: &str, seats: &[String]) -> Vec<String> {
    let Ok(sql) = crate::stores::postgres("inventory", &lab.pg.url("inventory")).await else {
        return Vec::new();
    };
    sql.query(
        "SELECT seat_id FROM seats WHERE event_id = $1 AND seat_id = ANY($2) AND status = 'SOLD'",
        &[&event, &seats],
    )
    .await
    .map(|rows| rows.iter().map(|row| row.get(0)).collect())
    .unwrap_or_default()
}

/// The lab coordinator's lease timing (its `--lease-ttl-ms`).
const LEASE_TTL: Duration = Duration::from_millis(1_500);

/// The seats the lab coordinator's running lease purchases have leased.
async fn leased_seats(lab: &Lab, event: &str) -> Vec<String> {
    let Ok(sql) = crate::stores::postgres("coordinator", &lab.pg.url("coordinator")).await else {
        return Vec::new();
    };
    let mut seats: Vec<String> = sql
        .query(
            "SELECT leased_seats FROM transactions
              WHERE event_id = $1 AND fencing_token IS NOT NULL AND state = 'RUNNING'",
            &[&event],
        )
        .await
        .map(|rows| {
            rows.iter()
                .flat_map(|row| row.get::<_, Option<Vec<String>>>(0).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    seats.sort();
    seats.dedup();
    seats
}

async fn intent_logged(lab: &Lab, event: &str) -> bool {
    let Ok(sql) = crate::stores::postgres("coordinator", &lab.pg.url("coordinator")).await else {
        return false;
    };
    sql.query_one(
        "SELECT count(*) FROM transactions
          WHERE event_id = $1 AND fencing_token IS NOT NULL AND state = 'RUNNING'",
        &[&event],
    )
    .await
    .is_ok_and(|row| row.get::<_, i64>(0) > 0)
}

/// The lab's log, where the ownership of every purchase is recorded.
async fn lab_log(lab: &Lab) -> Option<tokio_postgres::Client> {
    crate::stores::postgres("coordinator", &lab.pg.url("coordinator"))
        .await
        .ok()
}

/// Purchases of `event` still running and owned by the coordinator listening on `addr`
/// (a log without owners, from before coordinators shared logs: any running purchase).
async fn owned_running(lab: &Lab, event: &str, addr: &str) -> i64 {
    let Some(log) = lab_log(lab).await else {
        return 0;
    };
    let owned = log
        .query_one(
            "SELECT count(*) FROM transactions t JOIN coordinators c ON c.instance_id = t.owner
              WHERE t.event_id = $1 AND c.listen = $2 AND t.state = 'RUNNING'",
            &[&event, &addr],
        )
        .await;
    match owned {
        Ok(row) => row.get(0),
        Err(_) => log
            .query_one(
                "SELECT count(*) FROM transactions WHERE event_id = $1 AND state = 'RUNNING'",
                &[&event],
            )
            .await
            .map_or(0, |row| row.get(0)),
    }
}

/// What the log says happened to the purchases begun by the coordinator on `addr`: how
/// many another coordinator took over, the milliseconds from `since` to each takeover,
/// and how many of its writes the log refused once it had lost them.
struct Takeovers {
    taken_over: usize,
    after_ms: Vec<f64>,
    refused: i64,
}

async fn takeovers(
    lab: &Lab,
    event: &str,
    addr: &str,
    since: chrono::DateTime<chrono::Utc>,
) -> Takeovers {
    let mut found = Takeovers {
        taken_over: 0,
        after_ms: Vec::new(),
        refused: 0,
    };
    let Some(log) = lab_log(lab).await else {
        return found;
    };
    if let Ok(rows) = log
        .query(
            "SELECT (extract(epoch FROM min(e.at) - $3) * 1000)::float8
               FROM ownership_events e
               JOIN transactions t USING (txid)
               JOIN coordinators c ON c.instance_id = t.began_by
              WHERE t.event_id = $1 AND c.listen = $2 AND e.event = 'takeover'
                AND e.instance_id <> t.began_by
              GROUP BY e.txid",
            &[&event, &addr, &since],
        )
        .await
    {
        found.taken_over = rows.len();
        found.after_ms = rows.iter().map(|row| row.get(0)).collect();
    }
    if let Ok(row) = log
        .query_one(
            "SELECT count(*) FROM ownership_events e
               JOIN transactions t USING (txid)
               JOIN coordinators c ON c.instance_id = e.instance_id
              WHERE t.event_id = $1 AND c.listen = $2 AND e.event = 'refused'",
            &[&event, &addr],
        )
        .await
    {
        found.refused = row.get(0);
    }
    found
}

/// Waits (up to 10 s) until the coordinator on `addr` drives a purchase of `event`; false
/// when it never did.
async fn until_driving(lab: &Lab, event: &str, addr: &str) -> bool {
    wait_for(Duration::from_secs(10), || async {
        owned_running(lab, event, addr).await > 0
    })
    .await
}

fn p50_p99(values: &[f64]) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| {
        sorted
            .get(((sorted.len().saturating_sub(1)) as f64 * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    format!("{:.0} / {:.0} ms", at(0.5), at(0.99))
}

/// Three coordinators on one log; the third is SIGKILLed while it drives a purchase and
/// stays down until the lab heals. Evidence: the signal it died of, and its purchases
/// taken over by the others (with the time from the kill to each takeover).
async fn kill_one_of_three(
    lab: &mut Lab,
    event: &str,
    started: Instant,
    faults: &mut Faults,
    workload: &JoinHandle<Vec<Op>>,
) -> anyhow::Result<()> {
    let victim = lab
        .peers
        .len()
        .checked_sub(1)
        .expect("two peers were started");
    let addr = lab.peers[victim].addr().to_string();
    let driving = until_driving(lab, event, &addr).await;
    faults.begin(started);
    let killed_at = chrono::Utc::now();
    let status = lab.peers[victim].kill().await?;
    faults.note(
        started,
        format!(
            "SIGKILL the coordinator on {addr}{}: {status}",
            if driving { ", driving purchases" } else { "" }
        ),
    );
    while !workload.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    faults.heal(started);
    let seen = wait_for(Duration::from_secs(10), || async {
        takeovers(lab, event, &addr, killed_at).await.taken_over > 0
    })
    .await;
    let found = takeovers(lab, event, &addr, killed_at).await;
    faults.note(
        started,
        format!(
            "{} of its purchases taken over by the others, {} after the kill (p50 / p99)",
            found.taken_over,
            p50_p99(&found.after_ms)
        ),
    );
    faults.takeover_ms = found.after_ms;
    faults.injected = driving && seen && status_is_sigkill(&status);
    if faults.injected {
        faults.evidence.push(format!(
            "the coordinator on {addr} died of SIGKILL while driving purchases; {} of them \
             taken over",
            found.taken_over
        ));
    }
    Ok(())
}

fn status_is_sigkill(status: &std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

/// Two coordinators on one log; the lab's own is SIGSTOPped while it drives a purchase,
/// for twice its ownership; the peer takes its purchases over; SIGCONT. Evidence: the
/// takeovers, and the log's refusal of the woken coordinator's writes.
async fn pause_past_ownership(
    lab: &mut Lab,
    event: &str,
    started: Instant,
    faults: &mut Faults,
    workload: &JoinHandle<Vec<Op>>,
) -> anyhow::Result<()> {
    let addr = lab.coordinator.addr().to_string();
    let driving = until_driving(lab, event, &addr).await;
    faults.begin(started);
    let paused_at = chrono::Utc::now();
    lab.pause(Target::Coordinator)?;
    faults.note(
        started,
        format!(
            "SIGSTOP the coordinator on {addr}{}",
            if driving { ", driving purchases" } else { "" }
        ),
    );
    let taken = wait_for(crate::chaos::lab::OWNERSHIP_TTL * 4, || async {
        takeovers(lab, event, &addr, paused_at).await.taken_over > 0
    })
    .await;
    tokio::time::sleep(crate::chaos::lab::OWNERSHIP_TTL).await;
    lab.resume(Target::Coordinator)?;
    faults.note(started, "SIGCONT: the paused coordinator wakes");
    while !workload.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    faults.heal(started);
    let refused = wait_for(Duration::from_secs(10), || async {
        takeovers(lab, event, &addr, paused_at).await.refused > 0
    })
    .await;
    let found = takeovers(lab, event, &addr, paused_at).await;
    faults.note(
        started,
        format!(
            "{} of its purchases taken over ({} after the SIGSTOP, p50 / p99); {} of its \
             writes refused after it woke",
            found.taken_over,
            p50_p99(&found.after_ms),
            found.refused
        ),
    );
    faults.takeover_ms = found.after_ms;
    faults.injected = driving && taken && refused;
    if faults.injected {
        faults.evidence.push(format!(
            "the coordinator on {addr}, stopped while driving purchases, had {} taken over \
             and {} of its late writes refused by the log",
            found.taken_over, found.refused
        ));
    }
    Ok(())
}

/// The coordinator is SIGSTOPped while it drives a purchase; a second coordinator starts
/// on the same log and takes its purchases over; SIGCONT. Evidence as above.
async fn second_on_the_same_log(
    lab: &mut Lab,
    event: &str,
    started: Instant,
    faults: &mut Faults,
    workload: &JoinHandle<Vec<Op>>,
) -> anyhow::Result<()> {
    let addr = lab.coordinator.addr().to_string();
    let driving = until_driving(lab, event, &addr).await;
    faults.begin(started);
    let paused_at = chrono::Utc::now();
    lab.pause(Target::Coordinator)?;
    faults.note(
        started,
        format!(
            "SIGSTOP the coordinator on {addr}{}",
            if driving { ", driving purchases" } else { "" }
        ),
    );
    let peer = lab.start_peer().await?;
    faults.note(
        started,
        format!(
            "a second coordinator starts on the same log ({})",
            lab.peers[peer].addr()
        ),
    );
    let taken = wait_for(crate::chaos::lab::OWNERSHIP_TTL * 4, || async {
        takeovers(lab, event, &addr, paused_at).await.taken_over > 0
    })
    .await;
    lab.resume(Target::Coordinator)?;
    faults.note(started, "SIGCONT: the first coordinator wakes");
    while !workload.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    faults.heal(started);
    let found = takeovers(lab, event, &addr, paused_at).await;
    faults.note(
        started,
        format!(
            "{} of its purchases taken over by the second ({} after the SIGSTOP, p50 / p99); \
             {} of its writes refused after it woke",
            found.taken_over,
            p50_p99(&found.after_ms),
            found.refused
        ),
    );
    faults.takeover_ms = found.after_ms;
    faults.injected = driving && taken;
    if faults.injected {
        faults.evidence.push(format!(
            "the coordinator on {addr}, stopped while driving purchases, had {} taken over by \
             the second one",
            found.taken_over
        ));
    }
    Ok(())
}

/// Committed purchases of `event` in each log.
async fn sold_by_each_log(lab: &Lab, event: &str) -> Vec<(&'static str, i64)> {
    let mut sold = Vec::new();
    for db in lab.logs() {
        let Ok(log) = crate::stores::postgres("coordinator", &lab.pg.url(db)).await else {
            continue;
        };
        if let Ok(row) = log
            .query_one(
                "SELECT count(*) FROM transactions WHERE event_id = $1 AND state = 'COMMITTED'",
                &[&event],
            )
            .await
        {
            sold.push((db, row.get(0)));
        }
    }
    sold
}

/// The highest fencing token any seat of `event` has seen (inventory's own record).
async fn max_seat_token(lab: &Lab, event: &str) -> Option<i64> {
    let sql = crate::stores::postgres("inventory", &lab.pg.url("inventory"))
        .await
        .ok()?;
    sql.query_one(
        "SELECT coalesce(max(fencing_token), 0) FROM seats WHERE event_id = $1",
        &[&event],
    )
    .await
    .ok()
    .map(|row| row.get(0))
}

/// The event's fencing counter in Redis now.
async fn fencing_counter(lab: &Lab, event: &str) -> Option<i64> {
    let client = redis::Client::open(lab.redis.url()).ok()?;
    let mut redis = client.get_multiplexed_async_connection().await.ok()?;
    redis::cmd("GET")
        .arg(format!("fencing:{{{event}}}"))
        .query_async::<Option<i64>>(&mut redis)
        .await
        .ok()
        .map(Option::unwrap_or_default)
}

/// Redis loses its last writes: a copy of its append-only file is taken while lease
/// purchases run, they go on for half a second (within the second `appendfsync everysec`
/// may lose), then Redis is SIGKILLed and restarted from the copy, and the nemesis buys
/// the event's last seats itself (a token is taken whether or not the seat is still
/// free). Evidence: the counter after the restart is below the highest token a seat had
/// already seen, and tokens were handed out after it. The check: every one of them is
/// above that highest token.
async fn redis_losing_last_second(
    lab: &mut Lab,
    spec: &Spec,
    started: Instant,
    faults: &mut Faults,
    workload: &JoinHandle<Vec<Op>>,
) -> anyhow::Result<()> {
    let event = spec.event.as_str();
    let leasing = wait_for(Duration::from_secs(10), || async {
        max_seat_token(lab, event).await.unwrap_or(0) > 0
    })
    .await;
    faults.begin(started);
    let snapshot = lab.redis.snapshot()?;
    faults.note(started, "copy of Redis's append-only file taken");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen_before = max_seat_token(lab, event).await.unwrap_or(0);
    lab.redis.restart_from(&snapshot)?;
    let restarted_at = chrono::Utc::now();
    let counter_after = fencing_counter(lab, event).await.unwrap_or(0);
    faults.note(
        started,
        format!(
            "SIGKILL Redis; restarted from the copy: the fencing counter is {counter_after}, \
             the seats had seen tokens up to {seen_before}"
        ),
    );
    let lab_coordinator = lab.coordinators()?[0].clone();
    for i in 0..3 {
        let seat = format!("A-1-{}", spec.seats.clamp(1, 100).saturating_sub(i).max(1));
        let op = crate::chaos::workload::purchase(
            spec,
            lab_coordinator.clone(),
            spec.fans + 10 + i,
            Want::Seat(seat.clone()),
            0,
            started,
        )
        .await;
        faults.note(
            started,
            format!(
                "after the restart, a purchase of {seat}: {}",
                op.completion.summary()
            ),
        );
        faults.ops.push(op);
    }
    while !workload.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    faults.heal(started);
    // Every token handed out after the restart, from the lab's log.
    let log = crate::stores::postgres("coordinator", &lab.pg.url("coordinator")).await?;
    let reissued: Vec<(String, i64)> = log
        .query(
            "SELECT txid, fencing_token FROM transactions
              WHERE event_id = $1 AND started_at > $2 AND fencing_token IS NOT NULL
                AND fencing_token <= $3
              ORDER BY fencing_token",
            &[&event, &restarted_at, &seen_before],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let issued_after: i64 = log
        .query_one(
            "SELECT count(*) FROM transactions
              WHERE event_id = $1 AND started_at > $2 AND fencing_token IS NOT NULL",
            &[&event, &restarted_at],
        )
        .await?
        .get(0);
    faults.note(
        started,
        format!(
            "{issued_after} lease tokens handed out after the restart, {} of them at or \
             below {seen_before}",
            reissued.len()
        ),
    );
    if !reissued.is_empty() {
        faults.violations.push(crate::chaos::checker::Violation {
            check: "fencing".to_owned(),
            kind: "token_reissued".to_owned(),
            ids: reissued.iter().map(|(txid, _)| txid.clone()).collect(),
            detail: format!(
                "tokens {} were handed out after Redis restarted, though the seats had seen \
                 tokens up to {seen_before}",
                reissued
                    .iter()
                    .map(|(_, token)| token.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            timeline: Vec::new(),
        });
    }
    // The fault happened: tokens were in use, and the counter really went back.
    faults.injected = leasing && counter_after < seen_before && issued_after > 0;
    if faults.injected {
        faults.evidence.push(format!(
            "Redis restarted with its fencing counter at {counter_after}, below the {seen_before} \
             the seats had seen; {issued_after} tokens handed out after"
        ));
    }
    Ok(())
}
