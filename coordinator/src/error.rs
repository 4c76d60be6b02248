//! The coordinator's errors. A purchase either fails for certain (nothing it did lasts)
//! or ends with an unknown outcome (the txid is returned so the caller can look it up);
//! the type keeps the two apart.

use proto::error::{FieldError, Refusal, with_reason};
use proto::v1::ErrorReason;
use tonic::{Code, Status};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidField(#[from] FieldError),
    /// Certainly aborted: the participant's refusal (sold out, seat taken, declined...),
    /// replayed as the participant said it.
    #[error("{}", .status.message())]
    Refused { txid: String, status: Status },
    /// The outcome is not known yet: the coordinator keeps driving the transaction.
    #[error("outcome of {txid} is unknown: {cause}")]
    OutcomeUnknown {
        txid: String,
        cause: String,
        deadline: bool,
    },
    /// The waiting room did not admit the buyer: PERMISSION_DENIED with its reason.
    #[error("{}", .0.message())]
    AdmissionRefused(Status),
    /// The waiting room did not answer: nothing was attempted.
    #[error("the waiting room did not answer ({0}); nothing was attempted, try again")]
    WaitingRoomUnavailable(String),
    #[error("idempotency key {0} was used for a different purchase")]
    KeyReused(String),
    #[error("transaction {0} not found")]
    TxnNotFound(String),
    #[error("transaction log: {}", server_kit::pg::describe(.0))]
    Log(#[from] tokio_postgres::Error),
    #[error("transaction log pool: {0}")]
    LogPool(#[from] deadpool_postgres::PoolError),
    /// A step row's group write failed (the group's error, as text).
    #[error("transaction log, step rows: {0}")]
    StepLog(String),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Another coordinator owns the purchase now (this one was paused past its ownership,
    /// or cut off from the log): it writes nothing more and calls no participant for it.
    #[error("{txid} is owned by another coordinator now, which finishes it")]
    NotOwner { txid: String },
    /// A second, different decision was refused: the first stands.
    #[error("{txid} is decided {logged}; {attempted} was refused")]
    DecisionConflict {
        txid: String,
        logged: &'static str,
        attempted: &'static str,
    },
    /// A log row holds a value the coordinator does not know.
    #[error("transaction log holds an unreadable row: {0}")]
    Corrupt(String),
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::InvalidField(field) => field.into(),
            Error::Refused { txid, status } => {
                // Keep the participant's reason and metadata, add the txid.
                let Refusal {
                    reason,
                    mut metadata,
                } = Refusal::of(&status).unwrap_or_default();
                // The sold-out fast path logs nothing: there is no txid to name.
                if !txid.is_empty() {
                    metadata.insert("txid".to_owned(), txid);
                }
                with_reason(
                    status.code(),
                    reason,
                    status.message(),
                    metadata.iter().map(|(k, v)| (k.as_str(), v.clone())),
                )
            }
            Error::OutcomeUnknown { txid, deadline, .. } => with_reason(
                if deadline {
                    Code::DeadlineExceeded
                } else {
                    Code::Unavailable
                },
                ErrorReason::OutcomeUnknown,
                message,
                [("txid", txid)],
            ),
            Error::AdmissionRefused(status) => status,
            // No reason: the claim may have reached the room, so the caller retries the
            // same purchase (same key, same admission) rather than counting it aborted.
            Error::WaitingRoomUnavailable(_) => Status::unavailable(message),
            Error::KeyReused(key) => with_reason(
                Code::FailedPrecondition,
                ErrorReason::IdempotencyKeyReused,
                message,
                [("idempotency_key", key)],
            ),
            Error::TxnNotFound(_) => Status::not_found(message),
            Error::Log(_)
            | Error::LogPool(_)
            | Error::StepLog(_)
            | Error::Redis(_)
            | Error::NotOwner { .. }
            | Error::DecisionConflict { .. }
            | Error::Corrupt(_) => {
                tracing::warn!(error = %message, "coordinator store unavailable");
                Status::unavailable(message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The coordinator's own refusals; a participant's refusal keeps its own message
    /// and reason, checked where the participant words it.
    #[test]
    fn every_refusal_says_what_its_reason_says() {
        let refusals = [
            Error::InvalidField(FieldError::new("quantity", "must be 1 to 10")),
            Error::OutcomeUnknown {
                txid: "t-1".into(),
                cause: "the deadline of 500ms passed".into(),
                deadline: true,
            },
            Error::OutcomeUnknown {
                txid: "t-1".into(),
                cause: "payments: transport error".into(),
                deadline: false,
            },
            Error::KeyReused("k".into()),
            Error::Refused {
                txid: "t-1".into(),
                status: proto::error::refusal::interrupted(
                    "the coordinator stopped before deciding; the purchase was aborted",
                ),
            },
        ];
        let problems: Vec<String> = refusals
            .into_iter()
            .filter_map(|error| local_mesh::wording::refusal_problem(&Status::from(error)))
            .collect();
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
