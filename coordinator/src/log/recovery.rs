//! What recovery reads and takes from the log: purchases whose ownership lapsed (taken
//! over, epoch + 1, in one statement that skips rows another coordinator is taking or
//! writing), the renewal of the purchases held, and the queries of the reconciliation,
//! the re-assertion of orders and the honest sold-out.

use std::time::Instant;

use chrono::{DateTime, Utc};

use super::Log;
use super::record::{COLUMNS, TxnRecord};
use crate::error::Result;
use crate::ownership::Owned;

/// A purchase this coordinator took over, held by the caller.
pub struct TakenOver {
    pub txn: TxnRecord,
    pub owned: Owned,
}

/// Unfinished states, as the partial indexes name them.
const UNFINISHED: &str = "('RUNNING', 'COMMITTING', 'ABORTING', 'NEEDS_ATTENTION')";

impl Log {
    /// Takes over up to `limit` unfinished purchases whose ownership lapsed (their owner
    /// died, was paused, or let them go when it parked them), oldest first: owner = this
    /// coordinator, epoch + 1, in one statement. Parked purchases are taken when their
    /// automatic recovery is due (fewer than `max_parked_attempts` so far and their
    /// backoff passed), or whatever their count when `at_start`; at start, too, the
    /// purchases this coordinator's name owned before a restart are taken back at once
    /// (the previous process is gone; were it not, the new epoch fences it).
    ///
    /// Rows another coordinator is taking or writing at this moment are skipped (`FOR
    /// UPDATE SKIP LOCKED`): each purchase is taken by one coordinator, and a takeover
    /// never commits between a step row's ownership check and its insert.
    pub async fn take_over_lapsed(
        &self,
        limit: i64,
        max_parked_attempts: i32,
        at_start: bool,
    ) -> Result<Vec<TakenOver>> {
        let client = self.ownership_pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "WITH lapsed AS (
                     SELECT txid FROM transactions
                      WHERE state IN {UNFINISHED}
                        AND (coalesce(owned_until, '-infinity') < now() OR ($4 AND owner = $1))
                        AND NOT (owner = $1 AND txid = ANY($6))
                        AND (state <> 'NEEDS_ATTENTION' OR $4
                             OR (recovery_attempts < $3
                                 AND coalesce(next_recovery_at, now()) <= now()))
                      ORDER BY started_at
                      LIMIT $2
                        FOR UPDATE SKIP LOCKED)
                 UPDATE transactions t
                    SET owner = $1, owner_epoch = t.owner_epoch + 1,
                        owned_until = now() + $5 * interval '1 millisecond'
                   FROM lapsed WHERE t.txid = lapsed.txid
              RETURNING {}",
                prefixed(COLUMNS, "t.")
            ))
            .await?;
        let me: &str = &self.me;
        let ttl_ms = self.ownership.ttl().as_secs_f64() * 1_000.0;
        // A purchase a task of this process drives is alive, however late its renewal:
        // it is renewed, never taken over by its own coordinator.
        let driving: Vec<String> = self
            .ownership
            .to_renew()
            .into_iter()
            .map(|(txid, _)| txid)
            .collect();
        let sent = Instant::now();
        let rows = client
            .query(
                &statement,
                &[
                    &me,
                    &limit,
                    &max_parked_attempts,
                    &at_start,
                    &ttl_ms,
                    &driving,
                ],
            )
            .await?;
        let mut taken = Vec::with_capacity(rows.len());
        for row in rows {
            let txn = TxnRecord::from_row(&row)?;
            let Some(owned) = self.ownership.hold(&txn.txid, txn.owner_epoch, sent) else {
                continue;
            };
            self.ownership_event(&txn.txid, txn.owner_epoch, "takeover", txn.state.as_str())
                .await;
            taken.push(TakenOver { txn, owned });
        }
        Ok(taken)
    }

    /// Takes over one purchase (finished, or unfinished with its ownership lapsed) for
    /// work that writes its rows after it ended: re-sending a decision, re-asserting an
    /// order, releasing an admission. None when it is owned and not lapsed, or held by
    /// a task of this process.
    pub async fn take_over(&self, txid: &str) -> Result<Option<TakenOver>> {
        if self.ownership.is_held(txid) {
            return Ok(None);
        }
        let client = self.ownership_pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "WITH lapsed AS (
                     SELECT txid FROM transactions
                      WHERE txid = $2 AND coalesce(owned_until, '-infinity') < now()
                        FOR UPDATE SKIP LOCKED)
                 UPDATE transactions t
                    SET owner = $1, owner_epoch = t.owner_epoch + 1,
                        owned_until = now() + $3 * interval '1 millisecond'
                   FROM lapsed WHERE t.txid = lapsed.txid
              RETURNING {}",
                prefixed(COLUMNS, "t.")
            ))
            .await?;
        let me: &str = &self.me;
        let ttl_ms = self.ownership.ttl().as_secs_f64() * 1_000.0;
        let sent = Instant::now();
        let Some(row) = client.query_opt(&statement, &[&me, &txid, &ttl_ms]).await? else {
            return Ok(None);
        };
        let txn = TxnRecord::from_row(&row)?;
        let Some(owned) = self.ownership.hold(&txn.txid, txn.owner_epoch, sent) else {
            return Ok(None);
        };
        Ok(Some(TakenOver { txn, owned }))
    }

    /// Lets go of a purchase taken over for work after its end.
    pub async fn release(&self, owned: &Owned) -> Result<()> {
        self.write_owned(
            owned,
            "release",
            "UPDATE transactions SET owned_until = now()
              WHERE txid = $1 AND owner = $2 AND owner_epoch = $3",
            &[],
        )
        .await
    }

    /// Renews the ownership of `held` (txid, epoch) in one statement; answers, for each,
    /// whether it is still this coordinator's at that epoch (unfinished ones get another
    /// ttl; finished ones need none).
    pub async fn renew(&self, held: &[(String, i64)]) -> Result<Vec<(String, i64, bool)>> {
        let client = self.ownership_pool.get().await?;
        // Whatever the row's state: a purchase that just ended is still its owner's until
        // its task lets go. "Ours" is only what the UPDATE renewed — it re-checks owner
        // and epoch on the row's latest version after waiting for a concurrent writer —
        // never the statement's snapshot, which may predate that writer (a purchase whose
        // own last write ended it would read as lost).
        let statement = client
            .prepare_cached(
                "WITH wanted AS (
                     SELECT * FROM unnest($2::text[], $3::int8[]) AS w(txid, epoch)),
                 renewed AS (
                     UPDATE transactions t
                        SET owned_until = now() + $4 * interval '1 millisecond'
                       FROM wanted w
                      WHERE t.txid = w.txid AND t.owner = $1 AND t.owner_epoch = w.epoch
                  RETURNING t.txid)
                 SELECT w.txid, w.epoch, w.txid IN (SELECT txid FROM renewed) AS ours
                   FROM wanted w",
            )
            .await?;
        let me: &str = &self.me;
        let txids: Vec<&str> = held.iter().map(|(txid, _)| txid.as_str()).collect();
        let epochs: Vec<i64> = held.iter().map(|(_, epoch)| *epoch).collect();
        let ttl_ms = self.ownership.ttl().as_secs_f64() * 1_000.0;
        Ok(client
            .query(&statement, &[&me, &txids, &epochs, &ttl_ms])
            .await?
            .iter()
            .map(|row| {
                (
                    row.get("txid"),
                    row.get("epoch"),
                    row.get::<_, Option<bool>>("ours").unwrap_or(false),
                )
            })
            .collect())
    }

    /// Renews one purchase before acting on it when its local ownership is not current;
    /// false (and the purchase lost here) when another coordinator has it now.
    pub async fn confirm(&self, owned: &Owned) -> Result<bool> {
        let sent = Instant::now();
        let answers = self.renew(&[(owned.txid.clone(), owned.epoch)]).await?;
        if answers.first().is_some_and(|(_, _, ours)| *ours) {
            owned.renewed(sent);
            Ok(true)
        } else {
            let _ = self.refused(owned, "renewal").await;
            Ok(false)
        }
    }

    /// Every unfinished purchase, parked ones included.
    pub async fn unfinished(&self) -> Result<Vec<TxnRecord>> {
        self.records(&format!(
            "SELECT {COLUMNS} FROM transactions WHERE state IN {UNFINISHED} ORDER BY started_at"
        ))
        .await
    }

    /// Purchases decided (or finished) at or after `since`, oldest first, at most 500.
    pub async fn decided_since(&self, since: DateTime<Utc>) -> Result<Vec<TxnRecord>> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM transactions
                  WHERE decision IS NOT NULL AND (decided_at >= $1 OR finished_at >= $1)
                  ORDER BY decided_at LIMIT 500"
            ))
            .await?;
        client
            .query(&statement, &[&since])
            .await?
            .iter()
            .map(TxnRecord::from_row)
            .collect()
    }

    /// The highest fencing token this log issued for the event's lease purchases (0 when
    /// none): a floor for the next token.
    pub async fn max_fencing_token(&self, event_id: &str) -> Result<i64> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT coalesce(max(fencing_token), 0) AS floor FROM transactions
                  WHERE event_id = $1 AND fencing_token IS NOT NULL",
            )
            .await?;
        Ok(client
            .query_one(&statement, &[&event_id])
            .await?
            .get("floor"))
    }

    /// The log's clock now: what durations against `decided_at` are measured with.
    pub async fn now(&self) -> Result<DateTime<Utc>> {
        Ok(self
            .ownership_pool
            .get()
            .await?
            .query_one("SELECT now() AS now", &[])
            .await?
            .get("now"))
    }

    /// Finished purchases whose admission the room was not told about yet, finished at
    /// least `grace` ago on the log's clock (oldest first).
    pub async fn unreleased_admissions(
        &self,
        limit: i64,
        grace: std::time::Duration,
    ) -> Result<Vec<TxnRecord>> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM transactions
                  WHERE admission_id IS NOT NULL AND admission_released_at IS NULL
                    AND state IN ('COMMITTED', 'ABORTED')
                    AND finished_at <= now() - $2 * interval '1 millisecond'
                  ORDER BY finished_at LIMIT $1"
            ))
            .await?;
        let grace_ms = grace.as_secs_f64() * 1_000.0;
        client
            .query(&statement, &[&limit, &grace_ms])
            .await?
            .iter()
            .map(TxnRecord::from_row)
            .collect()
    }

    /// Other purchases of the event that may still give a seat back to sale: unfinished
    /// ones, and ones aborted (their seats returned) since `txid` began. While there is
    /// any, a participant's "sold out" is not definitive.
    pub async fn others_in_flight(&self, event_id: &str, txid: &str) -> Result<i64> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT count(*) AS others FROM transactions t
                  WHERE t.event_id = $1 AND t.txid <> $2
                    AND (t.state IN {UNFINISHED}
                         OR (t.state = 'ABORTED' AND t.finished_at >=
                             (SELECT started_at FROM transactions WHERE txid = $2)))"
            ))
            .await?;
        Ok(client
            .query_one(&statement, &[&event_id, &txid])
            .await?
            .get("others"))
    }

    async fn records(&self, sql: &str) -> Result<Vec<TxnRecord>> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(sql).await?;
        client
            .query(&statement, &[])
            .await?
            .iter()
            .map(TxnRecord::from_row)
            .collect()
    }
}

/// `columns` with each column qualified by `prefix` (for RETURNING after a join).
fn prefixed(columns: &str, prefix: &str) -> String {
    columns
        .split(',')
        .map(|column| {
            let column = column.trim();
            // `admission_released_at IS NOT NULL AS admission_released`
            format!("{prefix}{column}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}
