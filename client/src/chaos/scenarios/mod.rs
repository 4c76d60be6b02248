//! The scenarios, and the nemesis that carries each out against the lab while the
//! workload runs: failpoints armed at precise protocol points (crash = abort the
//! process), SIGKILL / SIGSTOP / SIGCONT of any of the processes, and the proxies.
//!
//! | module | what it holds |
//! | --- | --- |
//! | `mod.rs` | the catalog, and which nemesis carries out each scenario |
//! | `setup.rs` | what a run arms before its workload starts |
//! | `faults.rs` | what the nemesis did, and the evidence that it happened |
//! | `crashes.rs` | services crashed at failpoints, stores SIGKILLed, answers lost |
//! | `links.rs` | the proxies' black holes, and the random nemesis |
//! | `leases.rs` | a lease holder paused past its lease, with and without fencing |
//! | `ownership.rs` | coordinators sharing a log: killed, paused, taken over; two logs |
//! | `redis.rs` | Redis restarted without its last second of writes |
//! | `partitions.rs` | real partitions between the lab's hosts, cut with iptables |

mod crashes;
mod faults;
mod leases;
mod links;
mod ownership;
mod partitions;
mod redis;
mod setup;

use std::time::{Duration, Instant};

use proto::v1::Protocol;
use tokio::task::JoinHandle;

use crate::chaos::hosts::Topology;
use crate::chaos::lab::{Lab, Target};
use crate::chaos::workload::{Op, Spec};
pub use faults::{FaultEvent, Faults};
pub use setup::{Setup, setup};

/// One scenario of the catalog.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    /// The protocols it applies to.
    pub protocols: &'static [Protocol],
    /// Must show a violation: it proves the checker can fail.
    pub negative_control: bool,
    /// Where the lab runs it: on loopback with proxies, or on hosts of their own.
    pub topology: Topology,
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
        topology: Topology::Loopback,
    },
    Scenario {
        name: "kill-orders-after-write-before-reply",
        about: "orders-dynamo aborts after its TransactWriteItems committed, before it \
                answers; restarted 1 s later",
        protocols: ALL,
        negative_control: false,
        topology: Topology::Loopback,
    },
    Scenario {
        name: "payments-lose-response-after-capture",
        about: "three captures (2pc: commits) are committed and their answers lost",
        protocols: ALL,
        negative_control: false,
        topology: Topology::Loopback,
    },
    Scenario {
        name: "kill-coordinator-after-prepare-before-decision",
        about: "the coordinator aborts with every participant prepared and no decision \
                logged; restarted 1 s later",
        protocols: TWO_PC,
        negative_control: false,
        topology: Topology::Loopback,
    },
    Scenario {
        name: "kill-coordinator-after-decision",
        about: "the coordinator aborts right after logging its decision (2pc commit, saga \
                pivot, lease commit); restarted 1 s later",
        protocols: ALL,
        negative_control: false,
        topology: Topology::Loopback,
    },
    Scenario {
        name: "kill-coordinator-during-compensation",
        about: "with 40% of cards declined, the coordinator aborts as it starts undoing a \
                purchase (2pc abort, saga compensations, lease undo); restarted 1 s later",
        protocols: ALL,
        negative_control: false,
        topology: Topology::Loopback,
    },
    Scenario {
        name: "kill-postgres-with-prepared-transactions",
        about: "PostgreSQL (every database but DynamoDB's) is SIGKILLed mid-drop — under \
                2pc once prepared transactions exist — and restarted 1.5 s later",
        protocols: ALL,
        negative_control: false,
        topology: Topology::Loopback,
    },
    Scenario {
        name: "kill-dynamodb",
        about: "DynamoDB Local is SIGKILLed mid-drop and restarted 1.5 s later on its data",
        protocols: ALL,
        negative_control: false,
        topology: Topology::Loopback,
    },
    Scenario {
        name: "kill-redis-with-leases-held",
        about: "Redis is SIGKILLed while seat leases are held, restarted 1 s later from its \
                append-only file",
        protocols: LEASE,
        negative_control: false,
        topology: Topology::Loopback,
    },
    Scenario {
        name: "restart-redis-losing-last-second",
        about: "Redis is SIGKILLed and restarted without the last second of its writes \
                (its append-only file fsyncs every second): the fencing counter goes back, \
                yet no token at or below one a seat already saw is handed out again",
        protocols: LEASE,
        negative_control: false,
        topology: Topology::Loopback,
    },
    Scenario {
        name: "pause-lease-holder-past-lease",
        about: "a coordinator holding seat leases is SIGSTOPped past its lease; a second \
                coordinator then sells the same seats; SIGCONT, and the first one writes",
        protocols: LEASE,
        negative_control: false,
        topology: Topology::Loopback,
    },
    Scenario {
        name: "pause-lease-holder-past-lease-no-fencing",
        about: "the same with --unsafe-no-fencing: the negative control, which must show a \
                double sale",
        protocols: LEASE,
        negative_control: true,
        topology: Topology::Loopback,
    },
    Scenario {
        name: "blackhole-participant",
        about: "the link to one participant (picked by the seed) holds every byte for 2 s, \
                then heals",
        protocols: ALL,
        negative_control: false,
        topology: Topology::Loopback,
    },
    Scenario {
        name: "kill-one-of-three-coordinators",
        about: "three coordinators share the log and serve the fans; one of them is \
                SIGKILLed while it drives purchases and stays down: the other two take its \
                purchases over and finish them",
        protocols: ALL,
        negative_control: false,
        topology: Topology::Loopback,
    },
    Scenario {
        name: "pause-coordinator-past-ownership",
        about: "two coordinators share the log; one is SIGSTOPped while it drives purchases, \
                for twice its ownership, and the other takes them over; SIGCONT: its late \
                writes are refused and it stops driving them",
        protocols: ALL,
        negative_control: false,
        topology: Topology::Loopback,
    },
    Scenario {
        name: "second-coordinator-on-the-same-log",
        about: "the coordinator is SIGSTOPped while it drives purchases; a second coordinator \
                is started on the same log and takes them over; SIGCONT",
        protocols: ALL,
        negative_control: false,
        topology: Topology::Loopback,
    },
    Scenario {
        name: "second-log-shares-participants",
        about: "a second cluster, with a log of its own, sells the same event through the \
                same participants at once, the card network slowed to 300-600 ms: neither \
                commits, aborts or compensates a branch of the other",
        protocols: ALL,
        negative_control: false,
        topology: Topology::Loopback,
    },
    Scenario {
        name: "random",
        about: "from the seed, a fault at once and then every 0.3-1 s: a random process \
                (of eight) SIGKILLed or SIGSTOPped, or the link to a participant \
                black-holed, slowed or reset, undone 0.5-1.5 s later, while the workload runs",
        protocols: ALL,
        negative_control: false,
        topology: Topology::Loopback,
    },
    Scenario {
        name: "partition-inventory-host",
        about: "on hosts of their own: the inventory-pg host is cut off from every other \
                (iptables drops all it sends and receives but on loopback) for 3 s, with \
                purchases in flight",
        protocols: ALL,
        negative_control: false,
        topology: Topology::Hosts,
    },
    Scenario {
        name: "partition-coordinator-from-payments",
        about: "on hosts of their own: the coordinator and payments cannot reach each other \
                for 3 s (each one's packets to the other dropped), while both still reach \
                PostgreSQL, the coordinator its log",
        protocols: ALL,
        negative_control: false,
        topology: Topology::Hosts,
    },
    Scenario {
        name: "one-way-partition-payments-answers",
        about: "on hosts of their own: for 3 s what payments sends the coordinator is \
                dropped, the other direction passes: calls arrive and are applied, their \
                answers are lost",
        protocols: ALL,
        negative_control: false,
        topology: Topology::Hosts,
    },
    Scenario {
        name: "partition-coordinator-from-log",
        about: "on hosts of their own, two coordinators share the log; the one driving \
                purchases is cut from PostgreSQL (its packets to the log dropped) until the \
                other has taken its purchases over, 3 s at least; it still reaches the \
                participants and the fans",
        protocols: ALL,
        negative_control: false,
        topology: Topology::Hosts,
    },
];

pub fn find(name: &str) -> Option<&'static Scenario> {
    CATALOG.iter().find(|s| s.name == name)
}

/// How long a process the nemesis killed stays down.
pub(super) const DOWN: Duration = Duration::from_millis(1_000);
/// Longest wait for an armed failpoint to crash its process.
pub(super) const CRASH_WAIT: Duration = Duration::from_secs(20);

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
            crashes::crash_and_restart(
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
            crashes::crash_and_restart(
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
            crashes::crash_and_restart(
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
            crashes::lose_capture_answers(lab, started, &mut faults, workload).await?;
        }
        "kill-postgres-with-prepared-transactions" => {
            crashes::kill_postgres(lab, protocol, event, started, &mut faults).await?;
        }
        "kill-dynamodb" => crashes::kill_dynamodb(lab, event, started, &mut faults).await?,
        "kill-redis-with-leases-held" => {
            crashes::kill_redis(lab, event, started, &mut faults).await?;
        }
        "pause-lease-holder-past-lease" | "pause-lease-holder-past-lease-no-fencing" => {
            leases::pause_lease_holder(lab, spec, started, &mut faults).await?;
        }
        "restart-redis-losing-last-second" => {
            redis::redis_losing_last_second(lab, spec, started, &mut faults, workload).await?;
        }
        "blackhole-participant" => {
            links::blackhole_participant(lab, seed, event, started, &mut faults).await?;
        }
        "kill-one-of-three-coordinators" => {
            ownership::kill_one_of_three(lab, event, started, &mut faults, workload).await?;
        }
        "pause-coordinator-past-ownership" => {
            ownership::pause_past_ownership(lab, event, started, &mut faults, workload).await?;
        }
        "second-coordinator-on-the-same-log" => {
            ownership::second_on_the_same_log(lab, event, started, &mut faults, workload).await?;
        }
        "second-log-shares-participants" => {
            ownership::second_log(lab, event, started, &mut faults, workload).await?;
        }
        "partition-inventory-host" => {
            partitions::inventory_host(lab, event, started, &mut faults).await?;
        }
        "partition-coordinator-from-payments" => {
            partitions::coordinator_from_payments(lab, event, started, &mut faults).await?;
        }
        "one-way-partition-payments-answers" => {
            partitions::payments_answers_lost(lab, event, started, &mut faults).await?;
        }
        "partition-coordinator-from-log" => {
            partitions::coordinator_from_log(lab, event, started, &mut faults, workload).await?;
        }
        "random" => links::random(lab, seed, started, &mut faults, workload).await?,
        other => anyhow::bail!("unknown scenario {other}"),
    }
    Ok(faults)
}

/// Polls `check` every 10 ms for up to `limit`.
pub(super) async fn wait_for<F, Fut>(limit: Duration, mut check: F) -> bool
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

/// Whether a purchase of `event` is in flight, as the lab's log says.
pub(super) async fn in_flight(lab: &Lab, event: &str) -> bool {
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

/// The lab's log, where the ownership of every purchase is recorded.
pub(super) async fn lab_log(lab: &Lab) -> Option<tokio_postgres::Client> {
    crate::stores::postgres("coordinator", &lab.pg.url("coordinator"))
        .await
        .ok()
}
