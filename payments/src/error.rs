//! payments' errors and their one mapping to gRPC statuses.

use proto::error::{FieldError, refusal, with_reason};
use proto::v1::ErrorReason;
use tonic::{Code, Status};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidField(#[from] FieldError),
    #[error("payment {0} not found")]
    PaymentNotFound(String),
    #[error("card declined: {code}")]
    Declined { payment_id: String, code: String },
    #[error("payment {payment_id} is {state}; {action} is not allowed")]
    InvalidState {
        payment_id: String,
        state: String,
        action: &'static str,
    },
    #[error("{action} of {requested} exceeds the {allowed} allowed on payment {payment_id}")]
    AmountExceeded {
        payment_id: String,
        action: &'static str,
        requested: i64,
        allowed: i64,
    },
    #[error("idempotency key {0} was used with different parameters")]
    KeyReused(String),
    #[error("transaction {0} was aborted")]
    TxnAborted(String),
    #[error("transaction {0} was already committed")]
    TxnCommitted(String),
    #[error("transaction {0} was never prepared here")]
    TxnNotFound(String),
    #[error("transaction {txid} belongs to another coordinator log ({log_id}); refused")]
    BranchOfAnotherLog { txid: String, log_id: String },
    #[error("the authorization with key {0} was compensated before it arrived; refused")]
    AuthorizationCompensated(String),
    #[error("the card network did not answer in time")]
    CardTimeout,
    #[error("the response was lost after the write committed (fault injection); retry")]
    ResponseLost,
    /// A stored error answer, replayed for a repeated idempotency key.
    #[error("{}", .0.message())]
    Replayed(Status),
    #[error("database: {}", server_kit::pg::describe(.0))]
    Database(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

impl Error {
    /// A definite business answer: stored under the idempotency key and replayed.
    pub fn is_definite(&self) -> bool {
        matches!(
            self,
            Error::Declined { .. } | Error::InvalidState { .. } | Error::AmountExceeded { .. }
        )
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::InvalidField(field) => field.into(),
            Error::PaymentNotFound(_) | Error::TxnNotFound(_) => Status::not_found(message),
            Error::Declined { payment_id, code } => with_reason(
                Code::FailedPrecondition,
                ErrorReason::CardDeclined,
                message,
                [("decline_code", code), ("payment_id", payment_id)],
            ),
            Error::InvalidState {
                payment_id, state, ..
            } => with_reason(
                Code::FailedPrecondition,
                ErrorReason::InvalidState,
                message,
                [("payment_id", payment_id), ("state", state)],
            ),
            Error::AmountExceeded {
                payment_id,
                requested,
                allowed,
                ..
            } => with_reason(
                Code::FailedPrecondition,
                ErrorReason::AmountExceeded,
                message,
                [
                    ("payment_id", payment_id),
                    ("requested_cents", requested.to_string()),
                    ("allowed_cents", allowed.to_string()),
                ],
            ),
            Error::KeyReused(key) => with_reason(
                Code::FailedPrecondition,
                ErrorReason::IdempotencyKeyReused,
                message,
                [("idempotency_key", key)],
            ),
            Error::AuthorizationCompensated(key) => with_reason(
                Code::FailedPrecondition,
                ErrorReason::StepCompensated,
                message,
                [("idempotency_key", key)],
            ),
            Error::TxnAborted(txid) => refusal::txn_aborted(message, txid),
            Error::TxnCommitted(txid) => refusal::txn_committed(message, txid),
            Error::BranchOfAnotherLog { txid, log_id } => {
                refusal::branch_of_another_log(message, txid, log_id)
            }
            Error::CardTimeout => Status::deadline_exceeded(message),
            Error::ResponseLost => Status::unavailable(message),
            Error::Replayed(status) => status,
            Error::Database(ref db) if db.is_closed() => Status::unavailable(message),
            Error::Database(_) => {
                tracing::error!(error = %message, "database error");
                Status::internal(message)
            }
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
        let refusals = [
            Error::InvalidField(FieldError::new("card_token", "unknown test card")),
            Error::Declined {
                payment_id: "p-1".into(),
                code: "insufficient_funds".into(),
            },
            Error::InvalidState {
                payment_id: "p-1".into(),
                state: "CAPTURED".into(),
                action: "void",
            },
            Error::AmountExceeded {
                payment_id: "p-1".into(),
                action: "capture",
                requested: 200,
                allowed: 100,
            },
            Error::KeyReused("k".into()),
            Error::AuthorizationCompensated("t-1:authorize".into()),
            Error::TxnAborted("t-1".into()),
            Error::TxnCommitted("t-1".into()),
            Error::BranchOfAnotherLog {
                txid: "t-1".into(),
                log_id: "log-a".into(),
            },
        ];
        let problems: Vec<String> = refusals
            .into_iter()
            .filter_map(|error| local_mesh::wording::refusal_problem(&Status::from(error)))
            .collect();
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
