//! What the coordinator counts, on top of server-kit's gRPC and pool metrics:
//!
//! | metric | labels | what |
//! | --- | --- | --- |
//! | `ticketdrop_purchases_total` | `protocol`, `outcome` (`committed`, `refused`, `unknown`), `reason` | every Purchase answered, replays included |
//! | `ticketdrop_purchase_replays_total` | `protocol` | answers to a repeated idempotency key |
//! | `ticketdrop_steps_total` | `participant`, `operation`, `outcome` | every step attempt logged |
//! | `ticketdrop_step_retries_total` | `participant`, `operation` | attempts after the first |
//! | `ticketdrop_compensations_total` | `participant`, `operation` | compensating step attempts |
//! | `ticketdrop_transactions_in_flight` | | purchases this process is driving now |
//! | `ticketdrop_recovered_total` | `protocol` | purchases recovery drove to their end |
//! | `ticketdrop_takeovers_total` | | purchases this coordinator took over after their ownership lapsed |
//! | `ticketdrop_ownership_lost_total` | | purchases this coordinator found another owning (its writes refused) |
//! | `ticketdrop_foreign_branches_in_doubt` | `participant` | in-doubt branches of other logs at the participant, left alone by reconciliation (last round) |
//! | `ticketdrop_in_doubt_branches` | `participant` | prepared branches a participant holds undecided, at the last reconciliation |
//! | `ticketdrop_outbox_unrelayed` | | confirmations not yet handed to the notifier |
//! | `ticketdrop_outbox_lag_seconds` | | age of the oldest of them |
//! | `ticketdrop_outbox_relayed_total`, `ticketdrop_outbox_relay_failures_total` | | hand-overs |

use metrics::{counter, gauge};
use proto::v1::{ErrorReason, Participant, Protocol, StepOutcome};
use tonic::Status;

fn protocol(protocol: Protocol) -> &'static str {
    crate::model::protocol_name(protocol)
}

fn participant(participant: Participant) -> String {
    participant
        .as_str_name()
        .trim_start_matches("PARTICIPANT_")
        .to_lowercase()
}

/// One Purchase answered: committed, refused for a reason (its ErrorInfo reason), or
/// with an outcome not known yet.
pub fn purchase_answered(for_protocol: Protocol, answer: &Result<impl Sized, Status>) {
    let (outcome, reason) = match answer {
        Ok(_) => ("committed", String::new()),
        Err(status) => {
            let reason = proto::error::Refusal::of(status)
                .map(|refusal| refusal.reason.name().to_owned())
                .unwrap_or_else(|| format!("{:?}", status.code()).to_uppercase());
            let outcome = if reason == ErrorReason::OutcomeUnknown.name() {
                "unknown"
            } else {
                "refused"
            };
            (outcome, reason)
        }
    };
    counter!("ticketdrop_purchases_total",
        "protocol" => protocol(for_protocol),
        "outcome" => outcome,
        "reason" => reason)
    .increment(1);
}

pub fn replayed(for_protocol: Protocol) {
    counter!("ticketdrop_purchase_replays_total", "protocol" => protocol(for_protocol))
        .increment(1);
}

/// One step attempt, as logged.
pub fn step(
    at: Participant,
    operation: &str,
    attempt: u32,
    compensation: bool,
    outcome: StepOutcome,
) {
    let (at, operation) = (participant(at), operation.to_owned());
    let outcome = match outcome {
        StepOutcome::Ok => "ok",
        StepOutcome::Failed => "failed",
        StepOutcome::Unknown => "unknown",
        _ => "unspecified",
    };
    counter!("ticketdrop_steps_total",
        "participant" => at.clone(), "operation" => operation.clone(), "outcome" => outcome)
    .increment(1);
    if attempt > 1 {
        counter!("ticketdrop_step_retries_total",
            "participant" => at.clone(), "operation" => operation.clone())
        .increment(1);
    }
    if compensation {
        counter!("ticketdrop_compensations_total",
            "participant" => at, "operation" => operation)
        .increment(1);
    }
}

pub fn in_flight(count: usize) {
    gauge!("ticketdrop_transactions_in_flight").set(count as f64);
}

pub fn recovered(for_protocol: Protocol) {
    counter!("ticketdrop_recovered_total", "protocol" => protocol(for_protocol)).increment(1);
}

pub fn taken_over(count: usize) {
    counter!("ticketdrop_takeovers_total").increment(count as u64);
}

pub fn ownership_lost() {
    counter!("ticketdrop_ownership_lost_total").increment(1);
}

pub fn foreign_branches(at: Participant, branches: usize) {
    gauge!("ticketdrop_foreign_branches_in_doubt", "participant" => participant(at))
        .set(branches as f64);
}

pub fn in_doubt(at: Participant, branches: usize) {
    gauge!("ticketdrop_in_doubt_branches", "participant" => participant(at)).set(branches as f64);
}

pub fn outbox(unrelayed: i64, oldest_age_s: f64) {
    gauge!("ticketdrop_outbox_unrelayed").set(unrelayed as f64);
    gauge!("ticketdrop_outbox_lag_seconds").set(oldest_age_s);
}

pub fn relayed(ok: bool) {
    if ok {
        counter!("ticketdrop_outbox_relayed_total").increment(1);
    } else {
        counter!("ticketdrop_outbox_relay_failures_total").increment(1);
    }
}
