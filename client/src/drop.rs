//! `ticketdrop drop`: a ticket drop. N distinct fans (each its own user and idempotency
//! key) try to buy one of M seats at once, with bounded concurrency, under one protocol
//! or all three side by side; then the audit says whether anything was oversold.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use proto::v1::*;
use serde::Serialize;
use tonic::Code;

use crate::audit;
use crate::endpoints::{self, Endpoints};
use crate::json;
use crate::stores::Stores;

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
    /// Purchases in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Decline this share of cards during the drop (payments fault injection), e.g. 0.2.
    #[arg(long)]
    pub decline_rate: Option<f64>,
    /// Print JSON (an object, or an array for --protocol all).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub stores: Stores,
}

/// What one drop did.
#[derive(Debug, Clone, Serialize)]
pub struct DropReport {
    pub protocol: &'static str,
    pub event_id: String,
    pub seats: u32,
    pub fans: u32,
    pub concurrency: usize,
    pub attempts: u64,
    pub sold: u64,
    pub sold_out: u64,
    pub conflicts: u64,
    pub declines: u64,
    pub unknown: u64,
    pub errors: u64,
    pub oversold: usize,
    pub audit_violations: usize,
    pub duration_s: f64,
    pub purchases_per_s: f64,
    pub attempts_per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// The first unexpected error, if any.
    pub first_error: Option<String>,
}

enum Answer {
    Sold(u64),
    SoldOut,
    Conflict,
    Declined,
    Unknown,
    Error(String),
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
    let mut payments = endpoints.payments().await?;
    let faults_before = payments
        .get_faults(GetFaultsRequest {})
        .await
        .map_err(|s| anyhow::anyhow!(endpoints::describe(&s)))?
        .into_inner()
        .faults
        .unwrap_or_default();
    if let Some(rate) = args.decline_rate {
        payments
            .set_faults(SetFaultsRequest {
                faults: Some(FaultSettings {
                    decline_rate: rate,
                    ..faults_before
                }),
            })
            .await
            .map_err(|s| anyhow::anyhow!("--decline-rate: {}", endpoints::describe(&s)))?;
    }
    let mut reports = Vec::new();
    let mut failure = None;
    for protocol in protocols {
        let event = if args.protocol == DropProtocol::All {
            format!("{base}-{}", json::protocol(protocol))
        } else {
            base.clone()
        };
        match one_drop(endpoints, &args, protocol, &event).await {
            Ok(report) => reports.push(report),
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    if args.decline_rate.is_some() {
        payments
            .set_faults(SetFaultsRequest {
                faults: Some(faults_before),
            })
            .await
            .map_err(|s| {
                anyhow::anyhow!("restoring the payment faults: {}", endpoints::describe(&s))
            })?;
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
    let oversold: usize = reports.iter().map(|r| r.oversold).sum();
    if oversold > 0 {
        anyhow::bail!("{oversold} seat(s) oversold");
    }
    Ok(())
}

async fn one_drop(
    endpoints: &Endpoints,
    args: &DropArgs,
    protocol: Protocol,
    event: &str,
) -> anyhow::Result<DropReport> {
    ensure_event(endpoints, event, args.seats).await?;
    let coordinator = endpoints.coordinator().await?;
    let progress =
        ProgressBar::with_draw_target(Some(u64::from(args.fans)), ProgressDrawTarget::stderr());
    progress.set_style(
        ProgressStyle::with_template("{prefix:>6} [{bar:40}] {pos}/{len} fans {per_sec} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    progress.set_prefix(json::protocol(protocol));
    let run = uuid::Uuid::new_v4().simple().to_string();
    let started = Instant::now();
    let answers: Vec<(Answer, Duration)> = futures::stream::iter(0..args.fans)
        .map(|i| {
            let mut coordinator = coordinator.clone();
            let request = PurchaseRequest {
                user_id: format!("fan-{i}"),
                event_id: event.to_owned(),
                seat_ids: Vec::new(),
                quantity: 1,
                card_token: "tok_visa".into(),
                idempotency_key: format!("{event}-{run}-fan-{i}"),
                protocol: protocol.into(),
                deadline: None,
            };
            let progress = progress.clone();
            async move {
                let began = Instant::now();
                let answer = classify(coordinator.purchase(request).await);
                progress.inc(1);
                (answer, began.elapsed())
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let duration = started.elapsed();
    progress.finish_and_clear();

    let stores = &args.stores;
    settle(endpoints, event).await?;
    let audit = audit::audit(stores, event)
        .await
        .context("auditing the drop")?;

    let mut latencies: Vec<f64> = answers
        .iter()
        .map(|(_, d)| d.as_secs_f64() * 1_000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let mut report = DropReport {
        protocol: json::protocol(protocol),
        event_id: event.to_owned(),
        seats: args.seats,
        fans: args.fans,
        concurrency: args.concurrency,
        attempts: answers.len() as u64,
        sold: 0,
        sold_out: 0,
        conflicts: 0,
        declines: 0,
        unknown: 0,
        errors: 0,
        oversold: audit.oversold,
        audit_violations: audit.violations.len(),
        duration_s: duration.as_secs_f64(),
        purchases_per_s: 0.0,
        attempts_per_s: answers.len() as f64 / duration.as_secs_f64().max(1e-9),
        p50_ms: percentile(&latencies, 0.50),
        p95_ms: percentile(&latencies, 0.95),
        p99_ms: percentile(&latencies, 0.99),
        first_error: None,
    };
    for (answer, _) in answers {
        match answer {
            Answer::Sold(seats) => report.sold += seats,
            Answer::SoldOut => report.sold_out += 1,
            Answer::Conflict => report.conflicts += 1,
            Answer::Declined => report.declines += 1,
            Answer::Unknown => report.unknown += 1,
            Answer::Error(message) => {
                report.errors += 1;
                report.first_error.get_or_insert(message);
            }
        }
    }
    report.purchases_per_s = report.sold as f64 / duration.as_secs_f64().max(1e-9);
    Ok(report)
}

fn classify(result: Result<tonic::Response<PurchaseResponse>, tonic::Status>) -> Answer {
    let status = match result {
        Ok(response) => return Answer::Sold(response.into_inner().seats.len() as u64),
        Err(status) => status,
    };
    let reason = server_kit::status::reason_of(&status)
        .map(|(r, _)| r)
        .unwrap_or_default();
    match (status.code(), reason.as_str()) {
        (_, "SOLD_OUT") => Answer::SoldOut,
        (_, "SEAT_TAKEN" | "HOLD_LOST" | "STALE_FENCING_TOKEN") => Answer::Conflict,
        (_, "CARD_DECLINED") => Answer::Declined,
        (_, "OUTCOME_UNKNOWN")
        | (Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled, _) => Answer::Unknown,
        _ => Answer::Error(endpoints::describe(&status)),
    }
}

/// Creates the event with `seats` seats (rows of up to 100) unless it exists.
async fn ensure_event(endpoints: &Endpoints, event: &str, seats: u32) -> anyhow::Result<()> {
    let mut inventory = endpoints.inventory().await?;
    match inventory
        .get_event(GetEventRequest {
            event_id: event.to_owned(),
            include_seats: false,
        })
        .await
    {
        Ok(_) => return Ok(()),
        Err(status) if status.code() == Code::NotFound => {}
        Err(status) => anyhow::bail!(endpoints::describe(&status)),
    }
    let mut sections = Vec::new();
    if seats >= 100 {
        sections.push(SectionLayout {
            name: "A".into(),
            rows: seats / 100,
            seats_per_row: 100,
            price_tier: "std".into(),
        });
    }
    if !seats.is_multiple_of(100) {
        sections.push(SectionLayout {
            name: "B".into(),
            rows: 1,
            seats_per_row: seats % 100,
            price_tier: "std".into(),
        });
    }
    inventory
        .create_event(CreateEventRequest {
            event_id: event.to_owned(),
            name: format!("Ticket drop {event}"),
            starts_at: Some(server_kit::convert::timestamp(
                chrono::Utc::now() + chrono::Duration::days(30),
            )),
            description: "a ticket drop run by ticketdrop drop".into(),
            currency: "EUR".into(),
            venue: Some(VenueLayout {
                venue_name: "Drop Arena".into(),
                price_tiers: vec![PriceTier {
                    name: "std".into(),
                    price_cents: 5_000,
                }],
                sections,
            }),
        })
        .await
        .map_err(|s| anyhow::anyhow!("creating {event}: {}", endpoints::describe(&s)))?;
    Ok(())
}

/// Waits (up to 60 s) until the coordinator has finished every purchase of the event.
async fn settle(endpoints: &Endpoints, event: &str) -> anyhow::Result<()> {
    let mut coordinator = endpoints.coordinator().await?;
    for _ in 0..600 {
        let pending = coordinator
            .list_pending(ListPendingRequest {})
            .await
            .map_err(|s| anyhow::anyhow!(endpoints::describe(&s)))?
            .into_inner()
            .transactions;
        if !pending.iter().any(|p| {
            p.transaction
                .as_ref()
                .is_some_and(|t| t.event_id == event && !p.needs_attention)
        }) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    (sorted[index] * 10.0).round() / 10.0
}

fn print_table(reports: &[DropReport]) {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    let mut header = vec!["".to_owned()];
    header.extend(reports.iter().map(|r| r.protocol.to_owned()));
    table.set_header(header);
    type Cell = fn(&DropReport) -> String;
    let rows: [(&str, Cell); 17] = [
        ("event", |r| r.event_id.clone()),
        ("fans / seats", |r| format!("{} / {}", r.fans, r.seats)),
        ("attempts", |r| r.attempts.to_string()),
        ("sold", |r| r.sold.to_string()),
        ("sold out", |r| r.sold_out.to_string()),
        ("conflicts", |r| r.conflicts.to_string()),
        ("declines", |r| r.declines.to_string()),
        ("unknown outcome", |r| r.unknown.to_string()),
        ("errors", |r| r.errors.to_string()),
        ("oversold (audit)", |r| r.oversold.to_string()),
        ("audit violations", |r| r.audit_violations.to_string()),
        ("duration", |r| format!("{:.2} s", r.duration_s)),
        ("purchases/s", |r| format!("{:.1}", r.purchases_per_s)),
        ("attempts/s", |r| format!("{:.1}", r.attempts_per_s)),
        ("p50", |r| format!("{:.1} ms", r.p50_ms)),
        ("p95", |r| format!("{:.1} ms", r.p95_ms)),
        ("p99", |r| format!("{:.1} ms", r.p99_ms)),
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
    }
}
