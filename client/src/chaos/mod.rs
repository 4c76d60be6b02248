//! `ticketdrop chaos`: the comparative chaos lab, in the manner of Jepsen. It starts a
//! mesh of its own (private PostgreSQL, DynamoDB Local and Redis, the services, a proxy in
//! front of each participant; for the partition scenarios a second one, every service on
//! a host of its own), then for each protocol runs a fault-free baseline and
//! every scenario that applies: a workload of fans recorded as a history, a nemesis that
//! kills, pauses and cuts off processes at chosen moments, healing, a bounded wait for
//! recovery, and a checker that reads every database. One row per protocol × scenario,
//! as a table, as JSON, and as docs/chaos.md.
//!
//! | module | what it holds |
//! | --- | --- |
//! | `lab.rs` | the private mesh and its processes (the nemesis's targets) |
//! | `wiring.rs` | where each process runs, and the coordinators' flags |
//! | `hosts.rs` | the mesh on hosts of its own (network namespaces), links cut with iptables |
//! | `proxy.rs` | the TCP proxy that delays, black-holes or resets one participant's link |
//! | `workload.rs` | the fans and their Jepsen history; unknown outcomes retried and resolved |
//! | `scenarios/` | the catalog, and the nemesis that carries each scenario out |
//! | `checker.rs` | the invariants from the databases and the history checks |
//! | `facts.rs` | what the coordinators' logs say about a run (in doubt, compensations, …) |
//! | `report.rs` | the rows, the table, the Markdown |

mod checker;
mod facts;
mod hosts;
mod lab;
mod proxy;
mod report;
mod scenarios;
mod wiring;
mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use proto::v1::*;

use crate::drop::DropProtocol;
use crate::endpoints::Endpoints;
use crate::json;
use crate::load::stats::percentile_of;
use hosts::Topology;
use lab::Lab;
use report::{Row, Spread};
use scenarios::Scenario;

#[derive(Debug, clap::Args)]
pub struct ChaosArgs {
    /// Protocol, or all three.
    #[arg(long, value_enum, default_value = "all")]
    pub protocol: DropProtocol,
    /// A scenario (see --list), several separated by commas, or all of them.
    #[arg(long, default_value = "all")]
    pub scenario: String,
    /// Fans per run.
    #[arg(long, default_value_t = 120)]
    pub fans: u32,
    /// Seats of each run's event; the first four are fought over by name.
    #[arg(long, default_value_t = 30)]
    pub seats: u32,
    /// Share of cards declined (some scenarios raise it).
    #[arg(long, default_value_t = 0.1)]
    pub decline_rate: f64,
    /// Purchases in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Seed of the workload and of the random nemesis (a fresh one when omitted; the
    /// report names it so the run can be repeated).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run the lease pause scenario without fencing: the negative control, which must
    /// show a double sale (with --scenario all it always runs as its own row).
    #[arg(long)]
    pub unsafe_no_fencing: bool,
    /// List the scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Write every run's Jepsen history to this file (JSON lines).
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Write the comparison as Markdown to this file (docs/chaos.md), keeping its
    /// hand-written part.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Calls one purchase makes while its outcome stays unknown (1: an unknown outcome
    /// is never retried, and stays `info` for the checker to resolve).
    #[arg(long, default_value_t = 8)]
    pub attempts: u32,
    /// Longest wait, in seconds, after healing for recovery to finish and every invariant
    /// to hold.
    #[arg(long, default_value_t = 45)]
    pub recovery_wait_s: u64,
    /// A scenario's failpoint not to arm (the lab's own test: the row must fail as
    /// "fault not injected").
    #[arg(long, hide = true)]
    pub disarm: Vec<String>,
    /// Failpoints kept in force in the lab's coordinator for the whole run (the lab's
    /// own test: `inspect::hide_committed=return` makes its inspection lie).
    #[arg(long, hide = true)]
    pub coordinator_failpoints: Option<String>,
}

/// Returned as the error when a scenario saw a violation, a negative control did not,
/// or a fault was never injected (exit code 2).
#[derive(Debug)]
pub struct LabFailed(pub usize);

impl std::fmt::Display for LabFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} run(s) did not hold (a violation, a missed negative control, or a fault never injected)",
            self.0
        )
    }
}

impl std::error::Error for LabFailed {}

const BASELINE: Scenario = Scenario {
    name: "baseline",
    about: "no fault",
    protocols: &[Protocol::TwoPhaseCommit, Protocol::Saga, Protocol::Lease],
    negative_control: false,
    // Run by every lab, whatever its topology.
    topology: Topology::Loopback,
};

pub async fn run(args: ChaosArgs) -> anyhow::Result<()> {
    if args.list {
        for s in scenarios::CATALOG {
            let protocols: Vec<&str> = s.protocols.iter().map(|p| json::protocol(*p)).collect();
            println!(
                "{:<48} [{}] {}\n    {}",
                s.name,
                protocols.join(", "),
                s.topology.name(),
                s.about
            );
        }
        return Ok(());
    }
    let selected: Vec<&Scenario> = match args.scenario.as_str() {
        "all" => scenarios::CATALOG.iter().collect(),
        "pause-lease-holder-past-lease" if args.unsafe_no_fencing => {
            vec![
                scenarios::find("pause-lease-holder-past-lease-no-fencing")
                    .expect("in the catalog"),
            ]
        }
        names => names
            .split(',')
            .map(|name| {
                scenarios::find(name.trim()).with_context(|| {
                    format!("no scenario {name:?}; `ticketdrop chaos --list` names them")
                })
            })
            .collect::<anyhow::Result<_>>()?,
    };
    let protocols: Vec<Protocol> = match args.protocol {
        DropProtocol::TwoPc => vec![Protocol::TwoPhaseCommit],
        DropProtocol::Saga => vec![Protocol::Saga],
        DropProtocol::Lease => vec![Protocol::Lease],
        DropProtocol::All => vec![Protocol::TwoPhaseCommit, Protocol::Saga, Protocol::Lease],
    };
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(1..1_000_000));
    lab::check_failpoint_builds(&needed_failpoints(&selected, &protocols, &args))?;
    // A lab per topology the chosen scenarios need, one after the other.
    let topologies: Vec<Topology> = [Topology::Loopback, Topology::Hosts]
        .into_iter()
        .filter(|t| selected.iter().any(|s| s.topology == *t))
        .collect();
    if topologies.contains(&Topology::Hosts) {
        hosts::Hosts::preflight()?;
    }
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut histories = Vec::new();
    let mut index = 0;
    for topology in topologies {
        eprintln!(
            "chaos: seed {seed}; starting the lab's own mesh ({})",
            topology.name()
        );
        let mut lab = Lab::start(topology).await.context("starting the lab")?;
        if let Some(spec) = &args.coordinator_failpoints {
            lab.keep_failpoints(lab::Target::Coordinator, spec).await?;
        }
        let scenarios: Vec<&Scenario> = std::iter::once(&BASELINE)
            .chain(selected.iter().copied().filter(|s| s.topology == topology))
            .collect();
        for protocol in &protocols {
            let mut baseline: Option<Row> = None;
            for scenario in scenarios.iter().copied() {
                if !scenario.protocols.contains(protocol) {
                    continue;
                }
                index += 1;
                eprintln!(
                    "chaos: {} / {} ({})",
                    json::protocol(*protocol),
                    scenario.name,
                    topology.name()
                );
                let (mut row, ops) = run_one(&mut lab, &args, *protocol, scenario, seed, index)
                    .await
                    .with_context(|| {
                        format!("{} / {}", json::protocol(*protocol), scenario.name)
                    })?;
                if let Some(base) = &baseline {
                    row.baseline_success_rate = base.success_rate;
                    row.baseline_p99_ms = base.p99_ms;
                } else {
                    row.baseline_success_rate = row.success_rate;
                    row.baseline_p99_ms = row.p99_ms;
                    baseline = Some(row.clone());
                }
                histories.push((row.protocol, row.scenario.clone(), ops));
                rows.push(row);
            }
        }
    }
    let elapsed = started.elapsed();
    if let Some(path) = &args.history {
        report::write_history(path, &histories)?;
    }
    if let Some(path) = &args.markdown {
        report::write_markdown(path, &rows, seed, &args, elapsed)?;
    }
    if args.json {
        json::print(&serde_json::json!({
            "seed": seed, "fans": args.fans, "seats": args.seats,
            "decline_rate": args.decline_rate, "concurrency": args.concurrency,
            "duration_s": elapsed.as_secs_f64(), "rows": rows,
        }))?;
    } else {
        println!("{}", report::table(&rows));
        for row in rows.iter().filter(|r| !r.passed()) {
            for v in &row.violations {
                println!(
                    "{} / {}: {} [{}] {} — {}",
                    row.protocol,
                    row.scenario,
                    v.check,
                    v.kind,
                    v.ids.join(", "),
                    v.detail
                );
                for line in &v.timeline {
                    println!("    {line}");
                }
            }
        }
        println!("seed {seed}, {:.0} s", elapsed.as_secs_f64());
    }
    match rows.iter().filter(|r| !r.passed()).count() {
        0 => Ok(()),
        n => Err(LabFailed(n).into()),
    }
}

/// The services whose failpoints the selected runs arm.
fn needed_failpoints(
    selected: &[&Scenario],
    protocols: &[Protocol],
    args: &ChaosArgs,
) -> Vec<lab::Target> {
    let mut targets: Vec<lab::Target> = selected
        .iter()
        .flat_map(|scenario| {
            protocols
                .iter()
                .filter(|p| scenario.protocols.contains(p))
                .flat_map(|p| scenarios::setup(scenario, *p).failpoints)
                .map(|(target, _)| target)
        })
        .collect();
    if args.coordinator_failpoints.is_some() {
        targets.push(lab::Target::Coordinator);
    }
    targets.sort();
    targets.dedup();
    targets
}

/// One protocol under one scenario, on a fresh event.
async fn run_one(
    lab: &mut Lab,
    args: &ChaosArgs,
    protocol: Protocol,
    scenario: &Scenario,
    seed: u64,
    index: usize,
) -> anyhow::Result<(Row, Vec<workload::Op>)> {
    let event = format!("chaos-{seed}-{index:02}-{}", json::protocol(protocol));
    let endpoints = Endpoints {
        coordinator: lab.coordinator.endpoint(),
        inventory: lab.inventory_endpoint(),
        orders: lab.orders.endpoint(),
        payments: lab.payments_endpoint(),
        waiting_room: lab.room.endpoint(),
        notifier: lab::NO_NOTIFIER.to_owned(),
        bearer_token: Some(local_mesh::auth::admin_token()),
        auth_dir: local_mesh::auth::auth_dir(),
    };
    crate::load::ensure_event(&endpoints, &event, args.seats).await?;
    let setup = scenarios::setup(scenario, protocol);
    for (target, spec) in &setup.failpoints {
        let name = spec.split('=').next().unwrap_or_default();
        if args.disarm.iter().any(|disarmed| disarmed == name) {
            eprintln!("chaos: {name} not armed (--disarm)");
            continue;
        }
        lab.set_failpoints(*target, Some(spec)).await?;
    }
    if setup.unfenced {
        lab.set_coordinator_env("TICKETDROP_COORDINATOR_UNSAFE_NO_FENCING", Some("true"))
            .await?;
    }
    if setup.rival {
        let env: &[(&str, &str)] = if setup.unfenced {
            &[("TICKETDROP_COORDINATOR_UNSAFE_NO_FENCING", "true")]
        } else {
            &[]
        };
        lab.start_rival(env).await?;
    }
    for _ in 0..setup.peers {
        lab.start_peer().await?;
    }
    let mut payments = endpoints.payments().await?;
    payments
        .set_faults(SetFaultsRequest {
            faults: Some(FaultSettings {
                decline_rate: setup.decline_rate.unwrap_or(args.decline_rate),
                latency: setup.card_latency.map(|(min, max)| LatencyDistribution {
                    min: Some(server_kit::convert::duration(min)),
                    max: Some(server_kit::convert::duration(max)),
                }),
                ..Default::default()
            }),
        })
        .await
        .map_err(|s| {
            anyhow::anyhow!(
                "setting the decline rate: {}",
                crate::endpoints::describe(&s)
            )
        })?;

    let spec = workload::Spec {
        event: event.clone(),
        protocol,
        fans: args.fans,
        seats: args.seats,
        hot_seats: 4.min(args.seats),
        hot_share: 0.25,
        concurrency: args.concurrency,
        seed: seed.wrapping_add(index as u64),
        call_timeout: Duration::from_secs(4),
        attempts: args.attempts.max(1),
    };
    let coordinators = lab.coordinators()?;
    let started = Instant::now();
    let workload = {
        let (spec, coordinators, route) = (spec.clone(), coordinators.clone(), setup.route);
        tokio::spawn(async move { workload::run(&spec, &coordinators, route, started).await })
    };
    let faults = scenarios::inject(
        scenario, &setup, protocol, lab, seed, &spec, started, &workload,
    )
    .await;
    let mut ops = workload.await.context("the workload task")?;
    let mut faults = faults?;
    ops.append(&mut faults.ops);
    ops.sort_by(|a, b| a.invoked_ms.total_cmp(&b.invoked_ms));
    lab.heal().await.context("healing")?;

    // Recovery: until nothing is unfinished and (but for a negative control) every
    // invariant holds, or the wait runs out.
    let healed = Instant::now();
    let mut heal_to_ok = None;
    let verdict = loop {
        workload::look_up(&mut ops, &coordinators).await;
        let verdict = checker::check(lab, &event, &mut ops).await;
        let done = match &verdict {
            Ok(v) if v.violations.is_empty() => {
                heal_to_ok.get_or_insert(healed.elapsed().as_secs_f64() * 1e3);
                true
            }
            Ok(v) => scenario.negative_control && v.unfinished == 0,
            Err(_) => false,
        };
        if done || healed.elapsed() > Duration::from_secs(args.recovery_wait_s) {
            break verdict?;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    // Back to a clean lab for the next run.
    for (target, _) in &setup.failpoints {
        lab.set_failpoints(*target, None).await?;
    }
    if setup.unfenced {
        lab.set_coordinator_env("TICKETDROP_COORDINATOR_UNSAFE_NO_FENCING", None)
            .await?;
    }
    if setup.rival {
        lab.stop_rival().await?;
    }
    lab.stop_peers().await?;

    let facts = facts::log_facts(lab, &event, setup.rival, faults.window_wall).await?;
    let in_window: Vec<&workload::Op> = match faults.window_ms {
        Some((from, to)) if scenario.name != "baseline" => ops
            .iter()
            .filter(|op| op.invoked_ms <= to && op.completed_ms >= from)
            .collect(),
        _ => ops.iter().collect(),
    };
    let mut verdict = verdict;
    verdict.violations.append(&mut faults.violations);
    // What the row must show beside its fault: the negative control, the double sale of
    // a contested seat to two orders; its fenced twin, the paused holder refused by a
    // stale fencing token.
    let (expectation, expectation_met) = if scenario.negative_control {
        let caught = verdict.violations.iter().any(|v| {
            v.kind == "seat_sold_twice"
                && v.ids.len() >= 3
                && faults
                    .contested_seats
                    .iter()
                    .any(|seat| v.ids.contains(seat))
        });
        (
            Some("seat_sold_twice naming a contested seat and two orders".to_owned()),
            caught,
        )
    } else if scenario.name == "pause-lease-holder-past-lease" {
        (
            Some("a stale-fence rejection of the paused holder's write".to_owned()),
            facts.stale > 0,
        )
    } else {
        (None, true)
    };
    let mut by_check = BTreeMap::new();
    for v in &verdict.violations {
        *by_check.entry(v.check.clone()).or_insert(0) += 1;
    }
    let row = Row {
        protocol: json::protocol(protocol),
        scenario: scenario.name.to_owned(),
        topology: lab.topology.name(),
        event_id: event,
        negative_control: scenario.negative_control,
        fault_injected: faults.injected,
        evidence: faults.evidence,
        expectation,
        expectation_met,
        faults: faults.events,
        ops: ops.len(),
        ok: ops.iter().filter(|op| op.is_ok()).count(),
        fail: ops.iter().filter(|op| op.fail_reason().is_some()).count(),
        info: ops.iter().filter(|op| op.is_info()).count(),
        info_resolved: ops
            .iter()
            .filter(|op| op.is_info() && op.happened().is_some())
            .count(),
        violations_by_check: by_check,
        violations: verdict.violations,
        money_delta_cents: verdict.money_delta_cents,
        in_doubt_ms: facts.in_doubt,
        heal_to_ok_ms: heal_to_ok,
        stuck_at_end: verdict.stuck,
        takeover_ms: Spread::of(std::mem::take(&mut faults.takeover_ms)),
        success_rate: share(
            in_window.iter().filter(|op| op.is_ok()).count(),
            in_window.len(),
        ),
        p99_ms: percentile_of(
            &in_window
                .iter()
                .map(|op| op.latency_ms())
                .collect::<Vec<_>>(),
            0.99,
        ),
        baseline_success_rate: 0.0,
        baseline_p99_ms: 0.0,
        compensations: facts.compensations,
        duplicates_suppressed: facts.duplicates,
        stale_fence_rejections: facts.stale,
        orders_verified: facts.verified,
        orders_reasserted: facts.reasserted,
        seats_sold: verdict.seats_sold,
        seats_available: verdict.seats_available,
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
    };
    Ok((row, ops))
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}
