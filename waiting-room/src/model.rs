//! Validated requests: the gRPC messages become these at the edge, naming the field on
//! failure, so the room logic never sees an empty event id or a zero max_active.

use std::time::Duration;

use proto::error::FieldError;
use proto::v1::OpenRoomRequest;
use server_kit::convert;
use server_kit::validate;

/// Most fans a room admits at once.
pub const MAX_ACTIVE: u32 = 100_000;
const MIN_TTL: Duration = Duration::from_secs(1);
const MAX_TTL: Duration = Duration::from_secs(3600);
/// How far ahead a sale may be scheduled.
const MAX_OPENS_IN: Duration = Duration::from_secs(30 * 24 * 3600);

/// A room's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSettings {
    pub event_id: String,
    pub max_active: u32,
    pub admission_ttl: Duration,
    /// When the sale opens (ms since the epoch); None: with the room.
    pub opens_at_ms: Option<i64>,
    /// The pre-queue's shuffle seed; 0: drawn at the opening.
    pub shuffle_seed: u64,
}

impl TryFrom<&OpenRoomRequest> for RoomSettings {
    type Error = FieldError;

    fn try_from(r: &OpenRoomRequest) -> Result<Self, FieldError> {
        let event_id = validate::id("event_id", &r.event_id)?;
        if !(1..=MAX_ACTIVE).contains(&r.max_active) {
            return Err(FieldError::new(
                "max_active",
                format!("must be between 1 and {MAX_ACTIVE}, got {}", r.max_active),
            ));
        }
        let admission_ttl = match &r.admission_ttl {
            None => return Err(FieldError::new("admission_ttl", "is required")),
            Some(ttl) => convert::from_duration("admission_ttl", ttl)?,
        };
        if !(MIN_TTL..=MAX_TTL).contains(&admission_ttl) {
            return Err(FieldError::new(
                "admission_ttl",
                format!("must be between 1 s and 1 h, got {admission_ttl:?}"),
            ));
        }
        let opens_at_ms = match &r.opens_at {
            None => None,
            Some(at) => {
                let at = convert::from_timestamp("opens_at", at)?;
                let ahead = at.signed_duration_since(chrono::Utc::now());
                if ahead.to_std().is_ok_and(|ahead| ahead > MAX_OPENS_IN) {
                    return Err(FieldError::new(
                        "opens_at",
                        format!("must be at most 30 days ahead, got {at}"),
                    ));
                }
                Some(at.timestamp_millis())
            }
        };
        Ok(Self {
            event_id,
            max_active: r.max_active,
            admission_ttl,
            opens_at_ms,
            shuffle_seed: r.shuffle_seed,
        })
    }
}

/// One fan of one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanRef {
    pub event_id: String,
    pub user_id: String,
}

impl FanRef {
    pub fn parse(event_id: &str, user_id: &str) -> Result<Self, FieldError> {
        Ok(Self {
            event_id: validate::id("event_id", event_id)?,
            user_id: validate::id("user_id", user_id)?,
        })
    }
}

/// Whether a room's sale has opened, and whether it sold out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoomPhase {
    /// Before opens_at: fans join the pre-queue, nobody is admitted.
    PreQueue,
    #[default]
    Open,
    SoldOut,
}

impl RoomPhase {
    /// The store's spelling; None for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "PRE_QUEUE" => Some(RoomPhase::PreQueue),
            "OPEN" => Some(RoomPhase::Open),
            "SOLD_OUT" => Some(RoomPhase::SoldOut),
            _ => None,
        }
    }
}

/// Where a fan is in a room (the proto's FanState, as the store spells it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanState {
    /// Joined before the sale opened; placed by the opening's shuffle.
    PreQueue,
    Waiting,
    Admitted,
    Purchasing,
    Purchased,
    Finished,
    Expired,
    SoldOut,
}

impl FanState {
    pub fn parse(value: &str) -> Self {
        match value {
            "ADMITTED" => FanState::Admitted,
            "PURCHASING" => FanState::Purchasing,
            "PURCHASED" => FanState::Purchased,
            "FINISHED" => FanState::Finished,
            "EXPIRED" => FanState::Expired,
            "SOLD_OUT" => FanState::SoldOut,
            "PRE_QUEUE" => FanState::PreQueue,
            _ => FanState::Waiting,
        }
    }

    /// Whether the fan was admitted (whatever became of the admission since).
    pub fn was_admitted(self) -> bool {
        matches!(
            self,
            FanState::Admitted | FanState::Purchasing | FanState::Purchased | FanState::Finished
        )
    }
}

impl From<FanState> for proto::v1::FanState {
    fn from(state: FanState) -> Self {
        match state {
            FanState::PreQueue => proto::v1::FanState::PreQueue,
            FanState::Waiting => proto::v1::FanState::Waiting,
            FanState::Admitted => proto::v1::FanState::Admitted,
            FanState::Purchasing => proto::v1::FanState::Purchasing,
            FanState::Purchased => proto::v1::FanState::Purchased,
            FanState::Finished => proto::v1::FanState::Finished,
            FanState::Expired => proto::v1::FanState::Expired,
            FanState::SoldOut => proto::v1::FanState::SoldOut,
        }
    }
}
