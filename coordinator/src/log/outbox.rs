//! The confirmation outbox. A purchase's row is inserted by the statement that logs its
//! COMMIT decision (`Log::decide`); the relay claims rows for a while with `FOR UPDATE
//! SKIP LOCKED` (any coordinator of the log may relay any row: the notifier's Enqueue is
//! idempotent by txid), hands them on and marks them.

use chrono::{DateTime, Utc};

use super::Log;
use crate::error::Result;

/// A purchase's confirmation in the outbox.
pub struct OutboxRow {
    pub created_at: DateTime<Utc>,
    pub relayed_at: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub last_error: Option<String>,
}

impl Log {
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
            .map(|row| (row.get("txid"), row.get("attempts")))
            .collect())
    }

    /// Confirmations not handed to the notifier yet, and the age in seconds of the
    /// oldest of them (0 when there is none).
    pub async fn outbox_lag(&self) -> Result<(i64, f64)> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT count(*) AS unrelayed,
                        coalesce(extract(epoch FROM now() - min(created_at))::float8, 0) AS age
                   FROM outbox WHERE relayed_at IS NULL",
                &[],
            )
            .await?;
        Ok((row.get("unrelayed"), row.get("age")))
    }

    /// The notifier has the confirmations of `txids` (a relay round's, in one commit).
    pub async fn outbox_relayed(&self, txids: &[String]) -> Result<()> {
        self.update(
            "UPDATE outbox SET relayed_at = now(), last_error = NULL WHERE txid = ANY($1)",
            &[&txids],
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
                created_at: row.get("created_at"),
                relayed_at: row.get("relayed_at"),
                attempts: row.get("attempts"),
                last_error: row.get("last_error"),
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
