//! `ticketdrop drop`: a ticket drop. N distinct fans (each its own user and idempotency
//! key) try to buy one of M seats at once, with bounded concurrency, under one protocol
//! or all three side by side; then the audit says whether anything was oversold.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use proto::outcome::Outcome;
use proto::v1::*;
use serde::Serialize;
use tonic::Code;
use tracing::Instrument;

use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use proto::v1::waiting_room_service_client::WaitingRoomServiceClient;
use server_kit::outgoing::{MeshChannel, Outgoing};
use tonic::transport::Channel;

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
    /// going back to the room [`MAX_REQUEUES`] times.
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

/// Fans answered by `t_s` seconds into the drop, and how many of them bought.
#[derive(Debug, Clone, Serialize)]
pub struct TimelinePoint {
    pub t_s: f64,
    pub sold: u64,
    pub answered: u64,
}

/// Points a timeline has at most (a drop of a few seconds gets one every 50 ms).
const TIMELINE_POINTS: u32 = 200;

#[derive(Debug, Clone)]
enum Answer {
    Sold(u64),
    SoldOut,
    Conflict,
    Declined,
    Unknown,
    /// The coordinator stopped mid-purchase and recovery undid it (INTERRUPTED), a
    /// participant did not answer and the purchase was aborted (PARTICIPANT_UNAVAILABLE),
    /// or an unknown outcome was found to have ended without a sale.
    Aborted,
    Expired,
    Error(String),
}

/// What happened to one fan.
#[derive(Debug, Clone)]
struct Fan {
    /// The fan's first join number and first admission number (room mode).
    join_number: Option<u64>,
    admission_number: Option<u64>,
    answer: Answer,
    /// The idempotency key of the fan's last purchase, if they made one.
    key: Option<String>,
    /// Whether the answer was unknown and then resolved by the key.
    resolved: bool,
    answered_by_room: bool,
    purchases: Vec<Duration>,
    /// The reason of each of the fan's purchases that the coordinator logged and refused.
    refusals: Vec<String>,
    waited: Option<Duration>,
    /// When the fan got their last answer, after the drop began.
    answered_at: Duration,
    rejoins: u64,
    /// Times the fan's admission lapsed unused and they went back to the room.
    requeues: u64,
}

impl Fan {
    fn new(answer: Answer) -> Self {
        Self {
            join_number: None,
            admission_number: None,
            answer,
            key: None,
            resolved: false,
            answered_by_room: false,
            purchases: Vec::new(),
            refusals: Vec::new(),
            waited: None,
            answered_at: Duration::ZERO,
            rejoins: 0,
            requeues: 0,
        }
    }
}

/// Calls a fan makes for one purchase whose outcome stays unknown (with backoff up to
/// 2 s: about 11 s in all, enough for a killed coordinator to come back).
const UNKNOWN_RETRIES: usize = 8;
/// How long one purchase call may take before the fan counts its outcome as unknown.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the drop waits for the coordinator to finish every purchase afterwards.
const SETTLE_WITHIN: Duration = Duration::from_secs(60);
/// Audit attempts before the drop reports that it could not audit (about 30 s).
const AUDIT_ATTEMPTS: u32 = 10;
/// Times a fan whose purchase met a conflict (or was interrupted) joins the room again.
const MAX_REJOINS: u64 = 3;
/// Times a fan whose admission lapsed before they bought goes back to the room.
const MAX_REQUEUES: u64 = 3;
/// Tries of leaving the room while it still counts the fan's purchase (about 35 s: an
/// aborted purchase whose undo was unfinished keeps its slot until recovery ends it).
const LEAVE_ATTEMPTS: u32 = 40;
/// Join calls in flight at once (fans keep their place and watch after joining).
const JOINS_IN_FLIGHT: usize = 256;
/// Connections fans share to the room (each carries many watch streams).
const ROOM_CHANNELS: usize = 8;

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
    let declining = args.decline_rate.is_some() || args.decline_every.is_some();
    if declining {
        payments
            .set_faults(SetFaultsRequest {
                faults: Some(FaultSettings {
                    decline_rate: args.decline_rate.unwrap_or(faults_before.decline_rate),
                    decline_every: args.decline_every.unwrap_or(faults_before.decline_every),
                    ..faults_before
                }),
            })
            .await
            .map_err(|s| {
                anyhow::anyhow!(
                    "--decline-rate / --decline-every: {}",
                    endpoints::describe(&s)
                )
            })?;
    }
    let mut reports = Vec::new();
    let mut failure = None;
    for protocol in protocols {
        let event = if args.protocol == DropProtocol::All {
            format!("{base}-{}", json::protocol(protocol))
        } else {
            base.clone()
        };
        match one_drop(endpoints, &args, protocol, &event, || {}).await {
            Ok(report) => reports.push(report),
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    if declining {
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

/// One drop under one protocol; `after_fans` runs when every fan has their answer, before
/// the drop settles and audits (the bench stops its meters there).
pub(crate) async fn one_drop(
    endpoints: &Endpoints,
    args: &DropArgs,
    protocol: Protocol,
    event: &str,
    after_fans: impl FnOnce(),
) -> anyhow::Result<DropReport> {
    ensure_event(endpoints, event, args.seats).await?;
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

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}

/// Each fan's journey is a trace of its own, not a part of the drop's.
fn fan_span(fan: u32) -> tracing::Span {
    tracing::info_span!(parent: None, "fan", fan)
}

/// The user id of fan number `fan` of the drop `run`.
fn fan_user(run: &str, fan: u32) -> String {
    format!("fan-{run}-{fan}")
}

/// What every fan's purchase shares.
#[derive(Clone)]
struct Buyer {
    coordinator: Channel,
    /// Each fan's own credential, by fan number.
    credentials: Arc<Vec<Outgoing>>,
    event: String,
    run: String,
    protocol: Protocol,
    email_fans: bool,
}

impl Buyer {
    fn user(&self, fan: u32) -> String {
        fan_user(&self.run, fan)
    }

    /// `channel` carrying the fan's own token.
    fn as_fan(&self, channel: &Channel, fan: u32) -> MeshChannel {
        MeshChannel::new(channel.clone(), self.credentials[fan as usize].clone())
    }

    fn contact(&self, fan: u32) -> Option<Contact> {
        self.email_fans.then(|| Contact {
            email: format!("fan-{fan}@{}.example", self.event),
            phone: String::new(),
        })
    }

    fn key(&self, fan: u32, attempt: u64) -> String {
        format!("{}-{}-fan-{fan}-{attempt}", self.event, self.run)
    }

    /// One purchase of one best-available seat: its answer and each call's latency. An
    /// unknown outcome is retried with the same idempotency key (the same purchase, never
    /// a second one), a bounded number of times with backoff.
    async fn buy(
        &self,
        fan: u32,
        attempt: u64,
        admission_token: String,
    ) -> (Answer, Vec<Duration>, Option<String>) {
        let request = PurchaseRequest {
            user_id: self.user(fan),
            event_id: self.event.clone(),
            seat_ids: Vec::new(),
            quantity: 1,
            card_token: "tok_visa".into(),
            idempotency_key: self.key(fan, attempt),
            protocol: self.protocol.into(),
            deadline: None,
            contact: self.contact(fan),
            admission_token,
        };
        let mut latencies = Vec::new();
        let mut backoff = Duration::from_millis(200);
        let mut coordinator = CoordinatorServiceClient::new(self.as_fan(&self.coordinator, fan));
        loop {
            let began = Instant::now();
            let mut call = tonic::Request::new(request.clone());
            call.set_timeout(CALL_TIMEOUT);
            let result = coordinator.purchase(call).await;
            let refusal = logged_refusal(&result);
            let answer = classify(result);
            latencies.push(began.elapsed());
            if !matches!(answer, Answer::Unknown) || latencies.len() >= UNKNOWN_RETRIES {
                return (answer, latencies, refusal);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}

/// Every fan buys at once, at most `concurrency` in flight: no room.
async fn direct(buyer: &Buyer, args: &DropArgs, progress: &ProgressBar) -> Vec<Fan> {
    let started = Instant::now();
    futures::stream::iter(0..args.fans)
        .map(|i| {
            let progress = progress.clone();
            async move {
                let (answer, purchases, refusal) = buyer.buy(i, 0, String::new()).await;
                progress.inc(1);
                Fan {
                    key: Some(buyer.key(i, 0)),
                    purchases,
                    refusals: refusal.into_iter().collect(),
                    answered_at: started.elapsed(),
                    ..Fan::new(answer)
                }
            }
            .instrument(fan_span(i))
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await
}

/// Every fan joins the room, waits for their turn, and buys once admitted; a fan whose
/// purchase met a conflict joins again, a bounded number of times.
async fn through_room(
    buyer: &Buyer,
    args: &DropArgs,
    rooms: Vec<Channel>,
    progress: &ProgressBar,
) -> Vec<Fan> {
    let started = Instant::now();
    let joins = std::sync::Arc::new(tokio::sync::Semaphore::new(JOINS_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.fans {
        let mut room =
            WaitingRoomServiceClient::new(buyer.as_fan(&rooms[i as usize % rooms.len()], i));
        let buyer = buyer.clone();
        let joins = joins.clone();
        let progress = progress.clone();
        tasks.spawn(
            async move {
                let mut fan = one_fan(&buyer, &mut room, i, &joins).await;
                fan.answered_at = started.elapsed();
                progress.inc(1);
                fan
            }
            .instrument(fan_span(i)),
        );
    }
    let mut fans = Vec::with_capacity(args.fans as usize);
    while let Some(joined) = tasks.join_next().await {
        fans.push(
            joined.unwrap_or_else(|error| {
                Fan::new(Answer::Error(format!("fan task failed: {error}")))
            }),
        );
    }
    fans
}

async fn one_fan(
    buyer: &Buyer,
    room: &mut WaitingRoomServiceClient<MeshChannel>,
    i: u32,
    joins: &tokio::sync::Semaphore,
) -> Fan {
    let user = buyer.user(i);
    let mut fan = Fan::new(Answer::Error("never answered".into()));
    loop {
        let joined_at = Instant::now();
        let place = {
            let _permit = joins
                .acquire()
                .await
                .expect("the semaphore is never closed");
            crate::room::join(room, &buyer.event, &user).await
        };
        let outcome = match place {
            Ok(place) => {
                fan.join_number.get_or_insert(place.join_number);
                crate::room::watch(room, &place, |_| {}).await
            }
            Err(status) => Err(status),
        };
        fan.waited.get_or_insert(joined_at.elapsed());
        let admission = match outcome {
            Ok(crate::room::Final::Admitted(admission)) => admission,
            Ok(crate::room::Final::SoldOut(_)) => {
                fan.answer = Answer::SoldOut;
                fan.answered_by_room = true;
                return fan;
            }
            Ok(crate::room::Final::Expired(_)) if fan.requeues < MAX_REQUEUES => {
                // The admission lapsed before this fan bought: back in line.
                fan.requeues += 1;
                if let Err(answer) = requeue(room, &buyer.event, &user).await {
                    fan.answer = answer;
                    return fan;
                }
                continue;
            }
            Ok(crate::room::Final::Expired(_)) => {
                fan.answer = Answer::Expired;
                fan.answered_by_room = true;
                return fan;
            }
            Err(status) => {
                fan.answer =
                    Answer::Error(format!("waiting room: {}", endpoints::describe(&status)));
                return fan;
            }
        };
        fan.admission_number
            .get_or_insert(admission.admission_number);
        let (answer, purchases, refusal) = buyer.buy(i, fan.rejoins, admission.token).await;
        fan.key = Some(buyer.key(i, fan.rejoins));
        fan.purchases.extend(purchases);
        fan.refusals.extend(refusal);
        fan.answer = answer;
        let again = match fan.answer {
            // The seats were held by purchases in flight, or the purchase was interrupted
            // and undone: back in line, at the end, to buy again with a new key.
            Answer::Conflict | Answer::Aborted if fan.rejoins < MAX_REJOINS => {
                fan.rejoins += 1;
                true
            }
            // The admission lapsed before the purchase reached the coordinator (nothing
            // was written): back in line too.
            Answer::Expired if fan.requeues < MAX_REQUEUES => {
                fan.requeues += 1;
                true
            }
            _ => false,
        };
        if !again {
            return fan;
        }
        if let Err(answer) = requeue(room, &buyer.event, &user).await {
            fan.answer = answer;
            return fan;
        }
    }
}

/// Leaves the room so that the next join puts the fan at the back of the queue.
async fn requeue(
    room: &mut WaitingRoomServiceClient<MeshChannel>,
    event: &str,
    user: &str,
) -> Result<(), Answer> {
    leave(room, event, user).await.map_err(|status| {
        Answer::Error(format!(
            "leaving the room: {}",
            endpoints::describe(&status)
        ))
    })
}

/// Leaves the room. The coordinator gives an ended purchase's admission back just after
/// answering (after recovery, for an interrupted one), so the room may still count the
/// purchase in progress for a moment: retried, a bounded number of times with backoff.
async fn leave(
    room: &mut WaitingRoomServiceClient<MeshChannel>,
    event: &str,
    user: &str,
) -> Result<(), tonic::Status> {
    let mut backoff = Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        match room
            .leave(LeaveRequest {
                event_id: event.to_owned(),
                user_id: user.to_owned(),
            })
            .await
        {
            Err(status)
                if status.code() == Code::FailedPrecondition && attempt < LEAVE_ATTEMPTS =>
            {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                attempt += 1;
            }
            other => return other.map(drop),
        }
    }
}

fn report(
    args: &DropArgs,
    protocol: Protocol,
    event: &str,
    fans: &[Fan],
    duration: Duration,
    max_concurrent: Option<u64>,
    audit: Option<&audit::Report>,
) -> DropReport {
    let mut latencies: Vec<f64> = fans
        .iter()
        .flat_map(|f| f.purchases.iter().map(|d| d.as_secs_f64() * 1_000.0))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let mut waits: Vec<f64> = fans
        .iter()
        .filter_map(|f| f.waited.map(|d| d.as_secs_f64() * 1_000.0))
        .collect();
    waits.sort_by(f64::total_cmp);
    let mut report = DropReport {
        protocol: json::protocol(protocol),
        event_id: event.to_owned(),
        seats: args.seats,
        fans: args.fans,
        concurrency: args.concurrency,
        waiting_room: !args.no_waiting_room,
        attempts: latencies.len() as u64,
        sold: 0,
        sold_out: 0,
        sold_out_by_room: 0,
        conflicts: 0,
        declines: 0,
        unknown: 0,
        unknown_resolved: fans.iter().filter(|f| f.resolved).count() as u64,
        aborted: 0,
        expired: 0,
        errors: 0,
        rejoins: fans.iter().map(|f| f.rejoins).sum(),
        requeued_after_expiry: fans.iter().map(|f| f.requeues).sum(),
        oversold: audit.map(|a| a.oversold),
        audit_violations: audit.map(|a| a.violations.len()),
        violations_by_kind: audit
            .map(|a| {
                let mut by_kind = std::collections::BTreeMap::new();
                for v in &a.violations {
                    *by_kind.entry(v.kind.name().to_owned()).or_insert(0) += 1;
                }
                by_kind
            })
            .unwrap_or_default(),
        seats_unsold_while_turned_away: 0,
        fairness_violations: fairness_violations(fans),
        max_concurrent_purchases: max_concurrent.unwrap_or(args.concurrency as u64),
        duration_s: duration.as_secs_f64(),
        purchases_per_s: 0.0,
        attempts_per_s: latencies.len() as f64 / duration.as_secs_f64().max(1e-9),
        p50_ms: percentile(&latencies, 0.50),
        p95_ms: percentile(&latencies, 0.95),
        p99_ms: percentile(&latencies, 0.99),
        wait_p50_ms: percentile(&waits, 0.50),
        wait_p99_ms: percentile(&waits, 0.99),
        last_sale_s: fans
            .iter()
            .filter(|f| matches!(f.answer, Answer::Sold(_)))
            .map(|f| f.answered_at.as_secs_f64())
            .fold(0.0, f64::max),
        timeline: timeline(fans, duration),
        refusals: std::collections::BTreeMap::new(),
        first_error: None,
        settle_error: None,
        audit_error: None,
    };
    for fan in fans {
        for reason in &fan.refusals {
            *report.refusals.entry(reason.clone()).or_default() += 1;
        }
        match &fan.answer {
            Answer::Sold(seats) => report.sold += seats,
            Answer::SoldOut => {
                report.sold_out += 1;
                report.sold_out_by_room += u64::from(fan.answered_by_room);
            }
            Answer::Conflict => report.conflicts += 1,
            Answer::Declined => report.declines += 1,
            Answer::Unknown => report.unknown += 1,
            Answer::Aborted => report.aborted += 1,
            Answer::Expired => report.expired += 1,
            Answer::Error(message) => {
                report.errors += 1;
                report.first_error.get_or_insert(message.clone());
            }
        }
    }
    let turned_away = report.sold_out + report.conflicts + report.expired + report.aborted;
    if let Some(audit) = audit
        && turned_away > 0
    {
        report.seats_unsold_while_turned_away =
            u64::try_from(audit.capacity - audit.sold).unwrap_or(0);
    }
    report.purchases_per_s = report.sold as f64 / duration.as_secs_f64().max(1e-9);
    report
}

/// Sales and answers so far at evenly spaced moments of the drop, ending at its end.
fn timeline(fans: &[Fan], duration: Duration) -> Vec<TimelinePoint> {
    let mut answers: Vec<(Duration, u64)> = fans
        .iter()
        .map(|f| {
            let sold = match f.answer {
                Answer::Sold(seats) => seats,
                _ => 0,
            };
            (f.answered_at, sold)
        })
        .collect();
    answers.sort_unstable_by_key(|(at, _)| *at);
    let step = (duration / TIMELINE_POINTS).max(Duration::from_millis(50));
    let mut points = vec![TimelinePoint {
        t_s: 0.0,
        sold: 0,
        answered: 0,
    }];
    let (mut sold, mut answered, mut next) = (0, 0, 0);
    let mut at = Duration::ZERO;
    while at < duration {
        at = (at + step).min(duration);
        while let Some((answered_at, seats)) = answers.get(next)
            && *answered_at <= at
        {
            sold += seats;
            answered += 1;
            next += 1;
        }
        points.push(TimelinePoint {
            t_s: at.as_secs_f64(),
            sold,
            answered,
        });
    }
    points
}

/// Fans admitted ahead of someone who joined earlier: in join order, a fan counts when
/// any earlier fan was admitted after them, or never (and did not leave).
fn fairness_violations(fans: &[Fan]) -> u64 {
    let mut joined: Vec<(u64, Option<u64>)> = fans
        .iter()
        .filter_map(|f| f.join_number.map(|j| (j, f.admission_number)))
        .collect();
    joined.sort_unstable();
    // The latest admission among earlier fans; None once an earlier fan was never admitted.
    let mut latest_earlier = Some(0u64);
    let mut unfair = 0;
    for (_, admission) in joined {
        if let (Some(admitted), Some(latest)) = (admission, latest_earlier)
            && admitted < latest
        {
            unfair += 1;
        } else if admission.is_some() && latest_earlier.is_none() {
            unfair += 1;
        }
        latest_earlier = match (latest_earlier, admission) {
            (Some(latest), Some(admitted)) => Some(latest.max(admitted)),
            _ => None,
        };
    }
    unfair
}

/// The reason of a refusal the coordinator logged first (its ErrorInfo names the txid).
fn logged_refusal(
    result: &Result<tonic::Response<PurchaseResponse>, tonic::Status>,
) -> Option<String> {
    let (reason, metadata) = server_kit::status::reason_of(result.as_ref().err()?)?;
    (metadata.contains_key("txid") && reason != "OUTCOME_UNKNOWN").then_some(reason)
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
        // The admission lapsed before the purchase reached the coordinator: nothing was
        // written, the fan goes back to the room.
        (_, "ADMISSION_EXPIRED") => Answer::Expired,
        // Certainly not sold: undone after a crash, or aborted when a participant did not
        // answer. (A waiting room that did not answer the admission check carries no
        // reason: the purchase is retried with the same key and admission.)
        (_, "INTERRUPTED" | "PARTICIPANT_UNAVAILABLE") => Answer::Aborted,
        // Unknown (proto's one classification) is, among others, what a connection cut
        // mid-call (a killed coordinator) comes back as.
        _ if Outcome::of(&status) == Outcome::Unknown => Answer::Unknown,
        _ => Answer::Error(endpoints::describe(&status)),
    }
}

/// Creates the event with `seats` seats (rows of up to 100, A-1-1 first) unless it exists.
pub(crate) async fn ensure_event(
    endpoints: &Endpoints,
    event: &str,
    seats: u32,
) -> anyhow::Result<()> {
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
    // Section A: rows of up to 100 seats (A-1-1 is always a seat); the rest in B.
    let mut sections = vec![SectionLayout {
        name: "A".into(),
        rows: (seats / 100).max(1),
        seats_per_row: seats.min(100),
        price_tier: "std".into(),
    }];
    if seats > 100 && !seats.is_multiple_of(100) {
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
    }
}

/// An audit's figure, or "not audited".
pub fn audited(figure: Option<usize>) -> String {
    figure.map_or_else(|| "not audited".to_owned(), |n| n.to_string())
}
