//! The `ticketdrop.v1.WaitingRoomService` gRPC service: validates each request into a
//! domain type, runs it against the store, and maps the outcome to a response or a
//! status. Watch streams live in their own tasks.

use std::sync::Arc;
use std::time::Duration;

use proto::error::FieldError;
use proto::v1::inventory_service_client::InventoryServiceClient;
use proto::v1::waiting_room_service_server::WaitingRoomService;
use proto::v1::*;
use server_kit::convert;
use server_kit::outgoing::MeshChannel;
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

use crate::admission::{Refusal, Signer};
use crate::error::{Error, Result};
use crate::model::{FanRef, FanState, RoomPhase, RoomSettings};
use crate::store::{ClaimOutcome, Fan, Joined, OpenOutcome, RoomRecord, Store};
use crate::watchers::{Signal, Watchers};

/// Most seats one purchase may ask for (as the coordinator allows).
const MAX_SEATS: u32 = proto::MAX_SEATS as u32;

#[derive(Clone)]
pub struct WaitingRoom {
    pub store: Store,
    pub signer: Signer,
    pub watchers: Arc<Watchers>,
    pub wake: Arc<Notify>,
    pub inventory: InventoryServiceClient<MeshChannel>,
    pub purchase_lease: Duration,
    /// How long past its expiry an unused admission keeps its slot for a purchase the
    /// coordinator received in time.
    pub claim_grace: Duration,
    pub position_interval: Duration,
    /// Turns true when shutdown begins.
    pub closing: tokio::sync::watch::Receiver<bool>,
    /// Joins per fan and per client address.
    pub limits: Arc<server_kit::rate::RateLimits>,
}

type Reply<T> = std::result::Result<Response<T>, Status>;
type BoxStream<T> = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = std::result::Result<T, Status>> + Send + 'static>,
>;

impl WaitingRoom {
    fn room(&self, record: &RoomRecord) -> Room {
        Room {
            event_id: record.event_id.clone(),
            max_active: record.max_active,
            admission_ttl: Some(convert::duration(Duration::from_millis(
                record.admission_ttl_ms,
            ))),
            state: match record.phase {
                RoomPhase::PreQueue => RoomState::PreQueue,
                RoomPhase::Open => RoomState::Open,
                RoomPhase::SoldOut => RoomState::SoldOut,
            }
            .into(),
            opened_at: timestamp(record.opened_at_ms),
            waiting: record.waiting,
            active: record.active,
            purchasing: record.purchasing,
            admitted: record.admitted,
            purchased: record.purchased,
            sold_out: record.sold_out,
            expired: record.expired,
            left: record.left,
            joined: record.joined,
            admission_rate: self.watchers.rate(&record.event_id),
            capacity: record.capacity,
            seats_sold: record.seats_sold,
            sold_out_at: record.sold_out_at_ms.and_then(timestamp),
            max_purchasing_seen: record.max_purchasing_seen,
            finished: record.releases.saturating_sub(record.purchased),
            opens_at: record.opens_at_ms.and_then(timestamp),
            pre_queued: record.pre_queued,
            pre_queue_placed: record.pre_queue_placed,
            shuffle_seed: record.shuffle_seed,
        }
    }

    fn place(
        &self,
        fan: &FanRef,
        state: FanState,
        join_number: u64,
        rank: Option<u64>,
        joined_at_ms: i64,
        opens_at_ms: Option<i64>,
    ) -> Place {
        let position = rank
            .filter(|_| state == FanState::Waiting)
            .map_or(0, |r| r + 1);
        let rate = self.watchers.rate(&fan.event_id);
        Place {
            event_id: fan.event_id.clone(),
            user_id: fan.user_id.clone(),
            state: proto::v1::FanState::from(state).into(),
            join_number,
            position,
            estimated_wait: (position > 0 && rate > 0.0)
                .then(|| convert::duration(Duration::from_secs_f64(position as f64 / rate))),
            joined_at: timestamp(joined_at_ms),
            opens_at: opens_at_ms
                .filter(|_| state == FanState::PreQueue)
                .and_then(timestamp),
        }
    }

    /// Puts the fan in the queue (Join, and Watch with `join`): the caller must act for
    /// the fan and pass the rate limit. The join, and the place to answer with.
    async fn enter<T>(
        &self,
        fan: &FanRef,
        request: &Request<T>,
    ) -> std::result::Result<(Joined, Place), Status> {
        let caller = server_kit::auth::caller(request)?;
        caller.act_for(&fan.user_id)?;
        self.limits
            .check("Join", &caller, request.remote_addr().map(|addr| addr.ip()))?;
        let joined = self
            .store
            .join(&fan.event_id, &fan.user_id)
            .await
            .map_err(Status::from)?;
        if joined.state == FanState::Waiting {
            self.wake.notify_one();
        }
        let opens_at_ms = self
            .opens_at(&fan.event_id, joined.state)
            .await
            .map_err(Status::from)?;
        let place = self.place(
            fan,
            joined.state,
            joined.join_number,
            joined.rank,
            joined.joined_at_ms,
            opens_at_ms,
        );
        Ok((joined, place))
    }

    /// When the room's sale opens, for a fan in its pre-queue.
    async fn opens_at(&self, event_id: &str, state: FanState) -> Result<Option<i64>> {
        if state != FanState::PreQueue {
            return Ok(None);
        }
        Ok(self
            .store
            .room(event_id)
            .await?
            .and_then(|room| room.opens_at_ms))
    }

    fn admission(&self, fan: &FanRef, record: &Fan) -> Option<Admission> {
        let admission = record.admission.as_ref()?;
        Some(Admission {
            token: self.signer.sign(
                &fan.event_id,
                &fan.user_id,
                &admission.admission_id,
                admission.admitted_at_ms,
                admission.expires_at_ms,
            ),
            admission_id: admission.admission_id.clone(),
            expires_at: timestamp(admission.expires_at_ms),
            admission_number: admission.admission_number,
        })
    }

    async fn claim(&self, request: &ClaimAdmissionRequest) -> Result<ClaimAdmissionResponse> {
        let fan = FanRef::parse(&request.event_id, &request.user_id)?;
        if request.idempotency_key.is_empty() || request.idempotency_key.len() > 255 {
            return Err(FieldError::new("idempotency_key", "must be 1 to 255 characters").into());
        }
        if !(1..=MAX_SEATS).contains(&request.seats) {
            return Err(FieldError::new(
                "seats",
                format!("must be between 1 and {MAX_SEATS}, got {}", request.seats),
            )
            .into());
        }
        let no_room = || ClaimAdmissionResponse {
            room_open: false,
            admission_id: String::new(),
        };
        let refused = |outcome: ClaimOutcome| match outcome {
            ClaimOutcome::Expired => Error::AdmissionExpired {
                event_id: fan.event_id.clone(),
                user_id: fan.user_id.clone(),
            },
            ClaimOutcome::Used => Error::AdmissionUsed {
                event_id: fan.event_id.clone(),
                user_id: fan.user_id.clone(),
            },
            ClaimOutcome::Invalid(why) => Error::AdmissionInvalid {
                event_id: fan.event_id.clone(),
                user_id: fan.user_id.clone(),
                why,
            },
            ClaimOutcome::Claimed | ClaimOutcome::NoRoom => {
                unreachable!("only refusals are mapped")
            }
        };
        if request.admission_token.is_empty() {
            return if self.store.room_exists(&fan.event_id).await? {
                Err(Error::AdmissionRequired {
                    event_id: fan.event_id,
                })
            } else {
                Ok(no_room())
            };
        }
        // The admission must be unexpired when the coordinator received the purchase
        // (its clock; a fan's is not trusted), never later than now.
        let now_ms = chrono::Utc::now().timestamp_millis();
        let received_at_ms = request
            .received_at
            .as_ref()
            .map(|at| at.seconds * 1_000 + i64::from(at.nanos) / 1_000_000)
            .map(|ms| ms.min(now_ms));
        let as_of_ms = received_at_ms.unwrap_or(now_ms);
        let claims = match self.signer.verify(
            &request.admission_token,
            &fan.event_id,
            &fan.user_id,
            as_of_ms,
        ) {
            Ok(claims) => claims,
            // A token, good or bad, does not matter to an event without a room.
            Err(_) if !self.store.room_exists(&fan.event_id).await? => return Ok(no_room()),
            Err(Refusal::Expired) => return Err(refused(ClaimOutcome::Expired)),
            Err(Refusal::Invalid(why)) => return Err(refused(ClaimOutcome::Invalid(why.into()))),
        };
        match self
            .store
            .claim(
                &fan.event_id,
                &fan.user_id,
                &claims.adm,
                &request.idempotency_key,
                request.seats,
                received_at_ms,
            )
            .await?
        {
            ClaimOutcome::Claimed => Ok(ClaimAdmissionResponse {
                room_open: true,
                admission_id: claims.adm,
            }),
            ClaimOutcome::NoRoom => Ok(no_room()),
            outcome => Err(refused(outcome)),
        }
    }
}

#[tonic::async_trait]
impl WaitingRoomService for WaitingRoom {
    async fn open_room(&self, request: Request<OpenRoomRequest>) -> Reply<OpenRoomResponse> {
        let settings = RoomSettings::try_from(request.get_ref())?;
        let counts = self
            .inventory
            .clone()
            .get_seat_counts(GetSeatCountsRequest {
                event_id: settings.event_id.clone(),
            })
            .await
            .map_err(|status| match status.code() {
                Code::NotFound => Error::EventNotFound(settings.event_id.clone()),
                _ => Error::Inventory(status),
            })?
            .into_inner();
        let outcome = self
            .store
            .open(
                &settings,
                self.purchase_lease,
                self.claim_grace,
                counts.capacity,
            )
            .await
            .map_err(Status::from)?;
        if outcome == OpenOutcome::SaleAlreadyOpened {
            return Err(Error::SaleOpened(settings.event_id).into());
        }
        self.wake.notify_one();
        tracing::info!(event_id = %settings.event_id, max_active = settings.max_active,
                       admission_ttl = ?settings.admission_ttl, opens_at_ms = settings.opens_at_ms,
                       "room open");
        let record = self
            .store
            .room(&settings.event_id)
            .await
            .map_err(Status::from)?;
        Ok(Response::new(OpenRoomResponse {
            room: record.as_ref().map(|r| self.room(r)),
        }))
    }

    async fn get_room(&self, request: Request<GetRoomRequest>) -> Reply<GetRoomResponse> {
        let event_id = server_kit::validate::id("event_id", &request.get_ref().event_id)?;
        let record = self
            .store
            .room(&event_id)
            .await
            .map_err(Status::from)?
            .ok_or_else(|| Error::NoRoom(event_id.clone()))?;
        Ok(Response::new(GetRoomResponse {
            room: Some(self.room(&record)),
        }))
    }

    async fn join(&self, request: Request<JoinRequest>) -> Reply<JoinResponse> {
        let r = request.get_ref();
        let fan = FanRef::parse(&r.event_id, &r.user_id)?;
        let (_, place) = self.enter(&fan, &request).await?;
        Ok(Response::new(JoinResponse { place: Some(place) }))
    }

    async fn watch(&self, request: Request<WatchRequest>) -> Reply<BoxStream<WatchResponse>> {
        let r = request.get_ref();
        let fan = FanRef::parse(&r.event_id, &r.user_id)?;
        let (joined, found) = if r.join {
            let (joined, place) = self.enter(&fan, &request).await?;
            // While the fan waits (or the room is sold out), the join said all the
            // stream's first round needs: no Redis read.
            let found = matches!(
                joined.state,
                FanState::Waiting | FanState::PreQueue | FanState::SoldOut
            )
            .then(|| {
                let record = Fan {
                    state: joined.state,
                    join_number: joined.join_number,
                    joined_at_ms: joined.joined_at_ms,
                    admission: None,
                };
                (record, joined.rank)
            });
            (Some(place), found)
        } else {
            server_kit::auth::caller(&request)?.act_for(&fan.user_id)?;
            let Some(found) = self
                .store
                .fan(&fan.event_id, &fan.user_id)
                .await
                .map_err(Status::from)?
            else {
                return Err(Error::FanNotFound {
                    event_id: fan.event_id,
                    user_id: fan.user_id,
                }
                .into());
            };
            (None, Some(found))
        };
        let (sender, receiver) = mpsc::channel(4);
        // The stream's first place is the record just read, or what the join said: a
        // waiting fan's Watch costs one Redis call (the read, or the join) before their turn.
        tokio::spawn(follow(self.clone(), fan, sender, joined, found));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn leave(&self, request: Request<LeaveRequest>) -> Reply<LeaveResponse> {
        let r = request.get_ref();
        let fan = FanRef::parse(&r.event_id, &r.user_id)?;
        server_kit::auth::caller(&request)?.act_for(&fan.user_id)?;
        let left = self
            .store
            .leave(&fan.event_id, &fan.user_id)
            .await
            .map_err(Status::from)?;
        if left == Some(FanState::Purchasing) {
            return Err(Error::PurchaseInFlight {
                event_id: fan.event_id,
                user_id: fan.user_id,
            }
            .into());
        }
        if left.is_some() {
            self.wake.notify_one();
        }
        Ok(Response::new(LeaveResponse {
            left_from: left
                .map_or(proto::v1::FanState::Unspecified, Into::into)
                .into(),
        }))
    }

    async fn claim_admission(
        &self,
        request: Request<ClaimAdmissionRequest>,
    ) -> Reply<ClaimAdmissionResponse> {
        Ok(Response::new(self.claim(request.get_ref()).await?))
    }

    async fn release_admission(
        &self,
        request: Request<ReleaseAdmissionRequest>,
    ) -> Reply<ReleaseAdmissionResponse> {
        let r = request.get_ref();
        let fan = FanRef::parse(&r.event_id, &r.user_id)?;
        server_kit::auth::caller(&request)?.act_for(&fan.user_id)?;
        let admission_id = server_kit::validate::id("admission_id", &r.admission_id)?;
        let released = self
            .store
            .release(
                &fan.event_id,
                &fan.user_id,
                &admission_id,
                &r.idempotency_key,
                r.committed,
            )
            .await
            .map_err(Status::from)?;
        if released {
            self.wake.notify_one();
        }
        Ok(Response::new(ReleaseAdmissionResponse { released }))
    }
}

/// A Watch stream: the place a join gave (when the call joined), the fan's place while
/// they wait, then one final message.
async fn follow(
    room: WaitingRoom,
    fan: FanRef,
    sender: mpsc::Sender<std::result::Result<WatchResponse, Status>>,
    joined: Option<Place>,
    mut read: Option<(Fan, Option<u64>)>,
) {
    use watch_response::Update;
    let send = |update: Update| {
        let sender = sender.clone();
        async move {
            sender
                .send(Ok(WatchResponse {
                    update: Some(update),
                }))
                .await
                .is_ok()
        }
    };
    let mut last_position = None;
    if let Some(place) = joined {
        // The position the join gave is not repeated as a first `waiting`.
        last_position = Some(place.position);
        if !send(Update::Joined(place)).await {
            return;
        }
    }
    let mut closing = room.closing.clone();
    let closed =
        || Status::unavailable("the waiting room is shutting down; watch again to keep your place");
    loop {
        if *closing.borrow() {
            let _ = sender.send(Err(closed())).await;
            return;
        }
        let found = match read.take() {
            Some(found) => Ok(Some(found)),
            None => room.store.fan(&fan.event_id, &fan.user_id).await,
        };
        let (record, rank) = match found {
            Ok(Some(found)) => found,
            Ok(None) => {
                let status = Status::from(Error::FanNotFound {
                    event_id: fan.event_id.clone(),
                    user_id: fan.user_id.clone(),
                });
                let _ = sender.send(Err(status)).await;
                return;
            }
            Err(error) => {
                let _ = sender.send(Err(Status::from(error))).await;
                return;
            }
        };
        let final_update = match record.state {
            FanState::Waiting | FanState::PreQueue => None,
            FanState::SoldOut => {
                let room_record = room.store.room(&fan.event_id).await.ok().flatten();
                Some(Update::SoldOut(SoldOut {
                    sold_out_at: room_record
                        .as_ref()
                        .and_then(|r| r.sold_out_at_ms)
                        .and_then(timestamp),
                    capacity: room_record.map_or(0, |r| r.capacity),
                }))
            }
            FanState::Expired => Some(Update::Expired(Expired {
                expired_at: record
                    .admission
                    .as_ref()
                    .and_then(|a| timestamp(a.expires_at_ms)),
            })),
            _ => match room.admission(&fan, &record) {
                Some(admission) => Some(Update::Admitted(admission)),
                None => {
                    let status = Status::internal("the fan's record has no admission");
                    let _ = sender.send(Err(status)).await;
                    return;
                }
            },
        };
        if let Some(update) = final_update {
            let _ = send(update).await;
            return;
        }
        // Register before sending the position, so an admission (or the opening) in
        // between is not lost.
        let signal = if record.state == FanState::PreQueue {
            room.watchers.wait_opening(&fan.event_id)
        } else {
            room.watchers.wait(&fan.event_id, record.join_number)
        };
        let opens_at_ms = match room.opens_at(&fan.event_id, record.state).await {
            Ok(at) => at,
            Err(error) => {
                let _ = sender.send(Err(Status::from(error))).await;
                return;
            }
        };
        let place = room.place(
            &fan,
            record.state,
            record.join_number,
            rank,
            record.joined_at_ms,
            opens_at_ms,
        );
        // A pre-queued fan also looks again when the sale is due to open (another
        // instance may open it).
        let refresh = refresh_after(room.position_interval, last_position.unwrap_or(0));
        let refresh = match opens_at_ms {
            Some(at) => {
                let until = at - chrono::Utc::now().timestamp_millis();
                refresh.min(Duration::from_millis(
                    u64::try_from(until).unwrap_or(0) + 50,
                ))
            }
            None => refresh,
        };
        if last_position != Some(place.position) {
            last_position = Some(place.position);
            if !send(Update::Waiting(place)).await {
                return;
            }
        }
        tokio::select! {
            signal = signal => match signal {
                Ok(Signal::Admitted(admitted)) => {
                    let token = room.signer.sign(
                        &fan.event_id,
                        &fan.user_id,
                        &format!("adm-{}", admitted.admission_number),
                        admitted.admitted_at_ms,
                        admitted.expires_at_ms,
                    );
                    let _ = send(Update::Admitted(Admission {
                        token,
                        admission_id: format!("adm-{}", admitted.admission_number),
                        expires_at: timestamp(admitted.expires_at_ms),
                        admission_number: admitted.admission_number,
                    }))
                    .await;
                    return;
                }
                Ok(Signal::SoldOut { at_ms, capacity }) => {
                    let _ = send(Update::SoldOut(SoldOut {
                        sold_out_at: timestamp(at_ms),
                        capacity,
                    }))
                    .await;
                    return;
                }
                Ok(Signal::Recheck) | Err(_) => {}
            },
            () = tokio::time::sleep(refresh) => {}
            () = sender.closed() => return,
            _ = closing.changed() => {}
        }
    }
}

/// Fans this near the front re-read their place every position interval.
const FRONT: u64 = 500;
/// The longest a waiting fan goes without re-reading their place.
const MAX_POSITION_INTERVAL: Duration = Duration::from_secs(30);

/// When a waiting fan re-reads their place: every interval near the front, less often the
/// further back they are (a place far back changes little in one interval), at most every
/// 30 s, with jitter so that fans who joined together do not read together. Admission and
/// sold-out wake a fan at once whatever this says; fifty thousand fans waiting cost a few
/// thousand Redis reads a second instead of one per fan per interval.
fn refresh_after(interval: Duration, position: u64) -> Duration {
    let further_back = (position as f64 / FRONT as f64).max(1.0);
    let interval = interval
        .mul_f64(further_back)
        .min(MAX_POSITION_INTERVAL.max(interval));
    interval.mul_f64(0.8 + 0.4 * fastrand::f64())
}

fn timestamp(ms: i64) -> Option<prost_types::Timestamp> {
    chrono::DateTime::from_timestamp_millis(ms)
        .filter(|_| ms > 0)
        .map(convert::timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_further_back_is_re_read_less_often_and_never_past_thirty_seconds() {
        let interval = Duration::from_secs(2);
        for _ in 0..100 {
            let front = refresh_after(interval, 1);
            assert!(front >= interval.mul_f64(0.8) && front <= interval.mul_f64(1.2));
            // 5,000 places back: ten times the interval, give or take the jitter.
            let back = refresh_after(interval, 5_000);
            assert!(back >= Duration::from_secs(16) && back <= Duration::from_secs(24));
            let far = refresh_after(interval, 50_000);
            assert!(far >= Duration::from_secs(24) && far <= Duration::from_secs(36));
        }
    }
}
