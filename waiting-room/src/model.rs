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

/// A room's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSettings {
    pub event_id: String,
    pub max_active: u32,
    pub admission_ttl: Duration,
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
        Ok(Self {
            event_id,
            max_active: r.max_active,
            admission_ttl,
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

/// Where a fan is in a room (the proto's FanState, as the store spells it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanState {
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
