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
    let message = message.into();
    if let Some(contradiction) = contradiction(reason, &message) {
        // Tests walk every reason and fail on this; in production, say so loudly.
        tracing::error!(reason = reason_name(reason), %message, "{contradiction}");
    }
    let details = ErrorDetails::with_error_info(reason_name(reason), ERROR_DOMAIN, metadata);
    Status::with_error_details(code, message, details)
}

/// What a refusal's message must say for its reason to be true: a reader who sees only
/// the message (a log line, a `txn show`, a pie slice) must reach the same cause as a
/// program reading the ErrorInfo. Returns what is wrong, or `None` when they agree.
///
/// Each reason has words its message must contain (any one of them, ignoring case),
/// and the words that name another cause are kept for that cause alone: only SOLD_OUT
/// says "sold out", only CARD_DECLINED says "declined", and a sold-out message never
/// speaks of seats held or taken, or asks to try again.
pub fn contradiction(reason: ErrorReason, message: &str) -> Option<String> {
    let text = message.to_lowercase();
    let says = |words: &[&str]| words.iter().any(|w| text.contains(w));
    let required: &[&str] = match reason {
        ErrorReason::Unspecified => &[],
        ErrorReason::InvalidField => &["invalid"],
        ErrorReason::SoldOut => &["sold out"],
        ErrorReason::SeatTaken => &[
            "taken",
            "claimed",
            "locked",
            "held",
            "leased",
            "no seat is free",
        ],
        ErrorReason::HoldLost => &["hold"],
        ErrorReason::CardDeclined => &["declined"],
        ErrorReason::StaleFencingToken => &["fencing token"],
        ErrorReason::TxnAborted => &["aborted"],
        ErrorReason::StepCompensated => &["compensated"],
        ErrorReason::IdempotencyKeyReused => &["idempotency key"],
        ErrorReason::OutcomeUnknown => &["unknown"],
        ErrorReason::InvalidState => &["not allowed", "already"],
        ErrorReason::AmountExceeded => &["exceeds"],
        ErrorReason::AdmissionRequired => &["admission"],
        ErrorReason::AdmissionInvalid => &["not valid", "invalid"],
        ErrorReason::AdmissionExpired => &["expired"],
        ErrorReason::AdmissionUsed => &["already used"],
        ErrorReason::Interrupted => &["stopped"],
        ErrorReason::Unauthenticated => &["token"],
        ErrorReason::ScopeRequired => &["scope"],
        ErrorReason::OtherUser => &["may not act for"],
        ErrorReason::RateLimited => &["too many"],
        ErrorReason::ParticipantUnavailable => &["did not answer"],
        ErrorReason::BranchOfAnotherLog => &["another coordinator log"],
    };
    let name = reason_name(reason);
    if !required.is_empty() && !says(required) {
        return Some(format!(
            "the message of a {name} refusal says none of {required:?}: {message:?}"
        ));
    }
    let owned_elsewhere: &[(&str, ErrorReason)] = &[
        ("sold out", ErrorReason::SoldOut),
        ("declined", ErrorReason::CardDeclined),
    ];
    for (words, owner) in owned_elsewhere {
        if *owner != reason && text.contains(words) {
            return Some(format!(
                "the message of a {name} refusal says {words:?}, which only {} may say: {message:?}",
                reason_name(*owner)
            ));
        }
    }
    if reason == ErrorReason::SoldOut && says(&["held", "taken", "locked", "try again"]) {
        return Some(format!(
            "a SOLD_OUT message speaks of a conflict that may resolve: {message:?}"
        ));
    }
    None
}

/// What is wrong with a refusal as a client reads it: no TicketDrop reason at all, or a
/// message that contradicts its reason. For the tests that walk a service's refusals.
pub fn refusal_problem(status: &Status) -> Option<String> {
    if reason_of(status).is_none() {
        return Some(format!("no ErrorInfo reason: {status:?}"));
    }
    contradiction_in(status)
}

/// [`contradiction`] for a status as a client receives it: its ErrorInfo reason against
/// its message. A status without a TicketDrop reason has nothing to contradict.
pub fn contradiction_in(status: &Status) -> Option<String> {
    let (reason, _) = reason_of(status)?;
    let reason = ErrorReason::from_str_name(&format!("ERROR_REASON_{reason}"))?;
    contradiction(reason, status.message())
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
    fn a_sold_out_refusal_must_say_sold_out_and_nothing_of_a_conflict() {
        assert_eq!(
            contradiction(
                ErrorReason::SoldOut,
                "sold out: 0 seat(s) left unsold, 1 requested"
            ),
            None
        );
        // The message the lease protocol once gave its sold-out refusals.
        assert!(contradiction(ErrorReason::SoldOut, "leases held by other purchases: ").is_some());
        assert!(
            contradiction(
                ErrorReason::SoldOut,
                "sold out for now, seats are held; try again"
            )
            .is_some()
        );
    }

    #[test]
    fn words_of_one_cause_are_kept_for_that_cause() {
        assert!(contradiction(ErrorReason::SeatTaken, "seats already taken: A-1-1").is_none());
        assert!(
            contradiction(
                ErrorReason::SeatTaken,
                "seats already taken: A-1-1; sold out"
            )
            .is_some()
        );
        assert!(contradiction(ErrorReason::CardDeclined, "card declined: card_declined").is_none());
        assert!(contradiction(ErrorReason::HoldLost, "card declined: card_declined").is_some());
        assert!(contradiction(ErrorReason::OutcomeUnknown, "the deadline passed").is_some());
    }

    #[test]
    fn a_status_is_checked_by_its_error_info_and_one_without_has_nothing_to_contradict() {
        let agreeing = Status::from(FieldError::new("quantity", "must be 1 to 10"));
        assert_eq!(contradiction_in(&agreeing), None);
        let plain = Status::aborted("write conflict; retry");
        assert_eq!(contradiction_in(&plain), None);
        let contradicting = with_reason(
            Code::FailedPrecondition,
            ErrorReason::CardDeclined,
            "insufficient funds",
            [],
        );
        assert!(contradiction_in(&contradicting).is_some());
    }
}
