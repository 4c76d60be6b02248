//! Why purchases failed, by cause: the ErrorInfo reason of the refusal each failed
//! purchase was answered (kept in its log row), with the decline code for a declined
//! card, and the cause in words for people reading `txn failures`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use proto::error::Refusal;
use proto::v1::{ErrorReason, FailureGroup};
use tonic::{Code, Status};

use crate::error::{Error, Result};
use crate::log::Log;

/// Failed purchases (ABORTED or NEEDS_ATTENTION) begun since `since`, of `event` when
/// given, grouped by cause, most frequent first.
pub async fn group(
    log: &Log,
    since: DateTime<Utc>,
    event: Option<&str>,
) -> Result<Vec<FailureGroup>> {
    let client = log.pool().get().await?;
    let rows = client
        .query(
            "SELECT txid, error_code, coalesce(error, ''), error_details, state
               FROM transactions
              WHERE state IN ('ABORTED', 'NEEDS_ATTENTION') AND started_at >= $1
                AND ($2::text IS NULL OR event_id = $2)
              ORDER BY started_at",
            &[&since, &event],
        )
        .await
        .map_err(Error::from)?;
    let mut groups: BTreeMap<String, FailureGroup> = BTreeMap::new();
    for row in &rows {
        let (key, label) = cause(
            row.get(1),
            row.get(2),
            row.get::<_, Option<Vec<u8>>>(3).unwrap_or_default(),
            row.get(4),
        );
        let group = groups.entry(key.clone()).or_insert_with(|| FailureGroup {
            key,
            label,
            count: 0,
            example_txids: Vec::new(),
        });
        group.count += 1;
        if group.example_txids.len() < 5 {
            group.example_txids.push(row.get(0));
        }
    }
    let mut groups: Vec<FailureGroup> = groups.into_values().collect();
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    Ok(groups)
}

/// The group key and the words of one failed purchase.
fn cause(code: Option<i32>, message: String, details: Vec<u8>, state: &str) -> (String, String) {
    let status = Status::with_details(
        Code::from(code.unwrap_or(Code::Aborted as i32)),
        message.clone(),
        details.into(),
    );
    match Refusal::of(&status) {
        Some(Refusal { reason, metadata }) => {
            let decline = metadata
                .get("decline_code")
                .filter(|_| reason == ErrorReason::CardDeclined);
            let (reason, words) = (reason.name(), in_words(reason));
            match decline {
                Some(decline) => (
                    format!("{reason}:{decline}"),
                    format!("{words} ({decline})"),
                ),
                None => (reason.to_owned(), words.to_owned()),
            }
        }
        _ if state == "NEEDS_ATTENTION" => (
            "NEEDS_ATTENTION".to_owned(),
            "stuck: a step ran out of retries; needs attention".to_owned(),
        ),
        _ => (
            "UNCLASSIFIED".to_owned(),
            format!("no reason recorded: {message}"),
        ),
    }
}

/// What a reason code means, in words.
pub fn in_words(reason: ErrorReason) -> &'static str {
    match reason {
        ErrorReason::Unspecified => "no reason given",
        ErrorReason::InvalidField => "invalid request",
        ErrorReason::SoldOut => "no seats available (sold out)",
        ErrorReason::SeatTaken => "seat already reserved by another purchase",
        ErrorReason::HoldLost => "seat hold lost before the sale",
        ErrorReason::CardDeclined => "payment declined",
        ErrorReason::StaleFencingToken => "seat lease taken over by a newer purchase",
        ErrorReason::TxnAborted => "transaction aborted before the step arrived",
        ErrorReason::StepCompensated => "step arrived after its compensation",
        ErrorReason::IdempotencyKeyReused => "idempotency key reused for another purchase",
        ErrorReason::OutcomeUnknown => "outcome not known yet",
        ErrorReason::InvalidState => "not allowed in the current state",
        ErrorReason::AmountExceeded => "amount beyond what was authorized",
        ErrorReason::AdmissionRequired => "no waiting-room admission",
        ErrorReason::AdmissionInvalid => "waiting-room admission not valid",
        ErrorReason::AdmissionExpired => "waiting-room admission expired",
        ErrorReason::AdmissionUsed => "waiting-room admission already used",
        ErrorReason::Interrupted => "interrupted by a coordinator restart, and undone",
        ErrorReason::Unauthenticated => "not signed in",
        ErrorReason::ScopeRequired => "not allowed for this caller",
        ErrorReason::OtherUser => "acting for another user",
        ErrorReason::RateLimited => "too many calls (rate limited)",
        ErrorReason::ParticipantUnavailable => "a participant did not answer",
        ErrorReason::BranchOfAnotherLog => "a branch of another coordinator log",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decline_is_grouped_with_its_code_and_a_stuck_purchase_without_reason_by_state() {
        let declined = proto::error::with_reason(
            Code::FailedPrecondition,
            ErrorReason::CardDeclined,
            "card declined: insufficient_funds",
            [("decline_code", "insufficient_funds".to_owned())],
        );
        assert_eq!(
            cause(
                Some(declined.code() as i32),
                declined.message().to_owned(),
                declined.details().to_vec(),
                "ABORTED"
            ),
            (
                "CARD_DECLINED:insufficient_funds".to_owned(),
                "payment declined (insufficient_funds)".to_owned()
            )
        );
        let sold_out = proto::error::with_reason(
            Code::FailedPrecondition,
            ErrorReason::SoldOut,
            "sold out",
            [],
        );
        assert_eq!(
            cause(
                None,
                "sold out".into(),
                sold_out.details().to_vec(),
                "ABORTED"
            )
            .1,
            "no seats available (sold out)"
        );
        assert_eq!(
            cause(None, "x".into(), Vec::new(), "NEEDS_ATTENTION").0,
            "NEEDS_ATTENTION"
        );
        assert_eq!(
            cause(None, "x".into(), Vec::new(), "ABORTED").0,
            "UNCLASSIFIED"
        );
    }
}
