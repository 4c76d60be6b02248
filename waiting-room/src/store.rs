//! The rooms in Redis. Every state change is one Lua script, so it is atomic however
//! many waiting-room instances share the store, and nothing lives only in the service:
//! a SIGKILLed service restarts on the same rooms, queues and admissions.
//!
//! Keys, for prefix `P` and event `E` (the `{E}` hash tag keeps a room in one slot):
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `P:rooms` | set | events with a room |
//! | `P:{E}` | hash | settings, state, counters |
//! | `P:{E}:queue` | sorted set | waiting fans scored by join number |
//! | `P:{E}:prequeue` | sorted set | fans who joined before the sale opened (until the opening places them) |
//! | `P:{E}:active` | sorted set | admitted and purchasing fans scored by deadline (ms) |
//! | `P:{E}:fan:U` | hash | one fan: state, join number, admission, purchase key |

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use crate::error::{Error, Result};
use crate::model::{FanState, RoomPhase, RoomSettings};

/// How long a fan's record is kept after they join.
const FAN_RECORD_TTL: Duration = Duration::from_secs(24 * 3600);

/// The scripts, loaded once (EVALSHA, falling back to EVAL after a Redis restart).
struct Scripts {
    open: Script,
    open_sale: Script,
    join: Script,
    admit: Script,
    sold_out: Script,
    claim: Script,
    release: Script,
    leave: Script,
}

/// The rooms, in Redis.
#[derive(Clone)]
pub struct Store {
    redis: ConnectionManager,
    prefix: String,
    scripts: std::sync::Arc<Scripts>,
}

/// A fan's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fan {
    pub state: FanState,
    pub join_number: u64,
    pub joined_at_ms: i64,
    pub admission: Option<AdmissionRecord>,
}

/// What an admitted fan was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionRecord {
    pub admission_id: String,
    pub admission_number: u64,
    pub admitted_at_ms: i64,
    pub expires_at_ms: i64,
}

/// A fan's place right after Join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub state: FanState,
    pub join_number: u64,
    /// 0-based rank in the queue, while waiting.
    pub rank: Option<u64>,
    pub joined_at_ms: i64,
}

/// A room's hash, decoded.
#[derive(Debug, Clone, Default)]
pub struct RoomRecord {
    pub event_id: String,
    pub phase: RoomPhase,
    /// When the sale opens (or opened), for a room that started in the pre-queue.
    pub opens_at_ms: Option<i64>,
    /// Fans in the pre-queue now.
    pub pre_queued: u64,
    /// Fans the opening placed from the pre-queue (join numbers 1 to this).
    pub pre_queue_placed: u64,
    /// The seed the opening shuffled with (0 before it).
    pub shuffle_seed: u64,
    /// The seed OpenRoom asked for (0: draw one at the opening).
    pub requested_seed: u64,
    pub max_active: u32,
    pub admission_ttl_ms: u64,
    pub opened_at_ms: i64,
    pub sold_out_at_ms: Option<i64>,
    pub joined: u64,
    pub admitted: u64,
    pub admitted_through: u64,
    pub purchasing: u64,
    pub claims: u64,
    pub purchased: u64,
    pub releases: u64,
    pub sold_out: u64,
    pub expired: u64,
    pub left: u64,
    pub capacity: u64,
    pub seats_sold: u64,
    pub max_purchasing_seen: u64,
    pub waiting: u64,
    pub active: u64,
}

/// One fan admitted by an admission round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub user_id: String,
    pub join_number: u64,
    pub admission_number: u64,
    pub admitted_at_ms: i64,
    pub expires_at_ms: i64,
}

/// What an admission round did.
#[derive(Debug, Clone)]
pub struct Round {
    pub exists: bool,
    pub open: bool,
    pub lapsed: u64,
    pub waiting: u64,
    pub active: u64,
    pub purchasing: u64,
    pub claims: u64,
    pub admitted_through: u64,
    pub admitted: Vec<Admitted>,
    /// Purchasing fans whose purchase lease passed: their purchase may have ended with
    /// its release lost, or may still be in flight (ask the coordinator).
    pub overdue: Vec<String>,
}

/// The seat counts an admission round decides from, as inventory reported them.
#[derive(Debug, Clone, Copy)]
pub struct Seats {
    pub capacity: u64,
    pub sold: u64,
    /// Free to buy now: AVAILABLE and in no live prepared branch.
    pub available: u64,
}

/// What opening a room's sale did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaleOpening {
    /// Placed this many pre-queued fans; the room is OPEN.
    Opened(u64),
    /// Redis's clock is not at opens_at yet.
    Early,
    /// A fan entered or stayed in the pre-queue whom the order lacks: read it again.
    Stale,
    /// The sale was open already (another instance opened it).
    NotPreQueue,
}

/// How OpenRoom went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenOutcome {
    Opened,
    /// opens_at or the seed would change a room whose sale has opened: nothing changed.
    SaleAlreadyOpened,
}

/// How a claim went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    Claimed,
    NoRoom,
    Invalid(String),
    Expired,
    Used,
}

impl Store {
    pub fn new(redis: ConnectionManager, prefix: &str) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            scripts: std::sync::Arc::new(Scripts {
                open: Script::new(include_str!("scripts/open.lua")),
                open_sale: Script::new(include_str!("scripts/open_sale.lua")),
                join: Script::new(include_str!("scripts/join.lua")),
                admit: Script::new(include_str!("scripts/admit.lua")),
                sold_out: Script::new(include_str!("scripts/sold_out.lua")),
                claim: Script::new(include_str!("scripts/claim.lua")),
                release: Script::new(include_str!("scripts/release.lua")),
                leave: Script::new(include_str!("scripts/leave.lua")),
            }),
        }
    }

    fn rooms_key(&self) -> String {
        format!("{}:rooms", self.prefix)
    }

    fn room_key(&self, event_id: &str) -> String {
        format!("{}:{{{event_id}}}", self.prefix)
    }

    fn queue_key(&self, event_id: &str) -> String {
        format!("{}:queue", self.room_key(event_id))
    }

    fn pre_queue_key(&self, event_id: &str) -> String {
        format!("{}:prequeue", self.room_key(event_id))
    }

    fn active_key(&self, event_id: &str) -> String {
        format!("{}:active", self.room_key(event_id))
    }

    fn fan_prefix(&self, event_id: &str) -> String {
        format!("{}:fan:", self.room_key(event_id))
    }

    fn fan_key(&self, event_id: &str, user_id: &str) -> String {
        format!("{}{user_id}", self.fan_prefix(event_id))
    }

    pub async fn open(
        &self,
        settings: &RoomSettings,
        lease: Duration,
        claim_grace: Duration,
        capacity: u64,
    ) -> Result<OpenOutcome> {
        let ttl_ms = millis(settings.admission_ttl);
        let lease_ms = millis(lease).max(ttl_ms);
        let outcome: String = self
            .scripts
            .open
            .key(self.room_key(&settings.event_id))
            .key(self.rooms_key())
            .arg(&settings.event_id)
            .arg(settings.max_active)
            .arg(ttl_ms)
            .arg(lease_ms)
            .arg(capacity)
            .arg(millis(claim_grace))
            .arg(
                settings
                    .opens_at_ms
                    .map(|ms| ms.to_string())
                    .unwrap_or_default(),
            )
            .arg(settings.shuffle_seed)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(match outcome.as_str() {
            "SALE_OPENED" => OpenOutcome::SaleAlreadyOpened,
            _ => OpenOutcome::Opened,
        })
    }

    /// The fans in the pre-queue, in no particular order.
    pub async fn pre_queue(&self, event_id: &str) -> Result<Vec<String>> {
        Ok(self
            .redis
            .clone()
            .zrange(self.pre_queue_key(event_id), 0, -1)
            .await?)
    }

    /// Opens the sale: the pre-queued fans take join numbers in `order` (see
    /// scripts/open_sale.lua).
    pub async fn open_sale(
        &self,
        event_id: &str,
        seed: u64,
        order: &[String],
    ) -> Result<SaleOpening> {
        let reply: Vec<redis::Value> = self
            .scripts
            .open_sale
            .key(self.room_key(event_id))
            .key(self.pre_queue_key(event_id))
            .key(self.queue_key(event_id))
            .arg(self.fan_prefix(event_id))
            .arg(seed)
            .arg(order)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(match text(&reply, 0).as_str() {
            "OPENED" => SaleOpening::Opened(number(&reply, 1)),
            "EARLY" => SaleOpening::Early,
            "STALE" => SaleOpening::Stale,
            "NOT_PRE_QUEUE" => SaleOpening::NotPreQueue,
            other => {
                return Err(Error::Unexpected(format!(
                    "open_sale.lua answered {other:?}"
                )));
            }
        })
    }

    /// Every event with a room.
    pub async fn rooms(&self) -> Result<Vec<String>> {
        Ok(self.redis.clone().smembers(self.rooms_key()).await?)
    }

    pub async fn room(&self, event_id: &str) -> Result<Option<RoomRecord>> {
        let mut redis = self.redis.clone();
        let (fields, waiting, active, pre_queued): (HashMap<String, String>, u64, u64, u64) =
            redis::pipe()
                .hgetall(self.room_key(event_id))
                .zcard(self.queue_key(event_id))
                .zcard(self.active_key(event_id))
                .zcard(self.pre_queue_key(event_id))
                .query_async(&mut redis)
                .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let n = |name: &str| {
            fields
                .get(name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0u64)
        };
        let i = |name: &str| fields.get(name).and_then(|v| v.parse::<i64>().ok());
        let state = fields.get("state").map_or("", String::as_str);
        Ok(Some(RoomRecord {
            event_id: event_id.to_owned(),
            phase: RoomPhase::parse(state)
                .ok_or_else(|| Error::Unexpected(format!("room {event_id} has state {state:?}")))?,
            opens_at_ms: i("opens_at"),
            pre_queued,
            pre_queue_placed: n("pre_queue_placed"),
            shuffle_seed: n("shuffle_seed"),
            requested_seed: n("requested_seed"),
            max_active: u32::try_from(n("max_active")).unwrap_or(u32::MAX),
            admission_ttl_ms: n("admission_ttl_ms"),
            opened_at_ms: i("opened_at").unwrap_or(0),
            sold_out_at_ms: i("sold_out_at"),
            joined: n("joined"),
            admitted: n("admitted"),
            admitted_through: n("admitted_through"),
            purchasing: n("purchasing"),
            claims: n("claims"),
            purchased: n("purchased"),
            releases: n("releases"),
            sold_out: n("sold_out"),
            expired: n("expired"),
            left: n("left"),
            capacity: n("capacity"),
            seats_sold: n("seats_sold"),
            max_purchasing_seen: n("max_purchasing_seen"),
            waiting,
            active,
        }))
    }

    pub async fn room_exists(&self, event_id: &str) -> Result<bool> {
        Ok(self.redis.clone().exists(self.room_key(event_id)).await?)
    }

    pub async fn join(&self, event_id: &str, user_id: &str) -> Result<Joined> {
        let reply: Vec<redis::Value> = self
            .scripts
            .join
            .key(self.room_key(event_id))
            .key(self.queue_key(event_id))
            .key(self.fan_key(event_id, user_id))
            .key(self.pre_queue_key(event_id))
            .arg(user_id)
            .arg(millis(FAN_RECORD_TTL))
            .invoke_async(&mut self.redis.clone())
            .await?;
        let state = text(&reply, 0);
        if state == "NO_ROOM" {
            return Err(Error::NoRoom(event_id.to_owned()));
        }
        Ok(Joined {
            state: FanState::parse(&state),
            join_number: number(&reply, 1),
            rank: u64::try_from(signed(&reply, 2)).ok(),
            joined_at_ms: signed(&reply, 3),
        })
    }

    /// The fan's record, and their 0-based rank while they wait.
    pub async fn fan(&self, event_id: &str, user_id: &str) -> Result<Option<(Fan, Option<u64>)>> {
        let mut redis = self.redis.clone();
        type Read = (HashMap<String, String>, Option<String>, Option<u64>, u64);
        let (fields, room_state, rank, pre_queued): Read = redis::pipe()
            .hgetall(self.fan_key(event_id, user_id))
            .hget(self.room_key(event_id), "state")
            .zrank(self.queue_key(event_id), user_id)
            .zcard(self.pre_queue_key(event_id))
            .query_async(&mut redis)
            .await?;
        // Fans who joined after opens_at but before the opening ran wait behind the
        // pre-queue, which is not in the queue yet.
        let rank = rank.map(|r| r + pre_queued);
        if fields.is_empty() {
            return Ok(None);
        }
        let n = |name: &str| fields.get(name).and_then(|v| v.parse::<i64>().ok());
        let mut state = FanState::parse(fields.get("state").map_or("", String::as_str));
        if state == FanState::Waiting && room_state.as_deref() == Some("SOLD_OUT") {
            state = FanState::SoldOut;
        }
        let admission = fields.get("admission_id").map(|id| AdmissionRecord {
            admission_id: id.clone(),
            admission_number: n("admission_number")
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(0),
            admitted_at_ms: n("admitted_at").unwrap_or(0),
            expires_at_ms: n("expires_at").unwrap_or(0),
        });
        let fan = Fan {
            state,
            join_number: n("seq").and_then(|v| u64::try_from(v).ok()).unwrap_or(0),
            joined_at_ms: n("joined_at").unwrap_or(0),
            admission,
        };
        Ok(Some((fan, rank.filter(|_| state == FanState::Waiting))))
    }

    /// One admission round (see scripts/admit.lua). Without `seats` it only lets lapsed
    /// admissions expire.
    pub async fn admit(&self, event_id: &str, seats: Option<Seats>, batch: u64) -> Result<Round> {
        let (capacity, sold, available, known) = match seats {
            Some(s) => (s.capacity, s.sold, s.available, 1),
            None => (0, 0, 0, 0),
        };
        let reply: Vec<redis::Value> = self
            .scripts
            .admit
            .key(self.room_key(event_id))
            .key(self.queue_key(event_id))
            .key(self.active_key(event_id))
            .arg(self.fan_prefix(event_id))
            .arg(capacity)
            .arg(sold)
            .arg(known)
            .arg(batch)
            .arg(available)
            .invoke_async(&mut self.redis.clone())
            .await?;
        let state = text(&reply, 6);
        let overdue_count = usize::try_from(number(&reply, 7)).unwrap_or(0);
        let first_admitted = (8 + overdue_count).min(reply.len());
        let overdue = (8..first_admitted).map(|i| text(&reply, i)).collect();
        let admitted = reply[first_admitted..]
            .chunks(5)
            .filter(|chunk| chunk.len() == 5)
            .map(|chunk| Admitted {
                user_id: text(chunk, 0),
                join_number: number(chunk, 1),
                admission_number: number(chunk, 2),
                admitted_at_ms: signed(chunk, 3),
                expires_at_ms: signed(chunk, 4),
            })
            .collect();
        Ok(Round {
            exists: state != "NO_ROOM",
            open: state == "OPEN",
            lapsed: number(&reply, 0),
            waiting: number(&reply, 1),
            active: number(&reply, 2),
            purchasing: number(&reply, 3),
            claims: number(&reply, 4),
            admitted_through: number(&reply, 5),
            admitted,
            overdue,
        })
    }

    /// The admission and idempotency key of a fan's purchase, while PURCHASING.
    pub async fn purchase_of(
        &self,
        event_id: &str,
        user_id: &str,
    ) -> Result<Option<(String, String)>> {
        let (state, admission, key): (Option<String>, Option<String>, Option<String>) =
            redis::cmd("HMGET")
                .arg(self.fan_key(event_id, user_id))
                .arg(&["state", "admission_id", "key"])
                .query_async(&mut self.redis.clone())
                .await?;
        Ok(match (state.as_deref(), admission, key) {
            (Some("PURCHASING"), Some(admission), Some(key)) => Some((admission, key)),
            _ => None,
        })
    }

    /// Declares the room sold out if no purchase claimed an admission since `claims` was
    /// read (see scripts/sold_out.lua).
    pub async fn declare_sold_out(&self, event_id: &str, claims: u64) -> Result<bool> {
        let declared: i64 = self
            .scripts
            .sold_out
            .key(self.room_key(event_id))
            .key(self.queue_key(event_id))
            .arg(claims)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(declared == 1)
    }

    pub async fn claim(
        &self,
        event_id: &str,
        user_id: &str,
        admission_id: &str,
        idempotency_key: &str,
        seats: u32,
        received_at_ms: Option<i64>,
    ) -> Result<ClaimOutcome> {
        let reply: Vec<String> = self
            .scripts
            .claim
            .key(self.room_key(event_id))
            .key(self.active_key(event_id))
            .key(self.fan_key(event_id, user_id))
            .arg(user_id)
            .arg(admission_id)
            .arg(idempotency_key)
            .arg(seats)
            .arg(received_at_ms.map(|ms| ms.to_string()).unwrap_or_default())
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(match reply.first().map(String::as_str) {
            Some("OK") => ClaimOutcome::Claimed,
            Some("NO_ROOM") => ClaimOutcome::NoRoom,
            Some("EXPIRED") => ClaimOutcome::Expired,
            Some("USED") => ClaimOutcome::Used,
            _ => ClaimOutcome::Invalid(reply.get(1).cloned().unwrap_or_default()),
        })
    }

    pub async fn release(
        &self,
        event_id: &str,
        user_id: &str,
        admission_id: &str,
        idempotency_key: &str,
        committed: bool,
    ) -> Result<bool> {
        let released: i64 = self
            .scripts
            .release
            .key(self.room_key(event_id))
            .key(self.active_key(event_id))
            .key(self.fan_key(event_id, user_id))
            .arg(user_id)
            .arg(admission_id)
            .arg(if committed { "1" } else { "0" })
            .arg(idempotency_key)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(released == 1)
    }

    /// Takes the fan out; returns the state they left from (None when not in the room).
    pub async fn leave(&self, event_id: &str, user_id: &str) -> Result<Option<FanState>> {
        let left: String = self
            .scripts
            .leave
            .key(self.room_key(event_id))
            .key(self.queue_key(event_id))
            .key(self.active_key(event_id))
            .key(self.fan_key(event_id, user_id))
            .key(self.pre_queue_key(event_id))
            .arg(user_id)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok((!left.is_empty()).then(|| FanState::parse(&left)))
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn text(values: &[redis::Value], index: usize) -> String {
    match values.get(index) {
        Some(redis::Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Some(redis::Value::SimpleString(text)) => text.clone(),
        Some(redis::Value::Int(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn signed(values: &[redis::Value], index: usize) -> i64 {
    match values.get(index) {
        Some(redis::Value::Int(n)) => *n,
        _ => text(values, index).parse().unwrap_or(0),
    }
}

fn number(values: &[redis::Value], index: usize) -> u64 {
    u64::try_from(signed(values, index)).unwrap_or(0)
}
