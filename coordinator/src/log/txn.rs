//! BEGIN, the reads of one purchase, and its owner's writes. Every write here is
//! conditional on the writer owning the purchase at its epoch (`Log::write_owned`).

use std::time::Instant;

use proto::v1::PricedSeat;

use super::Log;
use super::record::{COLUMNS, Decision, State, TxnRecord, seats_json};
use crate::error::{Error, Result};
use crate::model::{Purchase, protocol_name};
use crate::ownership::Owned;

/// How `begin` found the idempotency key.
pub enum Begun {
    /// A new purchase was logged, owned by this coordinator (epoch 1).
    New(TxnRecord, Owned),
    /// The key already has a purchase.
    Existing(TxnRecord),
}

impl Log {
    /// The purchase an idempotency key already has, if any.
    pub async fn find_by_key(&self, idempotency_key: &str) -> Result<Option<TxnRecord>> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM transactions WHERE idempotency_key = $1"
            ))
            .await?;
        client
            .query_opt(&statement, &[&idempotency_key])
            .await?
            .map(|row| TxnRecord::from_row(&row))
            .transpose()
    }

    /// Logs BEGIN for a new purchase, owned by this coordinator, or finds the one its
    /// idempotency key already has.
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
                                           traceparent, began_by, owner, owner_epoch,
                                           owned_until)
                 VALUES ($1, $2, 'RUNNING', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                         $14, $14, 1, now() + $15 * interval '1 millisecond')
                 ON CONFLICT (idempotency_key) DO NOTHING
                 RETURNING {COLUMNS}"
            ))
            .await?;
        let quantity = i32::try_from(purchase.quantity).expect("at most 10");
        let me: &str = &self.me;
        let ttl_ms = self.ownership.ttl().as_secs_f64() * 1_000.0;
        let sent = Instant::now();
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
                    &me,
                    &ttl_ms,
                ],
            )
            .await?;
        if let Some(row) = inserted {
            let txn = TxnRecord::from_row(&row)?;
            let owned = self
                .ownership
                .hold(&txn.txid, 1, sent)
                .expect("a fresh txid is held by nobody");
            return Ok(Begun::New(txn, owned));
        }
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM transactions WHERE idempotency_key = $1"
            ))
            .await?;
        let row = client
            .query_one(&statement, &[&purchase.idempotency_key])
            .await?;
        Ok(Begun::Existing(TxnRecord::from_row(&row)?))
    }

    pub async fn load(&self, txid: &str) -> Result<TxnRecord> {
        self.find(txid)
            .await?
            .ok_or_else(|| Error::TxnNotFound(txid.to_owned()))
    }

    pub async fn find(&self, txid: &str) -> Result<Option<TxnRecord>> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM transactions WHERE txid = $1"
            ))
            .await?;
        client
            .query_opt(&statement, &[&txid])
            .await?
            .map(|row| TxnRecord::from_row(&row))
            .transpose()
    }

    /// The purchases of `txids`, in that order (one query).
    pub async fn load_many(&self, txids: &[String]) -> Result<Vec<TxnRecord>> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM transactions WHERE txid = ANY($1)"
            ))
            .await?;
        let mut found = std::collections::HashMap::new();
        for row in client.query(&statement, &[&txids]).await? {
            let txn = TxnRecord::from_row(&row)?;
            found.insert(txn.txid.clone(), txn);
        }
        Ok(txids.iter().filter_map(|txid| found.remove(txid)).collect())
    }

    /// What the participants answered: the priced seats and the money.
    pub async fn set_seats(
        &self,
        owned: &Owned,
        seats: &[PricedSeat],
        currency: &str,
    ) -> Result<()> {
        let amount: i64 = seats.iter().map(|s| s.price_cents).sum();
        self.write_owned(
            owned,
            "seats",
            "UPDATE transactions SET seats = $4, amount_cents = $5, currency = $6,
                    updated_at = now()
              WHERE txid = $1 AND owner = $2 AND owner_epoch = $3",
            &[&seats_json(seats), &amount, &currency],
        )
        .await
    }

    pub async fn set_payment(&self, owned: &Owned, payment_id: &str) -> Result<()> {
        self.write_owned(
            owned,
            "payment",
            "UPDATE transactions SET payment_id = $4, updated_at = now()
              WHERE txid = $1 AND owner = $2 AND owner_epoch = $3",
            &[&payment_id],
        )
        .await
    }

    /// The lease protocol's durable intent: the fencing token its writes carry.
    pub async fn set_intent(
        &self,
        owned: &Owned,
        fencing_token: i64,
        seat_ids: &[String],
    ) -> Result<()> {
        self.write_owned(
            owned,
            "intent",
            "UPDATE transactions SET fencing_token = $4, leased_seats = $5, updated_at = now()
              WHERE txid = $1 AND owner = $2 AND owner_epoch = $3",
            &[&fencing_token, &seat_ids],
        )
        .await
    }

    /// Logs the decision durably; for 2PC this is the commit point. A COMMIT records the
    /// purchase's confirmation in the outbox in the same statement, so a committed
    /// purchase never lacks one, whatever crashes next.
    ///
    /// A decision is written once: on an undecided row, by its owner. The same decision
    /// again is a no-op (recovery repeats what it finds); a different one is refused,
    /// logged as an error, and never written.
    ///
    /// `payment_id`, when given, is recorded with the decision (2PC learns it from the
    /// prepare just before deciding, and only a COMMIT needs it: an abort goes by txid),
    /// which spares the purchase a commit of its own.
    pub async fn decide(
        &self,
        owned: &Owned,
        decision: Decision,
        payment_id: Option<&str>,
    ) -> Result<()> {
        let state = match decision {
            Decision::Commit => State::Committing,
            Decision::Abort => State::Aborting,
        };
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "WITH decided AS (
                     UPDATE transactions
                        SET decision = $4, state = $5, payment_id = coalesce($6, payment_id),
                            decided_at = now(), updated_at = now()
                      WHERE txid = $1 AND owner = $2 AND owner_epoch = $3 AND decision IS NULL
                  RETURNING txid),
                 confirmation AS (
                     INSERT INTO outbox (txid)
                     SELECT txid FROM decided WHERE $4 = 'COMMIT'
                     ON CONFLICT (txid) DO NOTHING)
                 SELECT count(*) AS decided FROM decided",
            )
            .await?;
        let me: &str = &self.me;
        let decided: i64 = client
            .query_one(
                &statement,
                &[
                    &owned.txid,
                    &me,
                    &owned.epoch,
                    &decision.as_str(),
                    &state.as_str(),
                    &payment_id,
                ],
            )
            .await?
            .get("decided");
        if decided == 1 {
            return Ok(());
        }
        // Not written: decided already, or not ours any more.
        let row = client
            .query_one(
                "SELECT decision, owner = $2 AND owner_epoch = $3 AS ours
                   FROM transactions WHERE txid = $1",
                &[&owned.txid, &me, &owned.epoch],
            )
            .await?;
        if !row.get::<_, Option<bool>>("ours").unwrap_or(false) {
            return Err(self.refused(owned, "decision").await);
        }
        let logged = row
            .get::<_, Option<&str>>("decision")
            .map(Decision::parse)
            .transpose()?;
        match logged {
            Some(logged) if logged == decision => Ok(()),
            Some(logged) => {
                tracing::error!(txid = %owned.txid, logged = logged.as_str(),
                                refused = decision.as_str(),
                                "a second, different decision was refused: the first stands");
                Err(Error::DecisionConflict {
                    txid: owned.txid.clone(),
                    logged: logged.as_str(),
                    attempted: decision.as_str(),
                })
            }
            None => Err(Error::Corrupt(format!(
                "{}: undecided, ours, and the decision was not written",
                owned.txid
            ))),
        }
    }

    /// Ends a committed purchase with its answer and lets its ownership go.
    pub async fn finish_committed(&self, owned: &Owned, response: &[u8]) -> Result<()> {
        self.write_owned(
            owned,
            "finish",
            "UPDATE transactions SET state = 'COMMITTED', response = $4, finished_at = now(),
                    finished_by = $2, owned_until = now(), updated_at = now()
              WHERE txid = $1 AND owner = $2 AND owner_epoch = $3",
            &[&response],
        )
        .await
    }

    /// Ends an aborted purchase in one statement: records why it was refused (the answer
    /// replayed to its key; the first refusal wins) and, when every undo went through,
    /// finishes it as ABORTED, otherwise parks it as NEEDS_ATTENTION. Either way its
    /// ownership is let go (a parked purchase is recovered by whoever is due to).
    pub async fn end_aborted(
        &self,
        owned: &Owned,
        code: i32,
        message: &str,
        details: &[u8],
        undone: bool,
    ) -> Result<()> {
        // Tests: the log does not take the end (the purchase stays unfinished).
        fail::fail_point!("log::end_aborted", |_| Err(Error::StepLog(
            "the end was not written (failpoint log::end_aborted)".into()
        )));
        self.write_owned(
            owned,
            "end",
            "UPDATE transactions
                SET error         = CASE WHEN error_code IS NULL THEN $5 ELSE error END,
                    error_details = CASE WHEN error_code IS NULL THEN $6 ELSE error_details END,
                    error_code    = coalesce(error_code, $4),
                    state         = CASE WHEN $7 THEN 'ABORTED' ELSE 'NEEDS_ATTENTION' END,
                    finished_at   = CASE WHEN $7 THEN now() ELSE finished_at END,
                    finished_by   = CASE WHEN $7 THEN $2 ELSE finished_by END,
                    owned_until   = now(),
                    updated_at    = now()
              WHERE txid = $1 AND owner = $2 AND owner_epoch = $3",
            &[&code, &message, &details, &undone],
        )
        .await
    }

    /// Parks a purchase whose step exhausted its retries, and lets its ownership go.
    pub async fn park(&self, owned: &Owned, error: &str) -> Result<()> {
        self.write_owned(
            owned,
            "park",
            "UPDATE transactions SET state = 'NEEDS_ATTENTION', error = coalesce(error, $4),
                    owned_until = now(), updated_at = now()
              WHERE txid = $1 AND owner = $2 AND owner_epoch = $3",
            &[&error],
        )
        .await
    }

    /// Counts one automatic recovery attempt of a parked purchase, schedules the next one
    /// after `backoff`, and puts it back to the state its decision implies.
    pub async fn unpark(&self, owned: &Owned, backoff: std::time::Duration) -> Result<()> {
        let millis = backoff.as_secs_f64() * 1_000.0;
        self.write_owned(
            owned,
            "unpark",
            "UPDATE transactions
                SET recovery_attempts = recovery_attempts + 1,
                    next_recovery_at = now() + $4 * interval '1 millisecond',
                    state = CASE WHEN state <> 'NEEDS_ATTENTION' THEN state
                                 WHEN decision = 'COMMIT' THEN 'COMMITTING'
                                 WHEN decision = 'ABORT' THEN 'ABORTING'
                                 ELSE 'RUNNING' END,
                    updated_at = now()
              WHERE txid = $1 AND owner = $2 AND owner_epoch = $3",
            &[&millis],
        )
        .await
    }

    /// Notes that the waiting room was told the purchase ended.
    pub async fn admission_released(&self, owned: &Owned) -> Result<()> {
        self.write_owned(
            owned,
            "admission_released",
            "UPDATE transactions SET admission_released_at = now()
              WHERE txid = $1 AND owner = $2 AND owner_epoch = $3",
            &[],
        )
        .await
    }
}
