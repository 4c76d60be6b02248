//! The seat map under a crowd: 50,000 fans load the event's map while a drop sells it,
//! once as fans call GetEvent (served from inventory's cache, which every write of
//! inventory invalidates) and once with `consistent_read` (every load reads
//! PostgreSQL), with the CPU of inventory and PostgreSQL over each.
//!
//! Staleness is measured per answer, not assumed: the map's `as_of` is the database's
//! clock when its snapshot began (every sale committed before it is in the map), and the
//! answer's staleness is the moment the fan asked minus `as_of`: how long before the
//! question the sales the answer may miss were committed. Inventory promises at most
//! its max age (a map is served only while younger than that, and a write invalidates
//! it at once). Both clocks are this machine's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use proto::v1::{GetEventRequest, Protocol};
use serde::Serialize;

use super::{BenchArgs, usage};
use crate::endpoints::{self, Endpoints};
use crate::load::{self, DropReport, Load, stats};

/// One crowd of map loads beside one drop.
#[derive(Debug, Clone, Serialize)]
pub struct SeatMapRun {
    /// Served from the cache (false: every load a consistent read).
    pub cache: bool,
    pub loads: u32,
    pub concurrency: usize,
    /// Every seat in each answer (the map the event page draws), not only the counts.
    pub include_seats: bool,
    /// From the first load sent to the last answered.
    pub all_loaded_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers inventory served from its cache.
    pub from_cache: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Answers that carried `as_of` (those whose staleness was measured).
    pub with_as_of: u64,
    pub staleness_p99_ms: f64,
    pub staleness_max_ms: f64,
    /// Seats the drop sold while the loads ran.
    pub sold_during_loads: u64,
    /// CPU seconds over the loads' window.
    pub inventory_cpu_s: f64,
    pub postgresql_cpu_s: f64,
    /// The drop beside the loads.
    pub drop: Option<DropReport>,
}

/// The fans of the drop beside the loads, and its seats.
const DROP_FANS: u32 = 5_000;

pub async fn measure(
    endpoints: &Endpoints,
    args: &BenchArgs,
    run: &str,
) -> anyhow::Result<Vec<SeatMapRun>> {
    let mut runs = Vec::new();
    if args.map_loads == 0 {
        return Ok(runs);
    }
    for cache in [true, false] {
        let event = format!(
            "bench-{run}-map-{}",
            if cache { "cached" } else { "database" }
        );
        eprintln!(
            "bench: {} seat-map loads ({}) beside a 2pc drop of {DROP_FANS} fans",
            args.map_loads,
            if cache { "cache" } else { "consistent reads" }
        );
        runs.push(one(endpoints, args, &event, cache).await?);
    }
    Ok(runs)
}

async fn one(
    endpoints: &Endpoints,
    args: &BenchArgs,
    event: &str,
    cache: bool,
) -> anyhow::Result<SeatMapRun> {
    let drop_args = Load {
        fans: DROP_FANS,
        seats: args.seats,
        concurrency: args.concurrency,
        no_waiting_room: false,
        admission_ttl: Duration::from_secs(30),
        email_fans: false,
        live: false,
        decline_rate: None,
        decline_every: None,
        stores: args.stores.clone(),
    };
    load::ensure_event(endpoints, event, args.seats).await?;
    let drop = load::one_drop(
        endpoints,
        &drop_args,
        Protocol::TwoPhaseCommit,
        event,
        || {},
    );
    let loads = crowd(endpoints, args, event, cache);
    let (drop, loads) = tokio::join!(drop, loads);
    let mut loads = loads?;
    loads.drop = Some(drop?);
    Ok(loads)
}

/// Waits for the drop's first sale, then loads the map `args.map_loads` times,
/// `args.map_concurrency` at once over a few connections.
async fn crowd(
    endpoints: &Endpoints,
    args: &BenchArgs,
    event: &str,
    cache: bool,
) -> anyhow::Result<SeatMapRun> {
    let mut probe = endpoints.inventory().await?;
    let sold = |answer: &proto::v1::GetEventResponse| {
        u64::from(answer.total.as_ref().map_or(0, |t| t.sold))
    };
    let read = |consistent_read| GetEventRequest {
        event_id: event.to_owned(),
        include_seats: args.map_seats,
        consistent_read,
    };
    // The loads begin with the sale: at the first seat sold (for at most a minute).
    let waiting = Instant::now();
    let sold_before = loop {
        let answer = probe.get_event(read(true)).await?.into_inner();
        if sold(&answer) > 0 || waiting.elapsed() > Duration::from_secs(60) {
            break sold(&answer);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(endpoints.inventory().await?);
    }
    let meter = usage::Meter::start(&args.stack_dir);
    let next = Arc::new(AtomicU32::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..args.map_concurrency.max(1) {
        let mut client = clients[worker % clients.len()].clone();
        let next = next.clone();
        let request = read(!cache);
        let total = args.map_loads;
        workers.spawn(async move {
            let mut seen = Loaded::default();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let sent = Instant::now();
                let asked = chrono::Utc::now();
                match client.get_event(request.clone()).await {
                    Ok(answer) => {
                        let answer = answer.into_inner();
                        seen.latency_ms.push(sent.elapsed().as_secs_f64() * 1e3);
                        seen.from_cache += u64::from(answer.cached);
                        if let Some(as_of) = answer
                            .as_of
                            .as_ref()
                            .and_then(|t| server_kit::convert::from_timestamp("as_of", t).ok())
                        {
                            let behind = (asked - as_of).num_microseconds().unwrap_or(0);
                            seen.staleness_ms.push(behind.max(0) as f64 / 1e3);
                        }
                    }
                    Err(status) => {
                        seen.errors += 1;
                        seen.first_error
                            .get_or_insert_with(|| endpoints::describe(&status));
                    }
                }
            }
            seen
        });
    }
    let mut all = Loaded::default();
    while let Some(worker) = workers.join_next().await {
        all.merge(worker?);
    }
    let all_loaded_s = started.elapsed().as_secs_f64();
    let usage = meter.stop();
    let sold_after = sold(&probe.get_event(read(true)).await?.into_inner());
    let cpu = |name: &str| usage.processes.get(name).map_or(0.0, |u| u.cpu_s);
    all.latency_ms.sort_by(f64::total_cmp);
    all.staleness_ms.sort_by(f64::total_cmp);
    Ok(SeatMapRun {
        cache,
        loads: args.map_loads,
        concurrency: args.map_concurrency,
        include_seats: args.map_seats,
        all_loaded_s,
        p50_ms: stats::percentile(&all.latency_ms, 0.50),
        p99_ms: stats::percentile(&all.latency_ms, 0.99),
        from_cache: all.from_cache,
        errors: all.errors,
        first_error: all.first_error,
        with_as_of: all.staleness_ms.len() as u64,
        staleness_p99_ms: stats::percentile(&all.staleness_ms, 0.99),
        staleness_max_ms: all.staleness_ms.last().copied().unwrap_or(0.0),
        sold_during_loads: sold_after.saturating_sub(sold_before),
        inventory_cpu_s: cpu("inventory-pg"),
        postgresql_cpu_s: cpu("postgresql"),
        drop: None,
    })
}

#[derive(Default)]
struct Loaded {
    latency_ms: Vec<f64>,
    staleness_ms: Vec<f64>,
    from_cache: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Loaded {
    fn merge(&mut self, other: Loaded) {
        self.latency_ms.extend(other.latency_ms);
        self.staleness_ms.extend(other.staleness_ms);
        self.from_cache += other.from_cache;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// The staleness inventory states and this bench holds the cached map to: its default
/// seat-map max age (`--seat-map-max-age-ms`). Writes through inventory invalidate
/// sooner.
pub const STATED_BOUND_MS: u64 = 100;

pub fn print(runs: &[SeatMapRun]) {
    for run in runs {
        println!(
            "  map: {} loads ({}), {} at once: all in {:.2} s, p50 {:.1} ms, p99 {:.1} ms, {} from the cache, errors {}, staleness p99 {:.1} ms max {:.1} ms, {} seats sold meanwhile; inventory {:.1} CPU s, PostgreSQL {:.1} CPU s",
            run.loads,
            if run.cache {
                "cache"
            } else {
                "consistent reads"
            },
            run.concurrency,
            run.all_loaded_s,
            run.p50_ms,
            run.p99_ms,
            run.from_cache,
            run.errors,
            run.staleness_p99_ms,
            run.staleness_max_ms,
            run.sold_during_loads,
            run.inventory_cpu_s,
            run.postgresql_cpu_s
        );
    }
}

pub fn markdown(w: &mut String, runs: &[SeatMapRun]) -> std::fmt::Result {
    use std::fmt::Write;
    let Some(first) = runs.first() else {
        return Ok(());
    };
    writeln!(w, "\n## The seat map under a crowd\n")?;
    writeln!(
        w,
        "{} loads of one event's seat map ({}), {} in flight, beginning at the first sale \
         of a 2pc drop of {} fans on the same event. With the cache, GetEvent answers from \
         inventory's map, which every write of inventory invalidates and which is never \
         served more than 100 ms after it was read; without it, every load is a \
         consistent read of PostgreSQL. Staleness is the moment the fan asked minus the \
         answer's `as_of` (the database's clock when its snapshot began; every sale \
         committed before it is in the map). Goal: all loaded within 5 s, p99 at most \
         100 ms, staleness at most {STATED_BOUND_MS} ms.\n",
        first.loads,
        if first.include_seats {
            "every seat listed"
        } else {
            "availability counts only"
        },
        first.concurrency,
        first.drop.as_ref().map_or(0, |d| d.fans),
    )?;
    writeln!(
        w,
        "| reads | all loaded (s) | p50 (ms) | p99 (ms) | from the cache | errors | staleness p99 / max (ms) | sold meanwhile | inventory CPU s | PostgreSQL CPU s | drop answered (s) |"
    )?;
    writeln!(
        w,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )?;
    for run in runs {
        writeln!(
            w,
            "| {} | {:.2} | {:.1} | {:.1} | {} | {} | {:.1} / {:.1} | {} | {:.1} | {:.1} | {} |",
            if run.cache {
                "cache"
            } else {
                "consistent reads"
            },
            run.all_loaded_s,
            run.p50_ms,
            run.p99_ms,
            run.from_cache,
            run.errors,
            run.staleness_p99_ms,
            run.staleness_max_ms,
            run.sold_during_loads,
            run.inventory_cpu_s,
            run.postgresql_cpu_s,
            run.drop
                .as_ref()
                .map_or("-".into(), |d| format!("{:.2}", d.duration_s)),
        )?;
    }
    Ok(())
}
