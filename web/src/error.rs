//! The web server's errors and their one mapping to gRPC statuses.

use proto::error::FieldError;
use tonic::Status;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidField(#[from] FieldError),
    #[error(
        "development sign-in is off on this server (--dev-login): sign in with a token from \
         your identity provider"
    )]
    DevLoginDisabled,
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidField(field) => field.into(),
            Error::DevLoginDisabled => Status::failed_precondition(error.to_string()),
        }
    }
}
