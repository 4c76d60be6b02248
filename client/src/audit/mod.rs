//! The audit: every invariant of shared/DESIGN.md, checked from the stores themselves —
//! inventory's, payments', the notifier's and every coordinator log's databases, the
//! orders table and Redis — never through the services whose correctness it checks.
//! `ticketdrop audit --event E` prints it (any violation exits 2); the chaos lab's
//! checker, `drop`, `bench` and the integration tests call [`audit`].
//!
//! | module | what it holds |
//! | --- | --- |
//! | `kind.rs` | every kind of violation, with the invariant it breaks |
//! | `snapshot.rs` | what the audit reads, read once from the stores |
//! | `checks.rs` | the invariants, as pure functions of a snapshot |

mod checks;
mod kind;
pub mod snapshot;

use serde::Serialize;

use crate::json;
use crate::stores::Stores;
pub use checks::{Allowance, check};
pub use kind::Kind;
pub use snapshot::Snapshot;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Event to audit.
    #[arg(long)]
    pub event: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// How far the waiting room's clock and the log's may disagree, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub clock_skew_ms: i64,
    #[command(flatten)]
    pub stores: Stores,
}

/// Returned as the error when an audit finds violations (exit code 2).
#[derive(Debug)]
pub struct ViolationsFound(pub usize);

impl std::fmt::Display for ViolationsFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} invariant violation(s)", self.0)
    }
}

impl std::error::Error for ViolationsFound {}

#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// The invariant's number in shared/DESIGN.md.
    pub invariant: u8,
    pub kind: Kind,
    pub ids: Vec<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub event_id: String,
    pub capacity: i64,
    pub available: i64,
    pub held: i64,
    pub sold: i64,
    pub confirmed_orders: usize,
    pub captured_cents: i64,
    pub confirmed_cents: i64,
    /// Seats sold to more than one confirmed order.
    pub oversold: usize,
    /// Purchases no log has finished.
    pub unfinished: usize,
    /// Purchases of the event in the logs audited.
    pub purchases: usize,
    /// Whether the notifier's confirmations were read (not when no database was given).
    pub confirmations_audited: bool,
    pub violations: Vec<Violation>,
}

impl Report {
    /// The violations of one kind.
    pub fn of(&self, kind: Kind) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(move |v| v.kind == kind)
    }
}

pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    let allowance = Allowance {
        clock_skew_ms: args.clock_skew_ms,
    };
    let report = audit_with(&args.stores, &args.event, allowance).await?;
    if args.json {
        json::print(&serde_json::to_value(&report)?)?;
    } else {
        println!(
            "audit of {}: capacity {}, available {}, held {}, sold {}; {} confirmed orders; \
             captured {:.2}, confirmed {:.2}",
            report.event_id,
            report.capacity,
            report.available,
            report.held,
            report.sold,
            report.confirmed_orders,
            report.captured_cents as f64 / 100.0,
            report.confirmed_cents as f64 / 100.0
        );
        if !report.confirmations_audited {
            println!("confirmations at the notifier: not audited (no notifier database)");
        }
        if report.violations.is_empty() {
            println!("every invariant holds");
        }
        for v in &report.violations {
            println!(
                "VIOLATION {} [{}] {} — {}",
                v.invariant,
                v.kind,
                v.ids.join(", "),
                v.detail
            );
        }
    }
    match report.violations.len() {
        0 => Ok(()),
        n => Err(ViolationsFound(n).into()),
    }
}

/// Audits `event_id` with the default allowances.
pub async fn audit(stores: &Stores, event_id: &str) -> anyhow::Result<Report> {
    audit_with(stores, event_id, Allowance::default()).await
}

pub async fn audit_with(
    stores: &Stores,
    event_id: &str,
    allowance: Allowance,
) -> anyhow::Result<Report> {
    let snapshot = Snapshot::read(stores, event_id).await?;
    Ok(report(&snapshot, check(&snapshot, allowance)))
}

/// The figures of a snapshot, with its violations.
pub fn report(snapshot: &Snapshot, violations: Vec<Violation>) -> Report {
    let count = |status: &str| {
        snapshot
            .seats
            .values()
            .filter(|seat| seat.status == status)
            .count() as i64
    };
    let confirmed: Vec<&snapshot::Order> = snapshot
        .orders
        .values()
        .filter(|order| order.is_confirmed())
        .collect();
    let order_ids: std::collections::HashSet<&str> = snapshot
        .orders
        .keys()
        .map(String::as_str)
        .chain(snapshot.purchases.iter().map(|p| p.order_id.as_str()))
        .collect();
    Report {
        event_id: snapshot.event_id.clone(),
        capacity: snapshot.capacity,
        available: count("AVAILABLE"),
        held: count("HELD"),
        sold: count("SOLD"),
        confirmed_orders: confirmed.len(),
        captured_cents: snapshot
            .payments
            .iter()
            .filter(|p| order_ids.contains(p.order_id.as_str()) && p.net_cents > 0)
            .map(|p| p.net_cents)
            .sum(),
        confirmed_cents: confirmed.iter().map(|o| o.total_cents).sum(),
        oversold: violations
            .iter()
            .filter(|v| v.kind == Kind::SeatSoldTwice)
            .count(),
        unfinished: snapshot
            .purchases
            .iter()
            .filter(|p| !p.is_finished())
            .count(),
        purchases: snapshot.purchases.len(),
        confirmations_audited: snapshot.confirmations.is_some(),
        violations,
    }
}
