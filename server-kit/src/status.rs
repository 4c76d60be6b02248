//! gRPC statuses with machine-readable details, built the same way by every service:
//! a `google.rpc.ErrorInfo` whose reason is a `ticketdrop.v1.ErrorReason` name and whose
//! metadata carries the ids involved, plus a `google.rpc.BadRequest` for invalid fields.

use std::collections::HashMap;

use proto::v1::ErrorReason;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The ErrorInfo domain of every TicketDrop error.
pub const ERROR_DOMAIN: &str = "ticketdrop.v1";

/// An invalid request field: INVALID_ARGUMENT naming the field in the message, in a
/// BadRequest field violation and in the ErrorInfo metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
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

impl From<FieldError> for Status {
    fn from(error: FieldError) -> Self {
        let mut details = ErrorDetails::with_bad_request_violation(&error.field, &error.reason);
        details.set_error_info(
            reason_name(ErrorReason::InvalidField),
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
    let details = ErrorDetails::with_error_info(reason_name(reason), ERROR_DOMAIN, metadata);
    Status::with_error_details(code, message, details)
}

/// The ErrorInfo reason string of `reason`: its proto name without the prefix.
pub fn reason_name(reason: ErrorReason) -> &'static str {
    reason
        .as_str_name()
        .strip_prefix("ERROR_REASON_")
        .expect("every ErrorReason value starts with ERROR_REASON_")
}

/// The ErrorInfo reason and metadata of a status, if it carries them (for clients).
pub fn reason_of(status: &Status) -> Option<(String, HashMap<String, String>)> {
    status
        .get_details_error_info()
        .map(|info| (info.reason, info.metadata))
}

/// The refusals every participant answers alike, so the coordinator reads them alike.
pub mod refusal {
    use proto::v1::ErrorReason;
    use tonic::{Code, Status};

    use super::with_reason;

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
