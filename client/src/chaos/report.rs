//! The lab's report: one row per protocol × scenario, as a table, as JSON, and as the
//! Markdown of docs/chaos.md.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;

use serde::Serialize;

use crate::chaos::checker::Violation;
use crate::chaos::scenarios::FaultEvent;
use crate::chaos::{ChaosArgs, workload};
use crate::load::stats::percentile;

/// Distribution of durations in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Spread {
    pub count: usize,
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        Self {
            count: values.len(),
            p50: percentile(&values, 0.5),
            p95: percentile(&values, 0.95),
            max: values.last().copied().unwrap_or(0.0),
        }
    }
}

/// One protocol under one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub protocol: &'static str,
    pub scenario: String,
    /// Where the lab ran it: "loopback" (proxies) or "hosts" (a namespace per process).
    pub topology: &'static str,
    pub event_id: String,
    pub negative_control: bool,
    /// False when the planned fault never happened: no evidence of it was seen.
    pub fault_injected: bool,
    /// What shows the fault happened (an exit signal, a failpoint's count, a prepared
    /// branch or lease seen, bytes held by a black hole, takeovers logged).
    pub evidence: Vec<String>,
    /// What the row must show beside its fault, if anything (the negative control's
    /// double sale, the fenced twin's stale-fence rejection), and whether it did.
    pub expectation: Option<String>,
    pub expectation_met: bool,
    pub faults: Vec<FaultEvent>,
    pub ops: usize,
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
    /// Of `info`: resolved to one outcome by key after healing.
    pub info_resolved: usize,
    pub violations: Vec<Violation>,
    /// Violations counted per check ("invariant-1", "ok-present", …).
    pub violations_by_check: BTreeMap<String, usize>,
    /// Captured − refunded − Σ confirmed orders.
    pub money_delta_cents: i64,
    /// Purchases the fault touched (an unknown step, or in flight during the fault):
    /// from BEGIN to their final state.
    pub in_doubt_ms: Spread,
    /// From healing until every invariant held (None: never within the wait).
    pub heal_to_ok_ms: Option<f64>,
    pub stuck_at_end: usize,
    /// Scenarios that stop a coordinator: from the fault to each takeover of its
    /// purchases by another coordinator.
    pub takeover_ms: Spread,
    /// Of the purchases invoked during the fault: share answered `ok`, and p99 latency.
    pub success_rate: f64,
    pub p99_ms: f64,
    /// The same, for the protocol's fault-free run.
    pub baseline_success_rate: f64,
    pub baseline_p99_ms: f64,
    pub compensations: u64,
    /// Repeats after an unknown outcome that the participant answered without applying
    /// twice (barrier, idempotency key or txid).
    pub duplicates_suppressed: u64,
    pub stale_fence_rejections: u64,
    /// Orders read back after an orders outage, and the orders writes made then: a write
    /// the store acknowledged and lost, or a purchase the outage had parked.
    pub orders_verified: u64,
    pub orders_reasserted: u64,
    pub seats_sold: i64,
    pub seats_available: i64,
    pub duration_ms: f64,
}

impl Row {
    /// Whether the row says what it must: no violation, or — for a negative control —
    /// the violation it exists to show.
    pub fn passed(&self) -> bool {
        let shown = self.fault_injected && self.expectation_met;
        if self.negative_control {
            shown
        } else {
            shown && self.violations.is_empty()
        }
    }
}

pub fn table(rows: &[Row]) -> String {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "protocol",
        "scenario",
        "ok / fail / info (resolved)",
        "violations",
        "money Δ",
        "in doubt p50 / p95 / max",
        "heal → ok",
        "stuck",
        "takeover",
        "success (baseline)",
        "p99 (baseline)",
        "comp / dup / stale",
        "evidence",
        "verdict",
    ]);
    for r in rows {
        table.add_row(cells(r));
    }
    table.to_string()
}

fn cells(r: &Row) -> Vec<String> {
    let violations = if r.violations.is_empty() {
        "0".to_owned()
    } else {
        r.violations_by_check
            .iter()
            .map(|(check, n)| format!("{check}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        r.protocol.to_owned(),
        // Each lab runs its own baseline: the one on hosts is named so.
        if r.scenario == "baseline" && r.topology != "loopback" {
            format!("baseline ({})", r.topology)
        } else {
            r.scenario.clone()
        },
        format!("{} / {} / {} ({})", r.ok, r.fail, r.info, r.info_resolved),
        violations,
        r.money_delta_cents.to_string(),
        format!(
            "{:.0} / {:.0} / {:.0} ms (n={})",
            r.in_doubt_ms.p50, r.in_doubt_ms.p95, r.in_doubt_ms.max, r.in_doubt_ms.count
        ),
        r.heal_to_ok_ms
            .map_or_else(|| "never".to_owned(), |ms| format!("{ms:.0} ms")),
        r.stuck_at_end.to_string(),
        if r.takeover_ms.count == 0 {
            "-".to_owned()
        } else {
            format!(
                "{:.0} / {:.0} ms (n={})",
                r.takeover_ms.p50, r.takeover_ms.max, r.takeover_ms.count
            )
        },
        format!(
            "{:.0}% ({:.0}%)",
            r.success_rate * 100.0,
            r.baseline_success_rate * 100.0
        ),
        format!("{:.0} ms ({:.0} ms)", r.p99_ms, r.baseline_p99_ms),
        format!(
            "{} / {} / {}",
            r.compensations, r.duplicates_suppressed, r.stale_fence_rejections
        ),
        if r.evidence.is_empty() {
            "none".to_owned()
        } else {
            r.evidence.join("; ")
        },
        verdict(r).to_owned(),
    ]
}

fn verdict(r: &Row) -> &'static str {
    match (r.passed(), r.negative_control) {
        _ if !r.fault_injected => "FAULT NOT INJECTED",
        (true, true) => "double sale caught",
        (true, false) => "ok",
        (false, true) => "CONTROL MISSED",
        (false, false) if !r.expectation_met => "NOT SHOWN",
        (false, false) => "VIOLATED",
    }
}

/// The comparison as Markdown, for docs/chaos.md.
pub fn markdown(rows: &[Row]) -> String {
    let header = [
        "protocol",
        "scenario",
        "ok / fail / info (resolved)",
        "violations",
        "money Δ (cents)",
        "in doubt p50 / p95 / max",
        "heal → all invariants",
        "stuck",
        "taken over after the fault p50 / max",
        "success during fault (baseline)",
        "p99 during fault (baseline)",
        "compensations / duplicates suppressed / stale-fence rejections",
        "evidence of the fault",
        "verdict",
    ];
    let mut out = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        " --- |".repeat(header.len())
    );
    for r in rows {
        out.push_str(&format!("| {} |\n", cells(r).join(" | ")));
    }
    out
}

pub fn write_history(
    path: &std::path::Path,
    histories: &[(&'static str, String, Vec<workload::Op>)],
) -> anyhow::Result<()> {
    let mut out = String::new();
    for (protocol, scenario, ops) in histories {
        for op in ops {
            let mut entry = serde_json::to_value(op)?;
            entry["protocol"] = serde_json::json!(protocol);
            entry["scenario"] = serde_json::json!(scenario);
            out.push_str(&serde_json::to_string(&entry)?);
            out.push('\n');
        }
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// docs/chaos.md: the measured table with the seed and the machine, above the
/// hand-written reading (kept from the existing file).
pub fn write_markdown(
    path: &std::path::Path,
    rows: &[Row],
    seed: u64,
    args: &ChaosArgs,
    elapsed: Duration,
) -> anyhow::Result<()> {
    let reading = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.find("## Reading").map(|at| text[at..].to_owned()))
        .unwrap_or_default();
    let crate::machine::Machine {
        cores,
        cpu,
        memory,
        commit,
    } = crate::machine::Machine::read();
    let text = format!(
        "# The chaos lab\n\n\
         `make chaos` (`ticketdrop chaos --protocol all --scenario all --seed {seed} --fans {} \
         --seats {} --decline-rate {} --concurrency {}`): every scenario under every protocol it \
         applies to, on the lab's own mesh (private PostgreSQL, DynamoDB Local and Redis, the \
         services built with failpoints, a proxy in front of each participant); the partition \
         scenarios on a second mesh whose every service runs on a host of its own (a network \
         namespace with its own address), links cut with iptables, after a baseline of their own. Each row is one \
         run on a fresh event; \"baseline\" is the same workload without a fault. \
         `ticketdrop chaos --list` describes every scenario.\n\n\
         Machine: {cores} cores ({cpu}), {memory} of memory. Commit {commit}, {}. Seed {seed}; \
         the whole run took {:.0} s.\n\n\
         Columns: operations as Jepsen types them (`info` = outcome unknown to the client, \
         resolved by key after healing); violations per invariant of shared/DESIGN.md and per \
         history check; money Δ = captured − refunded − confirmed orders; in doubt = BEGIN to \
         final state of the purchases the fault touched; heal → all invariants = from the last \
         fault's end until the checker found nothing; stuck = leftovers at the end; success and \
         p99 of the purchases invoked during the fault, against the protocol's baseline; \
         compensations run, duplicates suppressed (a repeat after an unknown outcome that the \
         participant did not apply twice), stale-fence rejections.\n\n{}\n{}",
        args.fans,
        args.seats,
        args.decline_rate,
        args.concurrency,
        chrono::Utc::now().format("%Y-%m-%d"),
        elapsed.as_secs_f64(),
        markdown(rows),
        reading,
    );
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
