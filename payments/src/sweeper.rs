//! The expiry sweeper: voids authorizations past their deadline (state EXPIRED, hold
//! released in the ledger) and deletes idempotency keys past their retention.
//! Authorizations held by a prepared 2PC branch are left alone: that branch promised
//! to commit, and the coordinator decides it.

use std::time::Duration;

use deadpool_postgres::Pool;
use tracing::{info, warn};

use crate::ledger::{self, Movement};

pub async fn run(pool: Pool, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match sweep(&pool).await {
            Ok((0, _)) => {}
            Ok((expired, _)) => info!(expired, "voided expired authorizations"),
            // Logged and retried on the next tick; the sweeper never stops.
            Err(error) => warn!(%error, "payment sweep failed"),
        }
    }
}

/// Returns (authorizations expired, idempotency keys deleted).
pub async fn sweep(pool: &Pool) -> anyhow::Result<(u64, u64)> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let expired = tx
        .query(
            "UPDATE payments p SET state = 'EXPIRED', updated_at = now()
              WHERE p.payment_id IN (
                    SELECT payment_id FROM payments
                     WHERE state = 'AUTHORIZED' AND expires_at <= now()
                     LIMIT 1000 FOR UPDATE SKIP LOCKED)
                AND NOT EXISTS (SELECT 1 FROM txn_participants t
                                 WHERE t.payment_id = p.payment_id AND t.state = 'PREPARED')
          RETURNING payment_id, currency, amount_cents",
            &[],
        )
        .await?;
    for row in &expired {
        ledger::record(
            &tx,
            row.get(0),
            row.get(1),
            Movement::Release { amount: row.get(2) },
        )
        .await?;
    }
    let keys = tx
        .execute(
            "DELETE FROM idempotency_keys WHERE expires_at <= now()",
            &[],
        )
        .await?;
    tx.commit().await?;
    Ok((expired.len() as u64, keys))
}
