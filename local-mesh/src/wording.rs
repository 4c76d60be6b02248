//! Whether a refusal's words agree with its reason: the check every service's tests run on
//! each refusal it can answer (`every_refusal_says_what_its_reason_means` in each
//! `error.rs`), and the integration tests on every refusal they receive. A test helper,
//! never run in production: a service cannot fix its words at run time.

use std::collections::HashMap;

use proto::error::Refusal;
use proto::v1::ErrorReason;
use tonic::{Code, Status};

/// The code, ErrorInfo reason and metadata of a status, once its words are checked
/// against its reason (panics on a contradiction): every test that reads a reason also
/// checks that the words agree. A status without a TicketDrop reason reads as "UNSPECIFIED".
pub fn details(status: &Status) -> (Code, String, HashMap<String, String>) {
    if let Some(contradiction) = contradiction_in(status) {
        panic!("{contradiction}");
    }
    let refusal = Refusal::of(status).unwrap_or_default();
    (
        status.code(),
        refusal.reason.name().to_owned(),
        refusal.metadata,
    )
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
    let name = reason.name();
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
        if *owner != reason && says_word(&text, words) {
            return Some(format!(
                "the message of a {name} refusal says {words:?}, which only {} may say: {message:?}",
                owner.name()
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

/// Whether `text` says `words` as words of its own: not inside an identifier such as the
/// test card `tok_declined` (letters, digits and `_` around it make it part of a name).
fn says_word(text: &str, words: &str) -> bool {
    let part_of_a_name = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    text.match_indices(words).any(|(at, _)| {
        !part_of_a_name(text[..at].chars().next_back())
            && !part_of_a_name(text[at + words.len()..].chars().next())
    })
}

/// What is wrong with a refusal as a client reads it: no TicketDrop reason at all, or a
/// message that contradicts its reason. For the tests that walk a service's refusals.
pub fn refusal_problem(status: &Status) -> Option<String> {
    if Refusal::of(status).is_none() {
        return Some(format!("no ErrorInfo reason: {status:?}"));
    }
    contradiction_in(status)
}

/// [`contradiction`] for a status as a client receives it: its ErrorInfo reason against
/// its message. A status without a TicketDrop reason has nothing to contradict.
pub fn contradiction_in(status: &Status) -> Option<String> {
    let refusal = Refusal::of(status)?;
    contradiction(refusal.reason, status.message())
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
        // A name that contains the word is not the word: the test cards are listed.
        assert!(
            contradiction(
                ErrorReason::InvalidField,
                "invalid card_token: use tok_visa or tok_declined"
            )
            .is_none()
        );
        assert!(contradiction(ErrorReason::OutcomeUnknown, "the deadline passed").is_some());
    }

    #[test]
    fn a_status_is_checked_by_its_error_info_and_one_without_has_nothing_to_contradict() {
        let agreeing = Status::from(proto::error::FieldError::new("quantity", "must be 1 to 10"));
        assert_eq!(contradiction_in(&agreeing), None);
        let plain = Status::aborted("write conflict; retry");
        assert_eq!(contradiction_in(&plain), None);
        let contradicting = proto::error::with_reason(
            Code::FailedPrecondition,
            ErrorReason::CardDeclined,
            "insufficient funds",
            [],
        );
        assert!(contradiction_in(&contradicting).is_some());
    }
}
