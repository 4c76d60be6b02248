//! inventory-pg's errors and their one mapping to gRPC statuses.

use proto::error::{FieldError, refusal, with_reason};
use proto::v1::ErrorReason;
use tonic::{Code, Status};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidField(#[from] FieldError),
    #[error("event {0} not found")]
    EventNotFound(String),
    #[error("event {0} already exists")]
    EventExists(String),
    #[error("seats not found in event {event_id}: {}", seats.join(", "))]
    SeatsNotFound {
        event_id: String,
        seats: Vec<String>,
    },
    #[error("seats already taken: {}", seats.join(", "))]
    SeatsTaken {
        seats: Vec<String>,
        order_id: Option<String>,
    },
    #[error("seats locked by another purchase in progress: {}", seats.join(", "))]
    SeatsLocked { seats: Vec<String> },
    #[error(
        "no seat is free right now: the unsold seats are held or being bought by purchases \
         in progress, and may come back; try again"
    )]
    AvailableSeatsLocked,
    #[error("sold out: {unsold} seat(s) left unsold, {requested} requested")]
    SoldOut { requested: u32, unsold: u32 },
    #[error(
        "the seat hold expired or was taken over before the purchase was confirmed{}",
        if seats.is_empty() { String::new() } else { format!(": {}", seats.join(", ")) }
    )]
    HoldLost { seats: Vec<String> },
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
    #[error("transaction {0} is being prepared concurrently; retry")]
    TxnBusy(String),
    #[error("step {step} of saga {saga_id} was already compensated")]
    StepCompensated { saga_id: String, step: &'static str },
    #[error("database: {}", server_kit::pg::describe(.0))]
    Database(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

impl Error {
    /// The PostgreSQL SQLSTATE of a database error, if any.
    pub fn sql_state(&self) -> Option<&tokio_postgres::error::SqlState> {
        match self {
            Error::Database(error) => error.code(),
            _ => None,
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        use tokio_postgres::error::SqlState;
        let message = error.to_string();
        match error {
            Error::InvalidField(field) => field.into(),
            Error::EventNotFound(_) | Error::SeatsNotFound { .. } | Error::TxnNotFound(_) => {
                Status::not_found(message)
            }
            Error::EventExists(_) => Status::already_exists(message),
            Error::SeatsTaken { seats, order_id } => {
                refusal::seats_taken(Code::FailedPrecondition, message, &seats, order_id)
            }
            Error::SeatsLocked { seats } => {
                refusal::seats_taken(Code::Aborted, message, &seats, None)
            }
            Error::AvailableSeatsLocked => refusal::seats_taken(Code::Aborted, message, &[], None),
            Error::SoldOut { .. } => {
                with_reason(Code::FailedPrecondition, ErrorReason::SoldOut, message, [])
            }
            Error::HoldLost { seats } => with_reason(
                Code::FailedPrecondition,
                ErrorReason::HoldLost,
                message,
                [("seats", seats.join(","))],
            ),
            Error::StaleFencingToken { seats, token, seen } => {
                refusal::stale_fencing_token(message, &seats, token, seen)
            }
            Error::TxnAborted(txid) => refusal::txn_aborted(message, txid),
            Error::TxnCommitted(txid) => refusal::txn_committed(message, txid),
            Error::BranchOfAnotherLog { txid, log_id } => {
                refusal::branch_of_another_log(message, txid, log_id)
            }
            Error::TxnBusy(_) => Status::aborted(message),
            Error::StepCompensated { saga_id, step } => {
                refusal::step_compensated(message, saga_id, step)
            }
            Error::Database(ref db) => match db.code() {
                Some(&SqlState::T_R_SERIALIZATION_FAILURE)
                | Some(&SqlState::T_R_DEADLOCK_DETECTED)
                | Some(&SqlState::LOCK_NOT_AVAILABLE) => Status::aborted(message),
                _ if db.is_closed() => Status::unavailable(message),
                _ => {
                    tracing::error!(error = %message, "database error");
                    Status::internal(message)
                }
            },
            Error::Pool(_) => {
                tracing::warn!(error = %message, "database pool unavailable");
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
        let seats = || vec!["A-1-1".to_owned(), "A-1-2".to_owned()];
        let refusals = [
            Error::InvalidField(FieldError::new("quantity", "must be 1 to 10")),
            Error::SeatsTaken {
                seats: seats(),
                order_id: Some("order-1".into()),
            },
            Error::SeatsTaken {
                seats: seats(),
                order_id: None,
            },
            Error::SeatsLocked { seats: seats() },
            Error::AvailableSeatsLocked,
            Error::SoldOut {
                requested: 2,
                unsold: 1,
            },
            Error::SoldOut {
                requested: 1,
                unsold: 0,
            },
            Error::HoldLost { seats: seats() },
            Error::HoldLost { seats: Vec::new() },
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
                step: "hold_seats",
            },
        ];
        let problems: Vec<String> = refusals
            .into_iter()
            .filter_map(|error| local_mesh::wording::refusal_problem(&Status::from(error)))
            .collect();
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
