//! One fan's journey: join the room, wait for the turn, buy with an idempotency key,
//! retry an unknown outcome with the same key, go back to the room after a conflict or a
//! lapsed admission; and what each answer means (proto's one classification of a failed
//! call, read by reason).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::ProgressBar;
use proto::outcome::Outcome;
use proto::v1::*;
use tonic::Code;
use tracing::Instrument;

use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use proto::v1::waiting_room_service_client::WaitingRoomServiceClient;
use server_kit::outgoing::{MeshChannel, Outgoing};
use tonic::transport::Channel;

use crate::endpoints::{self};

use super::Load;

#[derive(Debug, Clone)]
pub(crate) enum Answer {
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
pub(crate) struct Fan {
    /// The fan's first join number and first admission number (room mode).
    pub(crate) join_number: Option<u64>,
    pub(crate) admission_number: Option<u64>,
    pub(crate) answer: Answer,
    /// The idempotency key of the fan's last purchase, if they made one.
    pub(crate) key: Option<String>,
    /// Whether the answer was unknown and then resolved by the key.
    pub(crate) resolved: bool,
    pub(crate) answered_by_room: bool,
    pub(crate) purchases: Vec<Duration>,
    /// The reason of each of the fan's purchases that the coordinator logged and refused.
    pub(crate) refusals: Vec<String>,
    pub(crate) waited: Option<Duration>,
    /// When the fan got their last answer, after the drop began.
    pub(crate) answered_at: Duration,
    pub(crate) rejoins: u64,
    /// Times the fan's admission lapsed unused and they went back to the room.
    pub(crate) requeues: u64,
}

impl Fan {
    pub(crate) fn new(answer: Answer) -> Self {
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
pub(crate) const UNKNOWN_RETRIES: usize = 8;

/// How long one purchase call may take before the fan counts its outcome as unknown.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Times a fan whose purchase met a conflict (or was interrupted) joins the room again.
pub(crate) const MAX_REJOINS: u64 = 3;

/// Times a fan whose admission lapsed before they bought goes back to the room.
pub(crate) const MAX_REQUEUES: u64 = 3;

/// Tries of leaving the room while it still counts the fan's purchase (about two minutes,
/// the room's default purchase lease): an aborted purchase whose undo did not finish is
/// parked and keeps its slot until the coordinator's recovery ends it, which on a loaded
/// machine takes a few recovery rounds (5 s, then 10 s, 20 s, ...).
pub(crate) const LEAVE_ATTEMPTS: u32 = 125;

/// Joins in flight at once: a fan's Watch holds a permit until the room has answered its
/// join (the stream then stays open, without one, until the fan's turn).
pub(crate) const JOINS_IN_FLIGHT: usize = 256;

/// Connections fans share to the room (each carries many watch streams).
pub(crate) const ROOM_CHANNELS: usize = 8;

/// Each fan's journey is a trace of its own, not a part of the drop's.
pub(crate) fn fan_span(fan: u32) -> tracing::Span {
    tracing::info_span!(parent: None, "fan", fan)
}

/// The user id of fan number `fan` of the drop `run`.
pub(crate) fn fan_user(run: &str, fan: u32) -> String {
    format!("fan-{run}-{fan}")
}

/// What every fan's purchase shares.
#[derive(Clone)]
pub(crate) struct Buyer {
    pub(crate) coordinator: Channel,
    /// Each fan's own credential, by fan number.
    pub(crate) credentials: Arc<Vec<Outgoing>>,
    pub(crate) event: String,
    pub(crate) run: String,
    pub(crate) protocol: Protocol,
    pub(crate) email_fans: bool,
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
pub(crate) async fn direct(buyer: &Buyer, args: &Load, progress: &ProgressBar) -> Vec<Fan> {
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
pub(crate) async fn through_room(
    buyer: &Buyer,
    args: &Load,
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

pub(crate) async fn one_fan(
    buyer: &Buyer,
    room: &mut WaitingRoomServiceClient<MeshChannel>,
    i: u32,
    joins: &tokio::sync::Semaphore,
) -> Fan {
    let user = buyer.user(i);
    let mut fan = Fan::new(Answer::Error("never answered".into()));
    loop {
        let joined_at = Instant::now();
        let wait =
            crate::room::join_and_watch(room, &buyer.event, &user, Some(joins), |_| {}).await;
        fan.waited.get_or_insert(joined_at.elapsed());
        let outcome = wait.map(|wait| {
            fan.join_number.get_or_insert(wait.join_number);
            wait.outcome
        });
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
pub(crate) async fn requeue(
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
/// answering (after recovery, for an interrupted or parked one), so the room may still
/// count the purchase in progress for a while: retried, a bounded number of times with
/// backoff, each wait past the tenth logged.
pub(crate) async fn leave(
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
            // Still buying (the last purchase has not ended), or the room did not answer:
            // leaving is idempotent, so it is tried again.
            Err(status)
                if matches!(
                    status.code(),
                    Code::FailedPrecondition | Code::Unavailable | Code::ResourceExhausted
                ) && attempt < LEAVE_ATTEMPTS =>
            {
                if attempt >= 10 {
                    tracing::info!(
                        user,
                        event,
                        attempt,
                        error = %status.message(),
                        "the fan could not leave the room yet; trying again"
                    );
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                attempt += 1;
            }
            other => return other.map(drop),
        }
    }
}

/// The reason of a refusal the coordinator logged first (its ErrorInfo names the txid).
pub(crate) fn logged_refusal(
    result: &Result<tonic::Response<PurchaseResponse>, tonic::Status>,
) -> Option<String> {
    let refusal = proto::error::Refusal::of(result.as_ref().err()?)?;
    (refusal.get("txid").is_some() && refusal.reason != ErrorReason::OutcomeUnknown)
        .then(|| refusal.reason.name().to_owned())
}

pub(crate) fn classify(result: Result<tonic::Response<PurchaseResponse>, tonic::Status>) -> Answer {
    let status = match result {
        Ok(response) => return Answer::Sold(response.into_inner().seats.len() as u64),
        Err(status) => status,
    };
    let reason = proto::error::Refusal::of(&status)
        .map(|refusal| refusal.reason)
        .unwrap_or_default();
    match reason {
        ErrorReason::SoldOut => Answer::SoldOut,
        ErrorReason::SeatTaken | ErrorReason::HoldLost | ErrorReason::StaleFencingToken => {
            Answer::Conflict
        }
        ErrorReason::CardDeclined => Answer::Declined,
        // The admission lapsed before the purchase reached the coordinator: nothing was
        // written, the fan goes back to the room.
        ErrorReason::AdmissionExpired => Answer::Expired,
        // Certainly not sold: undone after a crash, or aborted when a participant did not
        // answer. (A waiting room that did not answer the admission check carries no
        // reason: the purchase is retried with the same key and admission.)
        ErrorReason::Interrupted | ErrorReason::ParticipantUnavailable => Answer::Aborted,
        // Unknown (proto's one classification) is, among others, what a connection cut
        // mid-call (a killed coordinator) comes back as.
        _ if Outcome::of(&status) == Outcome::Unknown => Answer::Unknown,
        _ => Answer::Error(endpoints::describe(&status)),
    }
}
