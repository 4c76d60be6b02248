//! orders-dynamo's errors and their one mapping to gRPC statuses.

use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, SdkError};
use proto::error::{FieldError, refusal, with_reason};
use proto::v1::ErrorReason;
use tonic::{Code, Status};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidField(#[from] FieldError),
    #[error("order {0} not found")]
    OrderNotFound(String),
    #[error("order {0} already exists")]
    OrderExists(String),
    #[error(
        "seats already claimed by {}: {}",
        order_id.as_ref().map_or_else(|| "another order".to_owned(), |id| format!("order {id}")),
        seats.join(", ")
    )]
    SeatsTaken {
        seats: Vec<String>,
        order_id: Option<String>,
    },
    #[error("stale fencing token {token}: seats {} have seen token {seen}", seats.join(", "))]
    StaleFencingToken {
        seats: Vec<String>,
        token: u64,
        seen: u64,
    },
    #[error("transaction {0} was aborted")]
    TxnAborted(String),
    #[error("transaction {0} was already committed")]
    TxnCommitted(String),
    #[error("transaction {0} was never prepared here")]
    TxnNotFound(String),
    #[error("transaction {txid} belongs to another coordinator log ({log_id}); refused")]
    BranchOfAnotherLog { txid: String, log_id: String },
    #[error("step {step} of saga {saga_id} was already compensated")]
    StepCompensated { saga_id: String, step: &'static str },
    #[error("order {order_id} is {status}; {action} is not allowed")]
    InvalidState {
        order_id: String,
        status: String,
        action: &'static str,
    },
    #[error("idempotency key {key} already belongs to order {order_id}")]
    IdempotencyKeyReused { key: String, order_id: String },
    #[error(
        "idempotency key reused: a retried transaction differs from the first one with its txid"
    )]
    IdempotencyMismatch,
    #[error("write conflict; retry")]
    Conflict,
    #[error("dynamodb: {0}")]
    Dynamo(String),
}

impl<E, R> From<SdkError<E, R>> for Error
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    fn from(error: SdkError<E, R>) -> Self {
        Error::Dynamo(DisplayErrorContext(error).to_string())
    }
}

impl From<BuildError> for Error {
    fn from(error: BuildError) -> Self {
        Error::Dynamo(error.to_string())
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::InvalidField(field) => field.into(),
            Error::OrderNotFound(_) | Error::TxnNotFound(_) => Status::not_found(message),
            Error::OrderExists(_) => Status::already_exists(message),
            Error::SeatsTaken { seats, order_id } => {
                refusal::seats_taken(Code::FailedPrecondition, message, &seats, order_id)
            }
            Error::StaleFencingToken { seats, token, seen } => {
                refusal::stale_fencing_token(message, &seats, token, seen)
            }
            Error::TxnAborted(txid) => refusal::txn_aborted(message, txid),
            Error::TxnCommitted(txid) => refusal::txn_committed(message, txid),
            Error::BranchOfAnotherLog { txid, log_id } => {
                refusal::branch_of_another_log(message, txid, log_id)
            }
            Error::StepCompensated { saga_id, step } => {
                refusal::step_compensated(message, saga_id, step)
            }
            Error::InvalidState { order_id, .. } => with_reason(
                Code::FailedPrecondition,
                ErrorReason::InvalidState,
                message,
                [("order_id", order_id)],
            ),
            Error::IdempotencyKeyReused { order_id, .. } => with_reason(
                Code::FailedPrecondition,
                ErrorReason::IdempotencyKeyReused,
                message,
                [("order_id", order_id)],
            ),
            Error::IdempotencyMismatch => with_reason(
                Code::FailedPrecondition,
                ErrorReason::IdempotencyKeyReused,
                message,
                [],
            ),
            Error::Conflict => Status::aborted(message),
            Error::Dynamo(_) => {
                tracing::warn!(error = %message, "dynamodb call failed");
                Status::unavailable(message)
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
        let seats = || vec!["A-1-1".to_owned()];
        let refusals = [
            Error::InvalidField(FieldError::new("seat_ids", "must not be empty")),
            Error::SeatsTaken {
                seats: seats(),
                order_id: Some("order-1".into()),
            },
            Error::SeatsTaken {
                seats: seats(),
                order_id: None,
            },
            Error::StaleFencingToken {
                seats: seats(),
                token: 3,
                seen: 4,
            },
            Error::TxnAborted("t-1".into()),
            Error::TxnCommitted("t-1".into()),
            Error::BranchOfAnotherLog {
                txid: "t-1".into(),
                log_id: "log-a".into(),
            },
            Error::StepCompensated {
                saga_id: "s-1".into(),
                step: "place_order",
            },
            Error::InvalidState {
                order_id: "order-1".into(),
                status: "CANCELLED".into(),
                action: "confirm",
            },
            Error::IdempotencyKeyReused {
                key: "k".into(),
                order_id: "order-1".into(),
            },
            Error::IdempotencyMismatch,
        ];
        let problems: Vec<String> = refusals
            .into_iter()
            .filter_map(|error| local_mesh::wording::refusal_problem(&Status::from(error)))
            .collect();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn a_claim_by_an_unknown_order_does_not_call_the_order_unknown() {
        let message = Error::SeatsTaken {
            seats: vec!["A-1-1".into()],
            order_id: None,
        }
        .to_string();
        assert_eq!(message, "seats already claimed by another order: A-1-1");
    }
}
