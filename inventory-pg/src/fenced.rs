//! Lease-protocol writes: one local transaction each, fenced per seat. Every seat keeps
//! the highest fencing token a write has carried; a write with a lower token is refused
//! and changes nothing, so a lease holder that was paused past its lease cannot sell a
//! seat that a newer holder has since touched.

use deadpool_postgres::Pool;
use proto::v1::{PricedSeat, SellFencedResponse, UnsellFencedResponse};

use crate::error::{Error, Result};
use crate::model::FencedWrite;
use crate::seats::{self, LockWait, LockedSeat};

pub async fn sell(pool: &Pool, write: &FencedWrite) -> Result<SellFencedResponse> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let currency = seats::event_currency(&tx, &write.event_id).await?;
    let locked =
        seats::lock_named(&tx, &write.event_id, &write.seat_ids, LockWait::Bounded).await?;
    ensure_fresh_token(&locked, write.fencing_token)?;
    let priced: Vec<PricedSeat> = locked.iter().map(LockedSeat::priced).collect();
    let response = SellFencedResponse {
        total_cents: seats::total_cents(&priced),
        seats: priced,
        currency,
    };
    // A retry of this very sale: already done.
    if locked
        .iter()
        .all(|s| s.status == "SOLD" && s.order_id.as_deref() == Some(write.order_id.as_str()))
    {
        return Ok(response);
    }
    // An unfenced write (token 0, the lab's negative control) trusts the lease alone, as
    // a store that relies on the lock would: it sells whatever the seats' state. A paused
    // lease holder's late write then overwrites a newer holder's sale — the double sale
    // fencing exists to prevent. A fenced write checks the seats too.
    if write.fencing_token > 0 {
        seats::ensure_free(&locked)?;
    }
    let token = fencing_token_param(write.fencing_token);
    let statement = tx
        .prepare_cached(
            "UPDATE seats
                SET status = 'SOLD', order_id = $3, holder = $4, hold_expires_at = NULL,
                    fencing_token = greatest(fencing_token, $5), version = version + 1
              WHERE event_id = $1 AND seat_id = ANY($2)",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &write.event_id,
            &write.seat_ids,
            &write.order_id,
            &write.txid,
            &token,
        ],
    )
    .await?;
    server_kit::crash_point!("inventory::sell");
    tx.commit().await?;
    // The sale is committed; its answer may still be lost (crash tests: `sleep(ms)`).
    fail::fail_point!("inventory::after_sell");
    Ok(response)
}

pub async fn unsell(pool: &Pool, write: &FencedWrite) -> Result<UnsellFencedResponse> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let locked =
        seats::lock_named(&tx, &write.event_id, &write.seat_ids, LockWait::Bounded).await?;
    ensure_fresh_token(&locked, write.fencing_token)?;
    let token = fencing_token_param(write.fencing_token);
    // Only seats sold to this order go back; the token is recorded on every seat named.
    let statement = tx
        .prepare_cached(
            "UPDATE seats
                SET status = CASE WHEN status = 'SOLD' AND order_id = $3 THEN 'AVAILABLE' ELSE status END,
                    holder = CASE WHEN status = 'SOLD' AND order_id = $3 THEN NULL ELSE holder END,
                    order_id = CASE WHEN status = 'SOLD' AND order_id = $3 THEN NULL ELSE order_id END,
                    fencing_token = greatest(fencing_token, $4), version = version + 1
              WHERE event_id = $1 AND seat_id = ANY($2)
          RETURNING seat_id, status",
        )
        .await?;
    let rows = tx
        .query(
            &statement,
            &[&write.event_id, &write.seat_ids, &write.order_id, &token],
        )
        .await?;
    tx.commit().await?;
    let returned = locked
        .iter()
        .filter(|s| s.status == "SOLD" && s.order_id.as_deref() == Some(write.order_id.as_str()))
        .map(|s| s.seat_id.clone())
        .filter(|id| rows.iter().any(|row| row.get::<_, &str>(0) == id))
        .collect();
    Ok(UnsellFencedResponse { seat_ids: returned })
}

/// Refuses the write when any seat has seen a newer token than `token`. Token 0 is an
/// unfenced write (the lab's negative control) and is never refused.
fn ensure_fresh_token(seats: &[LockedSeat], token: u64) -> Result<()> {
    if token == 0 {
        return Ok(());
    }
    let newer: Vec<&LockedSeat> = seats
        .iter()
        .filter(|s| u64::try_from(s.fencing_token).unwrap_or(0) > token)
        .collect();
    match newer.iter().map(|s| s.fencing_token).max() {
        None => Ok(()),
        Some(seen) => Err(Error::StaleFencingToken {
            seats: newer.iter().map(|s| s.seat_id.clone()).collect(),
            token,
            seen: u64::try_from(seen).unwrap_or(0),
        }),
    }
}

fn fencing_token_param(token: u64) -> i64 {
    i64::try_from(token).expect("validated to fit in i64")
}
