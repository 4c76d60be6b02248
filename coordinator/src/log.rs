//! The durable transaction log in the coordinator's PostgreSQL database: one row per
//! purchase (protocol, state, decision, what the participants answered, the final
//! answer) and one row per attempt of every participant call.
//!
//! The 2PC decision is a committed UPDATE before phase two starts: that is the commit
//! point. Everything recovery needs to finish or undo a purchase is in this row.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use proto::v1::{Participant, PricedSeat, Protocol, StepOutcome};
use tokio_postgres::Row;

use crate::error::{Error, Result};
use crate::model::{Purchase, protocol_from_name, protocol_name};
use crate::steps::{StepRow, StepWriter};

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

    pub fn parse(value: &str) -> Self {
        match value {
            "COMMITTING" => State::Committing,
            "ABORTING" => State::Aborting,
            "COMMITTED" => State::Committed,
            "ABORTED" => State::Aborted,
            "NEEDS_ATTENTION" => State::NeedsAttention,
            _ => State::Running,
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, State::Committed | State::Aborted)
    }
}

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
}

impl TxnRecord {
    /// The purchase's trace id, from its traceparent (`00-<trace id>-<span id>-<flags>`).
    pub fn trace_id(&self) -> Option<&str> {
        self.traceparent.as_deref()?.split('-').nth(1)
    }
}

const COLUMNS: &str = "txid, protocol, state, decision, user_id, event_id, seat_ids, quantity,
                       card_token, idempotency_key, order_id, seats, amount_cents, currency,
                       payment_id, fencing_token, response, error_code, error, error_details,
                       started_at, decided_at, finished_at, recovery_attempts, admission_id,
                       admission_released_at IS NOT NULL, leased_seats, contact_email,
                       contact_phone, traceparent";

/// A purchase's confirmation in the outbox.
pub struct OutboxRow {
    pub created_at: DateTime<Utc>,
    pub relayed_at: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub last_error: Option<String>,
}

/// How `begin` found the idempotency key.
pub enum Begun {
    /// A new transaction was logged.
    New(TxnRecord),
    /// The key already has a transaction.
    Existing(TxnRecord),
}

#[derive(Clone)]
pub struct Log {
    pool: Pool,
    steps: StepWriter,
}

impl Log {
    /// The log on `pool`; starts the step rows' group writer (needs a Tokio runtime).
    pub fn new(pool: Pool) -> Self {
        Self {
            steps: StepWriter::start(pool.clone()),
            pool,
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The purchase an idempotency key already has, if any.
    pub async fn find_by_key(&self, idempotency_key: &str) -> Result<Option<TxnRecord>> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM transactions WHERE idempotency_key = $1"
            ))
            .await?;
        Ok(client
            .query_opt(&statement, &[&idempotency_key])
            .await?
            .map(|row| record(&row)))
    }

    /// Logs BEGIN for a new purchase, or finds the one its idempotency key already has.
    pub async fn begin(
        &self,
        txid: &str,
        order_id: &str,
        purchase: &Purchase,
        admission_id: Option<&str>,
    ) -> Result<Begun> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO transactions (txid, protocol, state, user_id, event_id, seat_ids,
                                           quantity, card_token, idempotency_key, order_id,
                                           admission_id, contact_email, contact_phone,
                                           traceparent)
                 VALUES ($1, $2, 'RUNNING', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                 ON CONFLICT (idempotency_key) DO NOTHING
                 RETURNING {COLUMNS}"
            ))
            .await?;
        let quantity = i32::try_from(purchase.quantity).expect("at most 10");
        let inserted = client
            .query_opt(
                &statement,
                &[
                    &txid,
                    &protocol_name(purchase.protocol),
                    &purchase.user_id,
                    &purchase.event_id,
                    &purchase.seat_ids,
                    &quantity,
                    &purchase.card_token,
                    &purchase.idempotency_key,
                    &order_id,
                    &admission_id,
                    &purchase.email,
                    &purchase.phone,
                    &server_kit::trace::current_traceparent(),
                ],
            )
            .await?;
        if let Some(row) = inserted {
            return Ok(Begun::New(record(&row)));
        }
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM transactions WHERE idempotency_key = $1"
            ))
            .await?;
        let row = client
            .query_one(&statement, &[&purchase.idempotency_key])
            .await?;
        Ok(Begun::Existing(record(&row)))
    }

    pub async fn load(&self, txid: &str) -> Result<TxnRecord> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM transactions WHERE txid = $1"
            ))
            .await?;
        client
            .query_opt(&statement, &[&txid])
            .await?
            .map(|row| record(&row))
            .ok_or_else(|| Error::TxnNotFound(txid.to_owned()))
    }

    pub async fn find(&self, txid: &str) -> Result<Option<TxnRecord>> {
        match self.load(txid).await {
            Ok(record) => Ok(Some(record)),
            Err(Error::TxnNotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The transactions of `txids`, in that order (one query).
    pub async fn load_many(&self, txids: &[String]) -> Result<Vec<TxnRecord>> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM transactions WHERE txid = ANY($1)"
            ))
            .await?;
        let mut found: std::collections::HashMap<String, TxnRecord> = client
            .query(&statement, &[&txids])
            .await?
            .iter()
            .map(|row| {
                let txn = record(row);
                (txn.txid.clone(), txn)
            })
            .collect();
        Ok(txids.iter().filter_map(|txid| found.remove(txid)).collect())
    }

    /// Transactions decided (or finished) at or after `since`, oldest first, at most 500.
    pub async fn decided_since(&self, since: DateTime<Utc>) -> Result<Vec<TxnRecord>> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM transactions
                  WHERE decision IS NOT NULL AND (decided_at >= $1 OR finished_at >= $1)
                  ORDER BY decided_at LIMIT 500"
            ))
            .await?;
        Ok(client
            .query(&statement, &[&since])
            .await?
            .iter()
            .map(record)
            .collect())
    }

    /// Every unfinished transaction, parked ones included.
    pub async fn unfinished(&self) -> Result<Vec<TxnRecord>> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM transactions
                  WHERE state IN ('RUNNING', 'COMMITTING', 'ABORTING', 'NEEDS_ATTENTION')
                  ORDER BY started_at"
            ))
            .await?;
        Ok(client
            .query(&statement, &[])
            .await?
            .iter()
            .map(record)
            .collect())
    }

    /// What the continuous recovery may drive now: unfinished purchases, and parked ones
    /// whose automatic recovery attempts are not used up and whose backoff has passed.
    pub async fn due_for_recovery(&self, max_attempts: i32) -> Result<Vec<TxnRecord>> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM transactions
                  WHERE state IN ('RUNNING', 'COMMITTING', 'ABORTING')
                     OR (state = 'NEEDS_ATTENTION' AND recovery_attempts < $1
                         AND coalesce(next_recovery_at, now()) <= now())
                  ORDER BY started_at"
            ))
            .await?;
        Ok(client
            .query(&statement, &[&max_attempts])
            .await?
            .iter()
            .map(record)
            .collect())
    }

    /// Counts one automatic recovery attempt of a parked purchase and schedules the next
    /// one after `backoff`.
    pub async fn count_recovery(&self, txid: &str, backoff: std::time::Duration) -> Result<()> {
        let millis = i64::try_from(backoff.as_millis()).unwrap_or(i64::MAX);
        self.update(
            "UPDATE transactions
                SET recovery_attempts = recovery_attempts + 1,
                    next_recovery_at = now() + $2::bigint * interval '1 millisecond',
                    updated_at = now()
              WHERE txid = $1",
            &[&txid, &millis],
        )
        .await
    }

    /// What the participants answered: the priced seats and the money.
    pub async fn set_seats(&self, txid: &str, seats: &[PricedSeat], currency: &str) -> Result<()> {
        let json = serde_json::Value::Array(
            seats
                .iter()
                .map(|s| serde_json::json!({"seat_id": s.seat_id, "price_cents": s.price_cents}))
                .collect(),
        );
        let amount: i64 = seats.iter().map(|s| s.price_cents).sum();
        self.update(
            "UPDATE transactions SET seats = $2, amount_cents = $3, currency = $4, updated_at = now()
              WHERE txid = $1",
            &[&txid, &json, &amount, &currency],
        )
        .await
    }

    pub async fn set_payment(&self, txid: &str, payment_id: &str) -> Result<()> {
        self.update(
            "UPDATE transactions SET payment_id = $2, updated_at = now() WHERE txid = $1",
            &[&txid, &payment_id],
        )
        .await
    }

    /// The lease protocol's durable intent: the fencing token its writes carry.
    pub async fn set_intent(
        &self,
        txid: &str,
        fencing_token: i64,
        seat_ids: &[String],
    ) -> Result<()> {
        self.update(
            "UPDATE transactions SET fencing_token = $2, leased_seats = $3, updated_at = now()
              WHERE txid = $1",
            &[&txid, &fencing_token, &seat_ids],
        )
        .await
    }

    /// Logs the decision durably; for 2PC this is the commit point. A COMMIT records the
    /// purchase's confirmation in the outbox in the same statement, so a committed
    /// purchase never lacks one, whatever crashes next.
    pub async fn decide(&self, txid: &str, decision: Decision) -> Result<()> {
        let state = match decision {
            Decision::Commit => State::Committing,
            Decision::Abort => State::Aborting,
        };
        self.update(
            "WITH decided AS (
                 UPDATE transactions
                    SET decision = $2, state = $3, decided_at = now(), updated_at = now()
                  WHERE txid = $1
              RETURNING txid)
             INSERT INTO outbox (txid)
             SELECT txid FROM decided WHERE $2 = 'COMMIT'
             ON CONFLICT (txid) DO NOTHING",
            &[&txid, &decision.as_str(), &state.as_str()],
        )
        .await
    }

    pub async fn finish_committed(&self, txid: &str, response: &[u8]) -> Result<()> {
        self.update(
            "UPDATE transactions SET state = 'COMMITTED', response = $2, finished_at = now(),
                    updated_at = now()
              WHERE txid = $1",
            &[&txid, &response],
        )
        .await
    }

    /// Ends an aborted purchase in one statement: records why it was refused (the answer
    /// replayed to its key; the first refusal wins) and, when every undo went through,
    /// finishes it as ABORTED, otherwise parks it as NEEDS_ATTENTION.
    pub async fn end_aborted(
        &self,
        txid: &str,
        code: i32,
        message: &str,
        details: &[u8],
        undone: bool,
    ) -> Result<()> {
        self.update(
            "UPDATE transactions
                SET error         = CASE WHEN error_code IS NULL THEN $3 ELSE error END,
                    error_details = CASE WHEN error_code IS NULL THEN $4 ELSE error_details END,
                    error_code    = coalesce(error_code, $2),
                    state         = CASE WHEN $5 THEN 'ABORTED' ELSE 'NEEDS_ATTENTION' END,
                    finished_at   = CASE WHEN $5 THEN now() ELSE finished_at END,
                    updated_at    = now()
              WHERE txid = $1",
            &[&txid, &code, &message, &details, &undone],
        )
        .await
    }

    /// Parks a purchase whose step exhausted its retries.
    pub async fn park(&self, txid: &str, error: &str) -> Result<()> {
        self.update(
            "UPDATE transactions SET state = 'NEEDS_ATTENTION', error = coalesce(error, $2),
                    updated_at = now()
              WHERE txid = $1",
            &[&txid, &error],
        )
        .await
    }

    /// Puts a parked purchase back to the state its decision implies, for recovery.
    pub async fn unpark(&self, txid: &str) -> Result<()> {
        self.update(
            "UPDATE transactions
                SET state = CASE decision WHEN 'COMMIT' THEN 'COMMITTING'
                                          WHEN 'ABORT' THEN 'ABORTING' ELSE 'RUNNING' END,
                    updated_at = now()
              WHERE txid = $1 AND state = 'NEEDS_ATTENTION'",
            &[&txid],
        )
        .await
    }

    /// Notes that the waiting room was told the purchase ended.
    pub async fn admission_released(&self, txid: &str) -> Result<()> {
        self.update(
            "UPDATE transactions SET admission_released_at = now() WHERE txid = $1",
            &[&txid],
        )
        .await
    }

    /// Finished purchases whose admission the room was not told about yet (oldest first).
    pub async fn unreleased_admissions(&self, limit: i64) -> Result<Vec<TxnRecord>> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM transactions
                  WHERE admission_id IS NOT NULL AND admission_released_at IS NULL
                    AND state IN ('COMMITTED', 'ABORTED')
                  ORDER BY finished_at LIMIT $1"
            ))
            .await?;
        Ok(client
            .query(&statement, &[&limit])
            .await?
            .iter()
            .map(record)
            .collect())
    }

    /// Other purchases of the event that may still give a seat back to sale: unfinished
    /// ones, and ones aborted (their seats returned) since `txid` began. While there is
    /// any, a participant's "sold out" is not definitive.
    pub async fn others_in_flight(&self, event_id: &str, txid: &str) -> Result<i64> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT count(*) FROM transactions t
                  WHERE t.event_id = $1 AND t.txid <> $2
                    AND (t.state IN ('RUNNING', 'COMMITTING', 'ABORTING', 'NEEDS_ATTENTION')
                         OR (t.state = 'ABORTED' AND t.finished_at >=
                             (SELECT started_at FROM transactions WHERE txid = $2)))",
            )
            .await?;
        Ok(client
            .query_one(&statement, &[&event_id, &txid])
            .await?
            .get(0))
    }

    /// What earlier runs of the transaction logged: the next free step sequence, and
    /// how many attempts each call (participant, operation, compensation) had, so a
    /// later run (recovery) numbers its steps and attempts on from there and a timeline
    /// reads #1, #2, ... across restarts. One query.
    pub async fn earlier_steps(&self, txid: &str) -> Result<EarlierSteps> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT participant, operation, compensation, max(attempt), max(sequence)
                   FROM steps WHERE txid = $1
                  GROUP BY participant, operation, compensation",
            )
            .await?;
        let rows = client.query(&statement, &[&txid]).await?;
        let count = |n: i32| u32::try_from(n).unwrap_or(0);
        Ok(EarlierSteps {
            next_sequence: rows.iter().map(|r| count(r.get(4))).max().unwrap_or(0) + 1,
            attempts: rows
                .iter()
                .map(|r| ((r.get(0), r.get(1), r.get(2)), count(r.get(3))))
                .collect(),
        })
    }

    /// One attempt of one participant call.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_step(
        &self,
        txid: &str,
        sequence: u32,
        participant: Participant,
        operation: &str,
        attempt: u32,
        compensation: bool,
        started_at: DateTime<Utc>,
        outcome: StepOutcome,
        error: Option<&str>,
    ) -> Result<()> {
        self.steps
            .record(StepRow {
                txid: txid.to_owned(),
                sequence: sequence as i32,
                participant: participant_name(participant),
                operation: operation.to_owned(),
                attempt: attempt as i32,
                compensation,
                started_at,
                outcome: outcome_name(outcome),
                error: error.map(str::to_owned),
            })
            .await
    }

    /// Claims up to `limit` confirmations of purchases that finished committing and are
    /// not relayed yet, for `claim` (a relay killed meanwhile leaves them due again
    /// then). Answers each txid with its relay attempt number.
    pub async fn claim_outbox(
        &self,
        limit: i64,
        claim: std::time::Duration,
    ) -> Result<Vec<(String, i32)>> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "WITH due AS (
                     SELECT o.txid FROM outbox o JOIN transactions t USING (txid)
                      WHERE o.relayed_at IS NULL AND o.next_attempt_at <= now()
                        AND t.state = 'COMMITTED'
                      ORDER BY o.next_attempt_at
                      LIMIT $1
                        FOR UPDATE OF o SKIP LOCKED)
                 UPDATE outbox o
                    SET attempts = o.attempts + 1,
                        next_attempt_at = now() + $2 * interval '1 millisecond'
                   FROM due WHERE o.txid = due.txid
              RETURNING o.txid, o.attempts",
            )
            .await?;
        let claim_ms = claim.as_secs_f64() * 1_000.0;
        Ok(client
            .query(&statement, &[&limit, &claim_ms])
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }

    /// Confirmations not handed to the notifier yet, and the age in seconds of the
    /// oldest of them (0 when there is none).
    pub async fn outbox_lag(&self) -> Result<(i64, f64)> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT count(*),
                        coalesce(extract(epoch FROM now() - min(created_at))::float8, 0)
                   FROM outbox WHERE relayed_at IS NULL",
                &[],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    /// The notifier has the confirmation.
    pub async fn outbox_relayed(&self, txid: &str) -> Result<()> {
        self.update(
            "UPDATE outbox SET relayed_at = now(), last_error = NULL WHERE txid = $1",
            &[&txid],
        )
        .await
    }

    /// A relay attempt failed: due again after `retry_in` (never, when None: the relay
    /// gave up and a person re-drives it).
    pub async fn outbox_failed(
        &self,
        txid: &str,
        error: &str,
        retry_in: Option<std::time::Duration>,
    ) -> Result<()> {
        let retry_ms = retry_in.map(|d| d.as_secs_f64() * 1_000.0);
        self.update(
            "UPDATE outbox
                SET last_error = $2,
                    next_attempt_at = CASE WHEN $3::float8 IS NULL THEN 'infinity'
                                           ELSE now() + $3 * interval '1 millisecond' END
              WHERE txid = $1",
            &[&txid, &error, &retry_ms],
        )
        .await
    }

    /// The outbox row of `txid`, if the purchase has one.
    pub async fn outbox(&self, txid: &str) -> Result<Option<OutboxRow>> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT created_at, relayed_at, attempts, last_error FROM outbox WHERE txid = $1",
            )
            .await?;
        Ok(client
            .query_opt(&statement, &[&txid])
            .await?
            .map(|row| OutboxRow {
                created_at: row.get(0),
                relayed_at: row.get(1),
                attempts: row.get(2),
                last_error: row.get(3),
            }))
    }

    async fn update(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<()> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(sql).await?;
        client.execute(&statement, params).await?;
        Ok(())
    }
}

/// What earlier runs of a transaction logged (see [`Log::earlier_steps`]).
pub struct EarlierSteps {
    pub next_sequence: u32,
    /// Attempts so far by (participant, operation, compensation), as the rows name them.
    pub attempts: Vec<((String, String, bool), u32)>,
}

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

fn record(row: &Row) -> TxnRecord {
    let seats = row
        .get::<_, Option<serde_json::Value>>(11)
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|s| {
            Some(PricedSeat {
                seat_id: s.get("seat_id")?.as_str()?.to_owned(),
                price_cents: s.get("price_cents")?.as_i64()?,
            })
        })
        .collect();
    let protocol = protocol_from_name(row.get(1));
    TxnRecord {
        txid: row.get(0),
        protocol,
        state: State::parse(row.get(2)),
        decision: row.get::<_, Option<&str>>(3).map(|d| {
            if d == "COMMIT" {
                Decision::Commit
            } else {
                Decision::Abort
            }
        }),
        purchase: Purchase {
            user_id: row.get(4),
            event_id: row.get(5),
            seat_ids: row.get(6),
            quantity: u32::try_from(row.get::<_, i32>(7)).unwrap_or(0),
            card_token: row.get(8),
            idempotency_key: row.get(9),
            protocol,
            deadline: None,
            admission_token: String::new(),
            email: row.get(27),
            phone: row.get(28),
        },
        order_id: row.get(10),
        seats,
        amount_cents: row.get(12),
        currency: row.get(13),
        payment_id: row.get(14),
        fencing_token: row.get(15),
        response: row.get(16),
        error_code: row.get(17),
        error: row.get(18),
        error_details: row.get(19),
        started_at: row.get(20),
        decided_at: row.get(21),
        finished_at: row.get(22),
        recovery_attempts: row.get(23),
        admission_id: row.get(24),
        admission_released: row.get(25),
        leased_seats: row.get::<_, Option<Vec<String>>>(26).unwrap_or_default(),
        traceparent: row.get(29),
    }
}
