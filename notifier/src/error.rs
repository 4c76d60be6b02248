//! The notifier's errors and their one mapping to gRPC statuses.

use proto::error::{FieldError, with_reason};
use proto::v1::ErrorReason;
use tonic::{Code, Status};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidField(#[from] FieldError),
    #[error("no confirmation for transaction {0}")]
    ConfirmationNotFound(String),
    #[error("delivery {0} not found")]
    DeliveryNotFound(String),
    #[error("delivery {0} was already delivered; it is not sent again")]
    AlreadyDelivered(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("database: {}", server_kit::pg::describe(.0))]
    Database(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::InvalidField(field) => field.into(),
            Error::ConfirmationNotFound(_) | Error::DeliveryNotFound(_) => {
                Status::not_found(message)
            }
            Error::AlreadyDelivered(delivery_id) => with_reason(
                Code::FailedPrecondition,
                ErrorReason::InvalidState,
                message,
                [
                    ("delivery_id", delivery_id),
                    ("state", "DELIVERED".to_owned()),
                ],
            ),
            Error::Corrupt(_) => {
                tracing::error!(error = %message, "corrupt stored data");
                Status::internal(message)
            }
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

    #[test]
    fn a_second_delivery_is_refused_in_words_that_match_its_reason() {
        let status = Status::from(Error::AlreadyDelivered("d-1".into()));
        assert_eq!(local_mesh::wording::refusal_problem(&status), None);
    }
}
