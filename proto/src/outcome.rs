//! How a caller reads a failed call of any TicketDrop service: a certain refusal, an
//! unknown outcome, or an error. The classification is the table in
//! `proto/ticketdrop/v1/outcomes.json` (read by the Python and TypeScript clients too);
//! this module is its Rust reading, checked against every row and case of the table.

use tonic::Code;
use tonic_types::StatusExt;

/// What a failed call means for its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The service decided, and certainly did nothing: tell the person; never retry
    /// blindly.
    Refused,
    /// The call may or may not have taken effect: retry with the same idempotency key, or
    /// look the key up; never count it as a refusal.
    Unknown,
    /// Certainly nothing was done, because the call itself was wrong or not allowed: a
    /// bug to fix.
    Error,
}

impl Outcome {
    /// A failed call's outcome: by its ErrorInfo reason when it carries one of
    /// TicketDrop's, else by its code.
    pub fn of(status: &tonic::Status) -> Outcome {
        let reason = status.get_details_error_info().map(|info| info.reason);
        Outcome::classify(status.code(), reason.as_deref())
    }

    /// The table's rule for a code and an optional reason (without its ERROR_REASON_
    /// prefix). A reason the table does not know falls back on the code.
    pub fn classify(code: Code, reason: Option<&str>) -> Outcome {
        if let Some(outcome) = reason.and_then(by_reason) {
            return outcome;
        }
        match code {
            Code::Cancelled
            | Code::Unknown
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss => Outcome::Unknown,
            Code::Aborted => Outcome::Refused,
            Code::Ok
            | Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::Unauthenticated => Outcome::Error,
        }
    }

    /// The table's name of the outcome.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Refused => "refused",
            Outcome::Unknown => "unknown",
            Outcome::Error => "error",
        }
    }
}

fn by_reason(reason: &str) -> Option<Outcome> {
    Some(match reason {
        "OUTCOME_UNKNOWN" => Outcome::Unknown,
        "INVALID_FIELD"
        | "IDEMPOTENCY_KEY_REUSED"
        | "AMOUNT_EXCEEDED"
        | "UNAUTHENTICATED"
        | "SCOPE_REQUIRED"
        | "OTHER_USER" => Outcome::Error,
        "SOLD_OUT"
        | "SEAT_TAKEN"
        | "HOLD_LOST"
        | "CARD_DECLINED"
        | "STALE_FENCING_TOKEN"
        | "TXN_ABORTED"
        | "STEP_COMPENSATED"
        | "INVALID_STATE"
        | "ADMISSION_REQUIRED"
        | "ADMISSION_INVALID"
        | "ADMISSION_EXPIRED"
        | "ADMISSION_USED"
        | "INTERRUPTED"
        | "RATE_LIMITED"
        | "PARTICIPANT_UNAVAILABLE"
        | "BRANCH_OF_ANOTHER_LOG" => Outcome::Refused,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::ErrorReason;

    const TABLE: &str = include_str!("../ticketdrop/v1/outcomes.json");

    fn table() -> serde_json::Value {
        serde_json::from_str(TABLE).expect("outcomes.json is JSON")
    }

    fn code(name: &str) -> Code {
        (0..=16)
            .map(Code::from)
            .find(|code| format!("{code:?}").to_uppercase() == name.replace('_', ""))
            .unwrap_or_else(|| panic!("{name} is a gRPC code"))
    }

    #[test]
    fn every_reason_and_code_is_classified_as_the_table_says() {
        let table = table();
        let reasons = table["reasons"].as_object().expect("reasons");
        for (reason, class) in reasons {
            assert_eq!(
                by_reason(reason).map(Outcome::name),
                class.as_str(),
                "reason {reason}"
            );
        }
        // Every reason of the proto is in the table.
        for value in 1..=i32::MAX {
            let Ok(reason) = ErrorReason::try_from(value) else {
                break;
            };
            let name = reason.as_str_name().trim_start_matches("ERROR_REASON_");
            assert!(
                reasons.contains_key(name),
                "{name} is missing from outcomes.json"
            );
        }
        for (name, class) in table["codes"].as_object().expect("codes") {
            assert_eq!(
                Some(Outcome::classify(code(name), None).name()),
                class.as_str(),
                "code {name}"
            );
        }
    }

    #[test]
    fn every_case_of_the_table_holds() {
        for case in table()["cases"].as_array().expect("cases") {
            let reason = case["reason"].as_str().filter(|r| !r.is_empty());
            let mut status = tonic::Status::new(code(case["code"].as_str().unwrap()), "case");
            if let Some(reason) = reason {
                status = tonic::Status::with_error_details(
                    status.code(),
                    "case",
                    tonic_types::ErrorDetails::with_error_info(
                        reason,
                        "ticketdrop.v1",
                        std::collections::HashMap::new(),
                    ),
                );
            }
            assert_eq!(
                Some(Outcome::of(&status).name()),
                case["class"].as_str(),
                "{case}"
            );
        }
    }
}
