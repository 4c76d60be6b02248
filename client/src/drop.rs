//! `ticketdrop drop`: a ticket drop. N distinct fans (each its own user and idempotency
//! key) try to buy one of M seats at once, with bounded concurrency, under one protocol
//! or all three side by side; then the audit says whether anything was oversold.

use std::time::Duration;

use proto::v1::*;

use crate::audit;
use crate::endpoints::Endpoints;
use crate::json;
use crate::stores::Stores;

use crate::load::{self, DropReport, Load};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DropProtocol {
    #[value(name = "2pc")]
    TwoPc,
    Saga,
    Lease,
    All,
}

#[derive(Debug, clap::Args)]
pub struct DropArgs {
    /// Event id (with --protocol all, one event per protocol: <event>-2pc, -saga, -lease).
    /// Created when missing; a fresh id when omitted.
    #[arg(long)]
    pub event: Option<String>,
    /// Fans, each buying one seat.
    #[arg(long, default_value_t = 2_000)]
    pub fans: u32,
    /// Seats of the event, when it is created.
    #[arg(long, default_value_t = 100)]
    pub seats: u32,
    /// Protocol, or all three on three fresh events.
    #[arg(long, value_enum)]
    pub protocol: DropProtocol,
    /// Fans buying at once: the waiting room's max-active (with --no-waiting-room, the
    /// purchases in flight at once).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Decline this share of cards during the drop (payments fault injection), e.g. 0.2.
    #[arg(long)]
    pub decline_rate: Option<f64>,
    /// Decline every Nth authorization during the drop (payments fault injection): the
    /// same declines every run, where --decline-rate draws them at random.
    #[arg(long)]
    pub decline_every: Option<u32>,
    /// Buy directly, every fan at once within --concurrency, without a waiting room.
    #[arg(long)]
    pub no_waiting_room: bool,
    /// How long an admission lasts before it expires unused.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub admission_ttl: Duration,
    /// Give every fan an email address (`fan-<n>@<event>.example`), so every sale is also
    /// confirmed by mail through the outbox and the notifier.
    #[arg(long)]
    pub email_fans: bool,
    /// Show a live line of the mesh's metrics beside the progress bar: purchases by
    /// outcome, in flight, the room's depth and admissions, outbox lag, the log's pool.
    #[arg(long)]
    pub live: bool,
    /// Print JSON (an object, or an array for --protocol all).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub stores: Stores,
}

pub async fn run(endpoints: &Endpoints, args: DropArgs) -> anyhow::Result<()> {
    let base = args
        .event
        .clone()
        .unwrap_or_else(|| format!("drop-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    let protocols: Vec<Protocol> = match args.protocol {
        DropProtocol::TwoPc => vec![Protocol::TwoPhaseCommit],
        DropProtocol::Saga => vec![Protocol::Saga],
        DropProtocol::Lease => vec![Protocol::Lease],
        DropProtocol::All => vec![Protocol::TwoPhaseCommit, Protocol::Saga, Protocol::Lease],
    };
    let mut reports = Vec::new();
    let mut failure = None;
    for protocol in protocols {
        let event = if args.protocol == DropProtocol::All {
            format!("{base}-{}", json::protocol(protocol))
        } else {
            base.clone()
        };
        match load::one_drop(endpoints, &args.load(), protocol, &event, || {}).await {
            Ok(report) => reports.push(report),
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    if let Some(error) = failure {
        return Err(error);
    }
    if args.json {
        let value = if args.protocol == DropProtocol::All {
            serde_json::to_value(&reports)?
        } else {
            serde_json::to_value(&reports[0])?
        };
        json::print(&value)?;
    } else {
        print_table(&reports);
    }
    verdict(&reports)
}

/// A drop that was not audited, or whose audit found a violation, fails: exit 1 for the
/// first, 2 (as `ticketdrop audit`) for the second.
pub fn verdict(reports: &[DropReport]) -> anyhow::Result<()> {
    if let Some(report) = reports.iter().find(|r| r.audit_error.is_some()) {
        anyhow::bail!(
            "the {} drop was not audited: {}",
            report.protocol,
            report.audit_error.as_deref().unwrap_or_default()
        );
    }
    match reports.iter().filter_map(|r| r.audit_violations).sum() {
        0 => Ok(()),
        n => Err(audit::ViolationsFound(n).into()),
    }
}

fn print_table(reports: &[DropReport]) {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    let mut header = vec!["".to_owned()];
    header.extend(reports.iter().map(|r| r.protocol.to_owned()));
    table.set_header(header);
    type Cell = fn(&DropReport) -> String;
    let rows: [(&str, Cell); 27] = [
        ("event", |r| r.event_id.clone()),
        ("fans / seats", |r| format!("{} / {}", r.fans, r.seats)),
        ("waiting room", |r| {
            if r.waiting_room {
                format!("yes, {} buying at once", r.concurrency)
            } else {
                "no".into()
            }
        }),
        ("purchase calls", |r| r.attempts.to_string()),
        ("sold", |r| r.sold.to_string()),
        ("sold out (by the room)", |r| {
            format!("{} ({})", r.sold_out, r.sold_out_by_room)
        }),
        ("conflicts", |r| r.conflicts.to_string()),
        ("declines", |r| r.declines.to_string()),
        ("unknown outcome", |r| r.unknown.to_string()),
        ("unknown, then resolved (aborted)", |r| {
            format!("{} ({})", r.unknown_resolved, r.aborted)
        }),
        ("expired admissions", |r| r.expired.to_string()),
        ("errors", |r| r.errors.to_string()),
        ("rejoins after a conflict", |r| r.rejoins.to_string()),
        ("re-queued after an expired admission", |r| {
            r.requeued_after_expiry.to_string()
        }),
        ("oversold (audit)", |r| audited(r.oversold)),
        ("audit violations", |r| audited(r.audit_violations)),
        ("unsold while fans turned away", |r| {
            r.seats_unsold_while_turned_away.to_string()
        }),
        ("fairness violations", |r| r.fairness_violations.to_string()),
        ("most buying at once", |r| {
            r.max_concurrent_purchases.to_string()
        }),
        ("duration", |r| format!("{:.2} s", r.duration_s)),
        ("sales/s", |r| format!("{:.1}", r.purchases_per_s)),
        ("purchase calls/s", |r| format!("{:.1}", r.attempts_per_s)),
        ("purchase p50", |r| format!("{:.1} ms", r.p50_ms)),
        ("purchase p95", |r| format!("{:.1} ms", r.p95_ms)),
        ("purchase p99", |r| format!("{:.1} ms", r.p99_ms)),
        ("wait p50", |r| format!("{:.1} ms", r.wait_p50_ms)),
        ("wait p99", |r| format!("{:.1} ms", r.wait_p99_ms)),
    ];
    for (name, value) in rows {
        let mut row = vec![name.to_owned()];
        row.extend(reports.iter().map(value));
        table.add_row(row);
    }
    println!("{table}");
    for report in reports {
        if let Some(error) = &report.first_error {
            println!("{}: first unexpected error: {error}", report.protocol);
        }
        if let Some(error) = &report.settle_error {
            println!(
                "{}: unknown outcomes not looked up: {error}",
                report.protocol
            );
        }
        if let Some(error) = &report.audit_error {
            println!("{}: NOT AUDITED: {error}", report.protocol);
        }
        for (kind, n) in &report.violations_by_kind {
            println!("{}: VIOLATION {kind}: {n}", report.protocol);
        }
        for violation in &report.first_violations {
            println!("{}:   {violation}", report.protocol);
        }
    }
}

/// An audit's figure, or "not audited".
pub fn audited(figure: Option<usize>) -> String {
    figure.map_or_else(|| "not audited".to_owned(), |n| n.to_string())
}

impl DropArgs {
    /// The load these arguments describe.
    pub fn load(&self) -> Load {
        Load {
            fans: self.fans,
            seats: self.seats,
            concurrency: self.concurrency,
            no_waiting_room: self.no_waiting_room,
            admission_ttl: self.admission_ttl,
            email_fans: self.email_fans,
            live: self.live,
            decline_rate: self.decline_rate,
            decline_every: self.decline_every,
            stores: self.stores.clone(),
        }
    }
}
