//! `ticketdrop bench`: the figures of `make bench`, all from one run, on the running
//! local stack (`make up`):
//!
//! 1. the stores' raw pace (`stores`): the yardstick;
//! 2. uncontended purchase latency on the fresh store (`latency`);
//! 3. the drop under each protocol, with sales/s as a share of the raw pace;
//! 4. several coordinators on one log (`coordinators`): the headline drop with 1, 2 and
//!    3 of them, and a coordinator SIGKILLed mid-drop: how long until its purchases are
//!    taken over;
//! 4. the seat map (`seat_map`): 50,000 loads beside a drop, from inventory's cache and
//!    with consistent reads, each answer's staleness measured;
//! 5. how cost grows (`--scaling`): more fans, fewer and more seats, each drop with the
//!    CPU and peak memory of every process (`usage`);
//! 5. confirmations (`confirm`): the same drop with no contact, with every fan's email
//!    and SMTP up, and with SMTP down, and how long the mails took;
//! 6. uncontended latency again, on the store all those drops aged;
//! 7. the report (`report`): a table on stdout, JSON, and docs/benchmarks.md with a
//!    picture of sales and answers over time.

mod confirm;
mod coordinators;
mod goals;
mod latency;
mod ops;
mod report;
mod seat_map;
mod stores;
mod usage;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use proto::v1::Protocol;
use serde::Serialize;

use crate::endpoints::Endpoints;
use crate::json;
use crate::load::{self, DropReport, Load};
use crate::stores::Stores;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Fans of the headline drop.
    #[arg(long, default_value_t = 50_000)]
    pub fans: u32,
    /// Seats of the headline drop.
    #[arg(long, default_value_t = 500)]
    pub seats: u32,
    /// Purchases in flight at once (the room's max-active, and the raw rates' clients).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Sequential purchases of each latency measurement.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub purchases: u32,
    /// Also run the scaling drops: 5,000 and 200,000 fans on the headline seats, and 100
    /// and 2,000 seats for the headline fans, under each protocol.
    #[arg(long)]
    pub scaling: bool,
    /// Write the report here (Markdown; its "## What the figures say" section is kept).
    #[arg(long)]
    pub write: Option<PathBuf>,
    /// Draw sales and answers over time here (SVG); linked from the Markdown.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Write every figure here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Seat-map loads beside a drop, with inventory's cache and with consistent reads
    /// (0 skips them).
    #[arg(long, default_value_t = 50_000)]
    pub map_loads: u32,
    /// Seat-map loads in flight at once.
    #[arg(long, default_value_t = 256)]
    pub map_concurrency: usize,
    /// Whether each seat-map load lists every seat (the map the event page draws) or
    /// only the availability counts.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub map_seats: bool,
    /// Fans of each confirmation drop (on the headline seats; 0 skips them).
    #[arg(long, default_value_t = 5_000)]
    pub confirm_fans: u32,
    /// The stack's script: the confirmation drops run `<script> smtp-down` and `smtp-up`.
    #[arg(long, default_value = "scripts/stack.sh")]
    pub stack_script: PathBuf,
    /// The local stack's folder, where the pid files are (for CPU and memory).
    #[arg(long, default_value = ".stack")]
    pub stack_dir: PathBuf,
    #[command(flatten)]
    pub stores: Stores,
}

/// One drop of the bench, with what each process spent on it.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub drop: DropReport,
    /// Each process's CPU and memory over the drop, the fans' client included.
    pub usage: BTreeMap<String, usage::Usage>,
    /// The machine over the same window.
    pub window: usage::Window,
    /// Sales per second as a share of one raw TransactWriteItems per sale, in %.
    pub efficiency_pct: f64,
    /// What the stores did over the drop, as they count it (the headline drops only).
    pub ops: Option<ops::Ops>,
}

/// Everything one bench run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Bench {
    pub stores: stores::StoreRates,
    pub latency_fresh: Vec<latency::Latency>,
    pub drops: Vec<Measured>,
    /// The stores' background work with nothing to do, measured before the drops.
    pub idle: Option<ops::Idle>,
    /// The seat map loaded by a crowd beside a drop, cached and not.
    pub seat_maps: Vec<seat_map::SeatMapRun>,
    /// The headline drop (2pc) with 1, 2 and 3 coordinators on the log.
    pub coordinators: Vec<coordinators::Scale>,
    /// Three coordinators, one killed mid-drop.
    pub takeover: Option<coordinators::Takeover>,
    pub scaling: Vec<Measured>,
    pub confirmations: Vec<confirm::ConfirmRun>,
    pub latency_aged: Vec<latency::Latency>,
    /// Fans the drops of this run served before the aged latency was measured.
    pub fans_before_aged: u64,
}

const PROTOCOLS: [Protocol; 3] = [Protocol::TwoPhaseCommit, Protocol::Saga, Protocol::Lease];

pub async fn run(endpoints: &Endpoints, args: BenchArgs) -> anyhow::Result<()> {
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    eprintln!("bench: raw store rates at concurrency {}", args.concurrency);
    let stores = stores::measure(&args.stores, args.concurrency).await?;
    eprintln!(
        "bench: {} sequential purchases per protocol, fresh store",
        args.purchases
    );
    let latency_fresh =
        latency::measure(endpoints, &format!("bench-{run}-fresh"), args.purchases).await?;

    eprintln!("bench: the stores' background work, idle");
    let idle = ops::idle(endpoints, &args.stores)
        .await
        .map_err(|error| eprintln!("bench: the stores' counters could not be read: {error:#}"))
        .ok();
    let raw = stores.dynamodb_sale.sales_per_s;
    let mut drops = Vec::new();
    for protocol in PROTOCOLS {
        let event = format!("bench-{run}-{}", json::protocol(protocol));
        drops.push(
            measured(
                endpoints,
                &args,
                protocol,
                &event,
                Shape {
                    ops: true,
                    ..Shape::plain(args.fans, args.seats)
                },
                raw,
            )
            .await?,
        );
    }
    let seat_maps = seat_map::measure(endpoints, &args, &run).await?;
    let (coordinators, takeover) = coordinators::measure(endpoints, &args, &run, raw).await?;
    let mut scaling = Vec::new();
    if args.scaling {
        let shapes = [
            (5_000, args.seats),
            (200_000, args.seats),
            (args.fans, 100),
            (args.fans, 2_000),
        ];
        for (fans, seats) in shapes {
            for protocol in PROTOCOLS {
                let event = format!("bench-{run}-{fans}-{seats}-{}", json::protocol(protocol));
                scaling.push(
                    measured(
                        endpoints,
                        &args,
                        protocol,
                        &event,
                        Shape::plain(fans, seats),
                        raw,
                    )
                    .await?,
                );
            }
        }
    }
    let confirmations = if args.confirm_fans > 0 {
        confirm::measure(endpoints, &args, &run, raw).await?
    } else {
        Vec::new()
    };
    let fans_before_aged = drops
        .iter()
        .chain(coordinators.iter().map(|c| &c.measured))
        .chain(&scaling)
        .chain(confirmations.iter().map(|c| &c.measured))
        .map(|m| u64::from(m.drop.fans))
        .sum::<u64>()
        + takeover.as_ref().map_or(0, |t| u64::from(t.fans))
        + seat_maps
            .iter()
            .filter_map(|m| m.drop.as_ref())
            .map(|d| u64::from(d.fans))
            .sum::<u64>();
    eprintln!(
        "bench: {} sequential purchases per protocol, on the store aged by {fans_before_aged} fans",
        args.purchases
    );
    let latency_aged =
        latency::measure(endpoints, &format!("bench-{run}-aged"), args.purchases).await?;

    let bench = Bench {
        stores,
        latency_fresh,
        drops,
        idle,
        seat_maps,
        coordinators,
        takeover,
        scaling,
        confirmations,
        latency_aged,
        fans_before_aged,
    };
    report::print(&bench);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&bench)?)?;
    }
    if let Some(path) = &args.svg {
        report::svg(&bench, path)?;
    }
    if let Some(path) = &args.write {
        report::markdown(&bench, path, args.svg.as_deref(), &args)?;
        eprintln!("bench: wrote {}", path.display());
    }
    // A drop not audited, or with a violation, fails the bench (after the report is
    // written, so that it can be read).
    let reports: Vec<crate::load::DropReport> = bench
        .drops
        .iter()
        .chain(bench.coordinators.iter().map(|c| &c.measured))
        .chain(&bench.scaling)
        .chain(bench.confirmations.iter().map(|c| &c.measured))
        .map(|m| m.drop.clone())
        .chain(bench.takeover.iter().map(|t| t.drop.clone()))
        .chain(bench.seat_maps.iter().filter_map(|m| m.drop.clone()))
        .collect();
    crate::drop::verdict(&reports)
}

/// What one drop of the bench sells, and to whom.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    fans: u32,
    seats: u32,
    /// Every fan gives an email address (the confirmation drops).
    email_fans: bool,
    /// Count what the stores did (takes `ops::SETTLE` more).
    ops: bool,
}

impl Shape {
    pub(crate) fn plain(fans: u32, seats: u32) -> Self {
        Self {
            fans,
            seats,
            email_fans: false,
            ops: false,
        }
    }
}

pub(crate) async fn measured(
    endpoints: &Endpoints,
    args: &BenchArgs,
    protocol: Protocol,
    event: &str,
    shape: Shape,
    raw_sales_per_s: f64,
) -> anyhow::Result<Measured> {
    let Shape {
        fans,
        seats,
        email_fans,
        ops: count_ops,
    } = shape;
    eprintln!(
        "bench: {} drop, {fans} fans, {seats} seats",
        json::protocol(protocol)
    );
    let drop_args = Load {
        fans,
        seats,
        concurrency: args.concurrency,
        no_waiting_room: false,
        admission_ttl: Duration::from_secs(30),
        email_fans,
        live: false,
        decline_rate: None,
        decline_every: None,
        stores: args.stores.clone(),
    };
    load::ensure_event(endpoints, event, seats).await?;
    let before = if count_ops {
        snapshot(endpoints, args).await
    } else {
        None
    };
    let meter = usage::Meter::start(&args.stack_dir);
    let mut usage = None;
    let report = load::one_drop(endpoints, &drop_args, protocol, event, || {
        usage = Some(meter.stop());
    })
    .await?;
    let ops = match before {
        Some(before) => {
            tokio::time::sleep(ops::SETTLE).await;
            // The counters first: reading the room's memory is commands of its own.
            let after = snapshot(endpoints, args).await;
            let room = ops::room_bytes(&args.stores, event)
                .await
                .map_err(|error| eprintln!("bench: the room's memory could not be read: {error:#}"))
                .unwrap_or(0);
            after.map(|after| ops::Ops {
                redis_room_bytes: room,
                ..after.since(&before)
            })
        }
        None => None,
    };
    let measured: usage::Measurement = usage.unwrap_or_default();
    let sales_per_s = report.sold as f64 / report.last_sale_s.max(1e-9);
    Ok(Measured {
        efficiency_pct: 100.0 * sales_per_s / raw_sales_per_s.max(1e-9),
        drop: report,
        usage: measured.processes,
        window: measured.window,
        ops,
    })
}

/// The stores' counters now, or None (said on stderr) when one cannot be read.
async fn snapshot(endpoints: &Endpoints, args: &BenchArgs) -> Option<ops::Snapshot> {
    ops::Snapshot::take(endpoints, &args.stores)
        .await
        .map_err(|error| eprintln!("bench: the stores' counters could not be read: {error:#}"))
        .ok()
}
