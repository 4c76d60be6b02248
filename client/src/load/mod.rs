//! The load engine: many fans, each its own user and idempotency key, through the
//! waiting room (or straight to the coordinator) onto one event under one protocol; then
//! every unknown outcome is settled from the log and the audit runs. `ticketdrop drop`,
//! the bench and the chaos lab all drive fans with it.
//!
//! - [`fans`]: one fan's journey and how each answer is classified;
//! - [`event`]: the event the fans buy, created when missing;
//! - [`stats`]: the report's figures — percentiles, the timeline, fairness.

mod event;
mod fans;
pub mod stats;

pub use event::ensure_event;
pub use stats::TimelinePoint;

use fans::{Answer, Buyer, Fan, ROOM_CHANNELS, direct, fan_user, through_room};
use stats::report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use proto::v1::*;
use serde::Serialize;

use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use proto::v1::payments_service_client::PaymentsServiceClient;
use server_kit::outgoing::MeshChannel;

use crate::audit;
use crate::endpoints::{self, Endpoints};
use crate::json;
use crate::stores::Stores;

/// What a load is: the fans, the seats, how many buy at once and through what.
#[derive(Debug, Clone)]
pub struct Load {
    /// Fans, each buying one seat.
    pub fans: u32,
    /// Seats of the event, when it is created.
    pub seats: u32,
    /// Fans buying at once: the waiting room's max-active (without the room, the
    /// purchases in flight at once).
    pub concurrency: usize,
    /// Buy directly, without a waiting room.
    pub no_waiting_room: bool,
    /// How long an admission lasts before it expires unused.
    pub admission_ttl: Duration,
    /// Give every fan an email address, so every sale is confirmed by mail too.
    pub email_fans: bool,
    /// Show a live line of the mesh's metrics beside the progress bar.
    pub live: bool,
    /// Decline this share of cards while the fans buy (payments' fault injection).
    pub decline_rate: Option<f64>,
    /// Decline every Nth authorization while the fans buy (the same declines every run).
    pub decline_every: Option<u32>,
    /// Where the audit reads the stores.
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
    /// Whether the fans went through the waiting room.
    pub waiting_room: bool,
    /// Purchase calls made (a fan whose purchase met a conflict joins again and buys
    /// again).
    pub attempts: u64,
    pub sold: u64,
    /// Fans told "sold out": by the waiting room, or by a purchase.
    pub sold_out: u64,
    /// Of sold_out: told by the waiting room (they never reached the coordinator).
    pub sold_out_by_room: u64,
    /// Fans whose last answer was a conflict (a seat taken or held by a purchase in flight).
    pub conflicts: u64,
    pub declines: u64,
    /// Fans whose outcome is still unknown after the drop: their purchase was neither
    /// answered nor found finished in the coordinator's log (must be 0 once it settles).
    pub unknown: u64,
    /// Fans whose answer was unknown (a coordinator down, a deadline passed) and whose
    /// purchase was then looked up by its idempotency key: sold or not, now known.
    pub unknown_resolved: u64,
    /// Fans whose last purchase ended without a sale because the coordinator stopped
    /// mid-purchase: answered INTERRUPTED, or an unknown outcome found aborted (or never
    /// logged) afterwards.
    pub aborted: u64,
    /// Fans whose admission expired before they bought, and who were still expired after
    /// going back to the room [`fans::MAX_REQUEUES`] times.
    pub expired: u64,
    /// Times a fan whose admission lapsed before their purchase reached the coordinator
    /// went back to the room (at the back of the queue) rather than counting an error.
    pub requeued_after_expiry: u64,
    pub errors: u64,
    /// Conflicts and interrupted purchases after which the fan joined the room again.
    pub rejoins: u64,
    /// Seats the audit found sold twice; None when the drop could not be audited.
    pub oversold: Option<usize>,
    /// Violations the audit found, by kind; None when the drop could not be audited.
    pub audit_violations: Option<usize>,
    pub violations_by_kind: std::collections::BTreeMap<String, usize>,
    /// The first violations in words, with their ids (at most [`stats::VIOLATIONS_SHOWN`]):
    /// what to look up with `ticketdrop audit` and `txn show`.
    pub first_violations: Vec<String>,
    /// Seats still unsold at the end although some fan was turned away (sold out,
    /// conflict, expired): must be 0.
    pub seats_unsold_while_turned_away: u64,
    /// Fans admitted ahead of someone who joined earlier (0 is perfectly fair).
    pub fairness_violations: u64,
    /// The most purchases in flight at once, as the room counted its claims.
    pub max_concurrent_purchases: u64,
    pub duration_s: f64,
    pub purchases_per_s: f64,
    pub attempts_per_s: f64,
    /// Latency of the purchase calls.
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// How long fans waited in the room: from joining to admitted or told sold out.
    pub wait_p50_ms: f64,
    pub wait_p99_ms: f64,
    /// When the last sale was answered, seconds after the drop began.
    pub last_sale_s: f64,
    /// Sales and answers so far, sampled over the drop (for the bench's picture).
    pub timeline: Vec<TimelinePoint>,
    /// Purchases the coordinator logged and then refused, by reason code: what
    /// `ticketdrop txn failures --group-by error --event E` counts (SOLD_OUT here is a
    /// participant's answer; the room's are in sold_out_by_room).
    pub refusals: std::collections::BTreeMap<String, u64>,
    /// The first unexpected error, if any.
    pub first_error: Option<String>,
    /// Why the coordinator could not be asked whether every purchase ended, if it could
    /// not (the unknown outcomes then stay unknown).
    pub settle_error: Option<String>,
    /// Why the audit could not run, if it could not (oversold and violations are then
    /// "not audited").
    pub audit_error: Option<String>,
}

/// How long the drop waits for the coordinator to finish every purchase afterwards.
const SETTLE_WITHIN: Duration = Duration::from_secs(60);

/// Audit attempts before the drop reports that it could not audit (about 30 s).
const AUDIT_ATTEMPTS: u32 = 10;

/// One drop under one protocol; `after_fans` runs when every fan has their answer, before
/// the drop settles and audits (the bench stops its meters there).
pub(crate) async fn one_drop(
    endpoints: &Endpoints,
    args: &Load,
    protocol: Protocol,
    event: &str,
    after_fans: impl FnOnce(),
) -> anyhow::Result<DropReport> {
    ensure_event(endpoints, event, args.seats).await?;
    let declines = Declines::set(endpoints, args).await?;
    let fans = drive_fans(endpoints, args, protocol, event).await;
    // The card network is itself again before anything else can fail.
    declines.restore().await?;
    let (fans, duration, max_concurrent) = fans?;
    after_fans();

    // A process killed mid-drop must not cost the report: wait for the coordinator to
    // finish every purchase, look up each unknown outcome by its key, then audit.
    let mut fans = fans;
    let settled = settle(endpoints, event).await;
    if let Ok(coordinator) = &settled {
        resolve_unknowns(coordinator, &mut fans).await;
    }
    let audit = audit_with_retries(&args.stores, event).await;
    let mut report = report(
        args,
        protocol,
        event,
        &fans,
        duration,
        max_concurrent,
        audit.as_ref().ok(),
    );
    report.settle_error = settled.err().map(|e| format!("{e:#}"));
    report.audit_error = audit.err().map(|e| format!("{e:#}"));
    Ok(report)
}

/// The fans of one drop, from the first join to the last answer: each fan's outcome,
/// how long it took, and the most purchases the room let in at once.
async fn drive_fans(
    endpoints: &Endpoints,
    args: &Load,
    protocol: Protocol,
    event: &str,
) -> anyhow::Result<(Vec<Fan>, Duration, Option<u64>)> {
    let coordinator = endpoints::connect("coordinator", &endpoints.coordinator).await?;
    let progress =
        ProgressBar::with_draw_target(Some(u64::from(args.fans)), ProgressDrawTarget::stderr());
    progress.set_style(
        ProgressStyle::with_template("{prefix:>6} [{bar:40}] {pos}/{len} fans {per_sec} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    progress.set_prefix(json::protocol(protocol));
    let live = args
        .live
        .then(|| crate::live::spawn(endpoints, event, json::protocol(protocol), progress.clone()));
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let credentials = endpoints.fan_credentials((0..args.fans).map(|fan| fan_user(&run, fan)))?;
    let buyer = Buyer {
        coordinator,
        credentials: Arc::new(credentials),
        event: event.to_owned(),
        run,
        protocol,
        email_fans: args.email_fans,
    };
    let (fans, duration, max_concurrent) = if args.no_waiting_room {
        let started = Instant::now();
        let fans = direct(&buyer, args, &progress).await;
        (fans, started.elapsed(), None)
    } else {
        let mut room = endpoints.waiting_room().await?;
        crate::room::open(
            &mut room,
            event,
            clamp_u32(args.concurrency),
            args.admission_ttl,
        )
        .await
        .map_err(|s| anyhow::anyhow!("opening the room: {}", endpoints::describe(&s)))?;
        let mut rooms = Vec::with_capacity(ROOM_CHANNELS);
        for _ in 0..ROOM_CHANNELS {
            rooms.push(endpoints::connect("waiting-room", &endpoints.waiting_room).await?);
        }
        let started = Instant::now();
        let fans = through_room(&buyer, args, rooms, &progress).await;
        let duration = started.elapsed();
        let max = crate::room::get(&mut room, event)
            .await
            .map_err(|s| anyhow::anyhow!("reading the room: {}", endpoints::describe(&s)))?
            .max_purchasing_seen;
        (fans, duration, Some(max))
    };
    drop(live);
    progress.finish_and_clear();
    Ok((fans, duration, max_concurrent))
}

/// The card network's faults during a drop that asks for declines, and the settings to
/// put back afterwards.
struct Declines {
    payments: Option<(PaymentsServiceClient<MeshChannel>, FaultSettings)>,
}

impl Declines {
    async fn set(endpoints: &Endpoints, args: &Load) -> anyhow::Result<Declines> {
        if args.decline_rate.is_none() && args.decline_every.is_none() {
            return Ok(Declines { payments: None });
        }
        let mut payments = endpoints.payments().await?;
        let before = payments
            .get_faults(GetFaultsRequest {})
            .await
            .map_err(|s| {
                anyhow::anyhow!("reading the payment faults: {}", endpoints::describe(&s))
            })?
            .into_inner()
            .faults
            .unwrap_or_default();
        payments
            .set_faults(SetFaultsRequest {
                faults: Some(FaultSettings {
                    decline_rate: args.decline_rate.unwrap_or(before.decline_rate),
                    decline_every: args.decline_every.unwrap_or(before.decline_every),
                    ..before
                }),
            })
            .await
            .map_err(|s| {
                anyhow::anyhow!(
                    "--decline-rate / --decline-every: {}",
                    endpoints::describe(&s)
                )
            })?;
        Ok(Declines {
            payments: Some((payments, before)),
        })
    }

    async fn restore(self) -> anyhow::Result<()> {
        let Some((mut payments, before)) = self.payments else {
            return Ok(());
        };
        payments
            .set_faults(SetFaultsRequest {
                faults: Some(before),
            })
            .await
            .map_err(|s| {
                anyhow::anyhow!("restoring the payment faults: {}", endpoints::describe(&s))
            })?;
        Ok(())
    }
}

/// Audits, retrying for a while: a store that was killed during the drop may still be
/// coming back.
async fn audit_with_retries(stores: &Stores, event: &str) -> anyhow::Result<audit::Report> {
    let mut backoff = Duration::from_millis(250);
    for attempt in 1.. {
        match audit::audit(stores, event).await {
            Ok(report) => return Ok(report),
            Err(error) if attempt >= AUDIT_ATTEMPTS => {
                return Err(error.context(format!("auditing the drop ({attempt} attempts)")));
            }
            Err(error) => {
                eprintln!("ticketdrop: audit attempt {attempt} failed, retrying: {error:#}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(4));
            }
        }
    }
    unreachable!("the loop returns")
}

/// Looks every unknown outcome up by its idempotency key in the coordinator's log.
async fn resolve_unknowns(coordinator: &CoordinatorServiceClient<MeshChannel>, fans: &mut [Fan]) {
    for fan in fans.iter_mut() {
        let (Answer::Unknown, Some(key)) = (&fan.answer, &fan.key) else {
            continue;
        };
        let answer = match crate::txn::by_key(coordinator, key).await {
            Some(Some(txn)) if txn.state() == TransactionState::Committed => {
                Answer::Sold(u64::from(txn.quantity).max(txn.seat_ids.len() as u64))
            }
            Some(Some(txn)) if txn.state() == TransactionState::Aborted => Answer::Aborted,
            // Never logged: the purchase did not happen.
            Some(None) => Answer::Aborted,
            _ => continue,
        };
        fan.answer = answer;
        fan.resolved = true;
    }
}

/// Waits (up to a minute) until the coordinator has finished every purchase of the event,
/// riding out a coordinator that is down or restarting; returns the client it reached.
async fn settle(
    endpoints: &Endpoints,
    event: &str,
) -> anyhow::Result<CoordinatorServiceClient<MeshChannel>> {
    let began = Instant::now();
    let mut coordinator = None;
    let mut last_error = String::new();
    while began.elapsed() < SETTLE_WITHIN {
        let client = match &mut coordinator {
            Some(client) => client,
            None => match endpoints.coordinator().await {
                Ok(client) => coordinator.insert(client),
                Err(error) => {
                    last_error = format!("{error:#}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            },
        };
        match client.list_pending(ListPendingRequest {}).await {
            Ok(pending) => {
                let unfinished = pending.into_inner().transactions.iter().any(|p| {
                    p.transaction
                        .as_ref()
                        .is_some_and(|t| t.event_id == event && !p.needs_attention)
                });
                if !unfinished {
                    break;
                }
                last_error = "purchases of the event are still unfinished".into();
            }
            Err(status) => last_error = endpoints::describe(&status),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Reached, even with purchases still unfinished after a minute: the unknown outcomes
    // are looked up anyway, and stay unknown where the log has no final state.
    coordinator.with_context(|| {
        format!("the coordinator did not answer within {SETTLE_WITHIN:?}: {last_error}")
    })
}

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}
