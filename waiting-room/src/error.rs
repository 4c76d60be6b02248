//! The waiting room's errors and their one mapping to gRPC statuses.

use proto::error::{FieldError, with_reason};
use proto::v1::ErrorReason;
use tonic::{Code, Status};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidField(#[from] FieldError),
    #[error("event {0} has no waiting room")]
    NoRoom(String),
    #[error("event {0} not found")]
    EventNotFound(String),
    #[error("{user_id} is not in the waiting room of {event_id}; join first")]
    FanNotFound { event_id: String, user_id: String },
    #[error(
        "a purchase with {user_id}'s admission to {event_id} is in progress; it cannot leave now"
    )]
    PurchaseInFlight { event_id: String, user_id: String },
    #[error("{event_id} has a waiting room: a purchase needs an admission token")]
    AdmissionRequired { event_id: String },
    #[error("the admission token is not valid for {user_id} at {event_id}: {why}")]
    AdmissionInvalid {
        event_id: String,
        user_id: String,
        why: String,
    },
    #[error("the admission of {user_id} to {event_id} expired before a purchase used it")]
    AdmissionExpired { event_id: String, user_id: String },
    #[error("the admission of {user_id} to {event_id} is already used by another purchase")]
    AdmissionUsed { event_id: String, user_id: String },
    #[error("inventory: {}", .0.message())]
    Inventory(Status),
    #[error("the sale of {0} has opened: its opens_at and shuffle seed can no longer change")]
    SaleOpened(String),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected state in redis: {0}")]
    Unexpected(String),
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        let denied = |reason, event_id: String, user_id: String| {
            with_reason(
                Code::PermissionDenied,
                reason,
                message.clone(),
                [("event_id", event_id), ("user_id", user_id)],
            )
        };
        match error {
            Error::InvalidField(field) => field.into(),
            Error::NoRoom(_) | Error::EventNotFound(_) | Error::FanNotFound { .. } => {
                Status::not_found(message)
            }
            Error::PurchaseInFlight { .. } | Error::SaleOpened(_) => {
                Status::failed_precondition(message)
            }
            Error::AdmissionRequired { event_id } => {
                denied(ErrorReason::AdmissionRequired, event_id, String::new())
            }
            Error::AdmissionInvalid {
                event_id,
                user_id,
                why,
            } => with_reason(
                Code::PermissionDenied,
                ErrorReason::AdmissionInvalid,
                message,
                [("event_id", event_id), ("user_id", user_id), ("why", why)],
            ),
            Error::AdmissionExpired { event_id, user_id } => {
                denied(ErrorReason::AdmissionExpired, event_id, user_id)
            }
            Error::AdmissionUsed { event_id, user_id } => {
                denied(ErrorReason::AdmissionUsed, event_id, user_id)
            }
            Error::Inventory(status) => match status.code() {
                Code::NotFound | Code::InvalidArgument => status,
                _ => Status::unavailable(message),
            },
            Error::Redis(_) => {
                tracing::warn!(error = %message, "redis unavailable");
                Status::unavailable(message)
            }
            Error::Unexpected(_) => {
                tracing::error!(error = %message, "unexpected room state");
                Status::internal(message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every refusal with a reason, as the coordinator and the fans read it.
    #[test]
    fn every_refusal_says_what_its_reason_says() {
        let event_id = || "drop".to_owned();
        let user_id = || "ana".to_owned();
        let refusals = [
            Error::InvalidField(FieldError::new("user_id", "must not be empty")),
            Error::AdmissionRequired {
                event_id: event_id(),
            },
            Error::AdmissionInvalid {
                event_id: event_id(),
                user_id: user_id(),
                why: "bad signature".into(),
            },
            Error::AdmissionExpired {
                event_id: event_id(),
                user_id: user_id(),
            },
            Error::AdmissionUsed {
                event_id: event_id(),
                user_id: user_id(),
            },
        ];
        let problems: Vec<String> = refusals
            .into_iter()
            .filter_map(|error| local_mesh::wording::refusal_problem(&Status::from(error)))
            .collect();
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
