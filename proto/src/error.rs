//! The errors of the contract, built and read the same way by every service and client:
//! a `google.rpc.ErrorInfo` whose reason is an [`ErrorReason`] (without its
//! `ERROR_REASON_` prefix) and whose metadata carries the ids involved, plus a
//! `google.rpc.BadRequest` for an invalid field. The refusals that several participants
//! answer alike are built here too, so the coordinator reads them alike.
//!
//! Whether a refusal's words agree with its reason is checked by the services' tests
//! (`local_mesh::wording`), never at run time.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::v1::ErrorReason;

/// The ErrorInfo domain of every TicketDrop error.
pub const ERROR_DOMAIN: &str = "ticketdrop.v1";

impl ErrorReason {
    /// The ErrorInfo reason string: the proto name without `ERROR_REASON_`.
    pub fn name(self) -> &'static str {
        self.as_str_name()
            .strip_prefix("ERROR_REASON_")
            .expect("every ErrorReason value starts with ERROR_REASON_")
    }

    /// The reason an ErrorInfo reason string names, if this version knows it.
    pub fn from_name(name: &str) -> Option<ErrorReason> {
        ErrorReason::from_str_name(&format!("ERROR_REASON_{name}"))
    }
}

/// The reason and metadata of a TicketDrop refusal, as a client reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refusal {
    /// `Unspecified` for an ErrorInfo reason this version does not know.
    pub reason: ErrorReason,
    /// The ids involved (`txid`, `seats`, `order_id`, ...).
    pub metadata: HashMap<String, String>,
}

impl Refusal {
    /// The ErrorInfo of a status, if it carries one.
    pub fn of(status: &Status) -> Option<Refusal> {
        let info = status.get_details_error_info()?;
        Some(Refusal {
            reason: ErrorReason::from_name(&info.reason).unwrap_or_default(),
            metadata: info.metadata,
        })
    }

    /// Whether a status is a refusal for `reason`.
    pub fn is(status: &Status, reason: ErrorReason) -> bool {
        Refusal::of(status).is_some_and(|refusal| refusal.reason == reason)
    }

    /// One metadata value, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }
}

/// An invalid request field: INVALID_ARGUMENT naming the field in the message, in a
/// BadRequest field violation and in the ErrorInfo metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for FieldError {}

impl From<FieldError> for Status {
    fn from(error: FieldError) -> Self {
        let mut details = ErrorDetails::with_bad_request_violation(&error.field, &error.reason);
        details.set_error_info(
            ErrorReason::InvalidField.name(),
            ERROR_DOMAIN,
            HashMap::from([("field".to_owned(), error.field.clone())]),
        );
        Status::with_error_details(Code::InvalidArgument, error.to_string(), details)
    }
}

/// A status whose ErrorInfo carries `reason` and `metadata`.
pub fn with_reason<'a>(
    code: Code,
    reason: ErrorReason,
    message: impl Into<String>,
    metadata: impl IntoIterator<Item = (&'a str, String)>,
) -> Status {
    let metadata = metadata
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect::<HashMap<_, _>>();
    let details = ErrorDetails::with_error_info(reason.name(), ERROR_DOMAIN, metadata);
    Status::with_error_details(code, message, details)
}

/// The refusals every participant answers alike, so the coordinator reads them alike.
pub mod refusal {
    use tonic::{Code, Status};

    use super::with_reason;
    use crate::v1::ErrorReason;

    /// Seats held or sold by someone else; `order_id` names the holder when known.
    pub fn seats_taken(
        code: Code,
        message: String,
        seats: &[String],
        order_id: Option<String>,
    ) -> Status {
        let mut metadata = vec![("seats", seats.join(","))];
        if let Some(order_id) = order_id {
            metadata.push(("order_id", order_id));
        }
        with_reason(code, ErrorReason::SeatTaken, message, metadata)
    }

    /// A write carried an older fencing token than one the seats have seen.
    pub fn stale_fencing_token(message: String, seats: &[String], token: u64, seen: u64) -> Status {
        with_reason(
            Code::FailedPrecondition,
            ErrorReason::StaleFencingToken,
            message,
            [
                ("seats", seats.join(",")),
                ("fencing_token", token.to_string()),
                ("seen_fencing_token", seen.to_string()),
            ],
        )
    }

    /// The txid was aborted (or tombstoned) before this call.
    pub fn txn_aborted(message: String, txid: String) -> Status {
        with_reason(
            Code::FailedPrecondition,
            ErrorReason::TxnAborted,
            message,
            [("txid", txid)],
        )
    }

    /// The txid was committed, so it cannot be aborted.
    pub fn txn_committed(message: String, txid: String) -> Status {
        with_reason(
            Code::FailedPrecondition,
            ErrorReason::InvalidState,
            message,
            [("txid", txid)],
        )
    }

    /// A Commit or Abort of a branch that another coordinator log owns.
    pub fn branch_of_another_log(message: String, txid: String, log_id: String) -> Status {
        with_reason(
            Code::FailedPrecondition,
            ErrorReason::BranchOfAnotherLog,
            message,
            [("txid", txid), ("log_id", log_id)],
        )
    }

    /// The coordinator stopped mid-purchase and its recovery undid the purchase.
    pub fn interrupted(message: &str) -> Status {
        with_reason(Code::Aborted, ErrorReason::Interrupted, message, [])
    }

    /// A saga step arrived after its compensation.
    pub fn step_compensated(message: String, saga_id: String, step: &str) -> Status {
        with_reason(
            Code::FailedPrecondition,
            ErrorReason::StepCompensated,
            message,
            [("saga_id", saga_id), ("step", step.to_owned())],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_reads_back_as_its_reason_and_metadata() {
        let status = refusal::txn_aborted("aborted".into(), "tx-1".into());
        let refusal = Refusal::of(&status).expect("an ErrorInfo");
        assert_eq!(refusal.reason, ErrorReason::TxnAborted);
        assert_eq!(refusal.get("txid"), Some("tx-1"));
        assert!(Refusal::is(&status, ErrorReason::TxnAborted));
        assert!(!Refusal::is(&status, ErrorReason::SoldOut));
        assert_eq!(Refusal::of(&Status::aborted("plain")), None);
    }

    #[test]
    fn every_reason_name_parses_back_and_an_unknown_one_does_not() {
        for value in 0..64 {
            let Ok(reason) = ErrorReason::try_from(value) else {
                continue;
            };
            assert_eq!(ErrorReason::from_name(reason.name()), Some(reason));
        }
        assert_eq!(ErrorReason::from_name("NOT_A_REASON"), None);
    }

    #[test]
    fn an_invalid_field_is_named_in_the_message_and_the_details() {
        let status = Status::from(FieldError::new("quantity", "must be 1 to 10"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "invalid quantity: must be 1 to 10");
        let refusal = Refusal::of(&status).expect("an ErrorInfo");
        assert_eq!(refusal.reason, ErrorReason::InvalidField);
        assert_eq!(refusal.get("field"), Some("quantity"));
    }
}
