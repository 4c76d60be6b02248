//! What a purchase's log row holds, decoded by column name. A value the code does not
//! know (a state, a decision, a protocol) is an error, never a default: the log is what
//! recovery acts on, and a misread row would be driven the wrong way.

use chrono::{DateTime, Utc};
use proto::v1::{Participant, PricedSeat, Protocol, StepOutcome};
use tokio_postgres::Row;

use crate::error::{Error, Result};
use crate::model::Purchase;

/// Where a purchase is in its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running,
    Committing,
    Aborting,
    Committed,
    Aborted,
    NeedsAttention,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "RUNNING",
            State::Committing => "COMMITTING",
            State::Aborting => "ABORTING",
            State::Committed => "COMMITTED",
            State::Aborted => "ABORTED",
            State::NeedsAttention => "NEEDS_ATTENTION",
        }
    }

    pub fn parse(value: &str) -> Result<Self> {
        Ok(match value {
            "RUNNING" => State::Running,
            "COMMITTING" => State::Committing,
            "ABORTING" => State::Aborting,
            "COMMITTED" => State::Committed,
            "ABORTED" => State::Aborted,
            "NEEDS_ATTENTION" => State::NeedsAttention,
            other => return Err(Error::Corrupt(format!("unknown state {other:?}"))),
        })
    }

    pub fn is_finished(self) -> bool {
        matches!(self, State::Committed | State::Aborted)
    }
}

/// A purchase's decision: written once (see `Log::decide`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Commit,
    Abort,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Commit => "COMMIT",
            Decision::Abort => "ABORT",
        }
    }

    pub fn parse(value: &str) -> Result<Self> {
        match value {
            "COMMIT" => Ok(Decision::Commit),
            "ABORT" => Ok(Decision::Abort),
            other => Err(Error::Corrupt(format!("unknown decision {other:?}"))),
        }
    }
}

/// One purchase as logged.
#[derive(Debug, Clone)]
pub struct TxnRecord {
    pub txid: String,
    pub protocol: Protocol,
    pub state: State,
    pub decision: Option<Decision>,
    pub purchase: Purchase,
    pub order_id: String,
    pub seats: Vec<PricedSeat>,
    pub amount_cents: Option<i64>,
    pub currency: Option<String>,
    pub payment_id: Option<String>,
    pub fencing_token: Option<i64>,
    pub response: Option<Vec<u8>>,
    pub error_code: Option<i32>,
    pub error: Option<String>,
    pub error_details: Option<Vec<u8>>,
    pub started_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Automatic recovery attempts made while parked.
    pub recovery_attempts: i32,
    /// The waiting-room admission the purchase claimed, if its event has a room.
    pub admission_id: Option<String>,
    /// Whether the room was told the purchase ended.
    pub admission_released: bool,
    /// The seats a lease purchase leased (its intent), once logged.
    pub leased_seats: Vec<String>,
    /// The W3C trace context of the call that began the purchase.
    pub traceparent: Option<String>,
    /// The coordinator instance that received the purchase and logged BEGIN.
    pub began_by: Option<String>,
    /// The coordinator instance that owns the purchase now, and at which epoch.
    pub owner: Option<String>,
    pub owner_epoch: i64,
}

impl TxnRecord {
    /// The purchase's trace id, from its traceparent (`00-<trace id>-<span id>-<flags>`).
    pub fn trace_id(&self) -> Option<&str> {
        self.traceparent.as_deref()?.split('-').nth(1)
    }

    /// Decodes a row selected with [`COLUMNS`].
    pub fn from_row(row: &Row) -> Result<Self> {
        let protocol = match row.get::<_, &str>("protocol") {
            "2pc" => Protocol::TwoPhaseCommit,
            "saga" => Protocol::Saga,
            "lease" => Protocol::Lease,
            other => return Err(Error::Corrupt(format!("unknown protocol {other:?}"))),
        };
        let seats = match row.get::<_, Option<serde_json::Value>>("seats") {
            None => Vec::new(),
            Some(value) => priced_seats(&value)?,
        };
        let quantity = row.get::<_, i32>("quantity");
        Ok(TxnRecord {
            txid: row.get("txid"),
            protocol,
            state: State::parse(row.get("state"))?,
            decision: row
                .get::<_, Option<&str>>("decision")
                .map(Decision::parse)
                .transpose()?,
            purchase: Purchase {
                user_id: row.get("user_id"),
                event_id: row.get("event_id"),
                seat_ids: row.get("seat_ids"),
                quantity: u32::try_from(quantity)
                    .map_err(|_| Error::Corrupt(format!("quantity {quantity}")))?,
                card_token: row.get("card_token"),
                idempotency_key: row.get("idempotency_key"),
                protocol,
                deadline: None,
                admission_token: String::new(),
                email: row.get("contact_email"),
                phone: row.get("contact_phone"),
            },
            order_id: row.get("order_id"),
            seats,
            amount_cents: row.get("amount_cents"),
            currency: row.get("currency"),
            payment_id: row.get("payment_id"),
            fencing_token: row.get("fencing_token"),
            response: row.get("response"),
            error_code: row.get("error_code"),
            error: row.get("error"),
            error_details: row.get("error_details"),
            started_at: row.get("started_at"),
            decided_at: row.get("decided_at"),
            finished_at: row.get("finished_at"),
            recovery_attempts: row.get("recovery_attempts"),
            admission_id: row.get("admission_id"),
            admission_released: row.get("admission_released"),
            leased_seats: row
                .get::<_, Option<Vec<String>>>("leased_seats")
                .unwrap_or_default(),
            traceparent: row.get("traceparent"),
            began_by: row.get("began_by"),
            owner: row.get("owner"),
            owner_epoch: row.get("owner_epoch"),
        })
    }
}

/// The `seats` column: `[{"seat_id": …, "price_cents": …}, …]`.
fn priced_seats(value: &serde_json::Value) -> Result<Vec<PricedSeat>> {
    let corrupt = || Error::Corrupt(format!("seats {value}"));
    value
        .as_array()
        .ok_or_else(corrupt)?
        .iter()
        .map(|seat| {
            Ok(PricedSeat {
                seat_id: seat
                    .get("seat_id")
                    .and_then(|v| v.as_str())
                    .ok_or_else(corrupt)?
                    .to_owned(),
                price_cents: seat
                    .get("price_cents")
                    .and_then(serde_json::Value::as_i64)
                    .ok_or_else(corrupt)?,
            })
        })
        .collect()
}

/// The `seats` column of `seats`.
pub fn seats_json(seats: &[PricedSeat]) -> serde_json::Value {
    serde_json::Value::Array(
        seats
            .iter()
            .map(|s| serde_json::json!({"seat_id": s.seat_id, "price_cents": s.price_cents}))
            .collect(),
    )
}

/// The columns [`TxnRecord::from_row`] decodes, by name.
pub const COLUMNS: &str = "txid, protocol, state, decision, user_id, event_id, seat_ids, quantity,
    card_token, idempotency_key, order_id, seats, amount_cents, currency, payment_id,
    fencing_token, response, error_code, error, error_details, started_at, decided_at,
    finished_at, recovery_attempts, admission_id,
    admission_released_at IS NOT NULL AS admission_released, leased_seats, contact_email,
    contact_phone, traceparent, began_by, owner, owner_epoch";

pub fn participant_name(participant: Participant) -> &'static str {
    match participant {
        Participant::Inventory => "inventory",
        Participant::Orders => "orders",
        Participant::Payments => "payments",
        Participant::Locks => "locks",
        Participant::WaitingRoom => "waiting_room",
        Participant::Coordinator | Participant::Unspecified => "coordinator",
    }
}

pub fn participant_from_name(name: &str) -> Participant {
    match name {
        "inventory" => Participant::Inventory,
        "orders" => Participant::Orders,
        "payments" => Participant::Payments,
        "locks" => Participant::Locks,
        "waiting_room" => Participant::WaitingRoom,
        _ => Participant::Coordinator,
    }
}

pub fn outcome_name(outcome: StepOutcome) -> &'static str {
    match outcome {
        StepOutcome::Ok => "OK",
        StepOutcome::Failed => "FAILED",
        StepOutcome::Unknown => "UNKNOWN",
        StepOutcome::InFlight | StepOutcome::Unspecified => "IN_FLIGHT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_decisions_round_trip_and_unknown_values_are_errors() {
        for state in [
            State::Running,
            State::Committing,
            State::Aborting,
            State::Committed,
            State::Aborted,
            State::NeedsAttention,
        ] {
            assert_eq!(State::parse(state.as_str()).expect("known"), state);
        }
        assert!(State::parse("RUNNNING").is_err());
        for decision in [Decision::Commit, Decision::Abort] {
            assert_eq!(Decision::parse(decision.as_str()).expect("known"), decision);
        }
        assert!(Decision::parse("commit").is_err(), "not COMMIT, not ABORT");
    }

    #[test]
    fn seats_round_trip_and_a_malformed_seat_is_an_error() {
        let seats = vec![PricedSeat {
            seat_id: "A-1-1".into(),
            price_cents: 2_500,
        }];
        assert_eq!(priced_seats(&seats_json(&seats)).expect("valid"), seats);
        assert!(priced_seats(&serde_json::json!([{"seat_id": "A-1-1"}])).is_err());
        assert!(priced_seats(&serde_json::json!({"seat_id": "A-1-1"})).is_err());
    }
}
