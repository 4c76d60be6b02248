//! Lease-protocol writes: one local transaction each, fenced per seat. Every seat keeps
//! the token of the last fenced sale; a sale is refused, changing nothing, when a seat has
//! seen a newer token — or the same token from another purchase (a token is one lease
//! holder's: after a Redis restart that lost the counter's last increments, two holders
//! could carry one value, and only the first to write may use it). So a lease holder that
//! was paused past its lease cannot sell a seat that a newer holder has since touched.
//!
//! An undo is fenced by ownership, not by token: it returns to sale only the seats sold
//! to its own purchase (order and txid), touches no other seat, and is never refused for
//! a token — what it did not write is not its to undo, and it says which seats it
//! returned. It also leaves a barrier for its purchase, in the same transaction: a sale
//! of that purchase arriving later (a paused coordinator's call, in flight when another
//! took the purchase over and undid it) is refused as TXN_ABORTED. Fencing alone cannot
//! refuse it: its token may be the newest any seat has seen.

use deadpool_postgres::Pool;
use proto::v1::{PricedSeat, SellFencedResponse, UnsellFencedResponse};

use crate::barrier::{self, Step};
use crate::error::{Error, Result};
use crate::model::FencedWrite;
use crate::seats::{self, LockWait, LockedSeat};

pub async fn sell(pool: &Pool, write: &FencedWrite) -> Result<SellFencedResponse> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let currency = seats::event_currency(&tx, &write.event_id).await?;
    let locked =
        seats::lock_named(&tx, &write.event_id, &write.seat_ids, LockWait::Bounded).await?;
    let priced: Vec<PricedSeat> = locked.iter().map(LockedSeat::priced).collect();
    let response = SellFencedResponse {
        total_cents: seats::total_cents(&priced),
        seats: priced,
        currency,
    };
    let ours = |s: &LockedSeat| {
        s.status == "SOLD" && s.order_id.as_deref() == Some(write.order_id.as_str())
    };
    // A retry of this very sale: already done.
    if locked.iter().all(ours) {
        return Ok(response);
    }
    // Its purchase was undone before this sale arrived. The seats' locks order the two:
    // an undo that committed first is seen here.
    if barrier::compensated(&tx, &write.txid, Step::SellFenced).await? {
        return Err(Error::TxnAborted(write.txid.clone()));
    }
    ensure_fresh_token(&locked, write.fencing_token)?;
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

/// Returns to sale the named seats sold to this purchase (its order and txid), and only
/// those; answers which.
pub async fn unsell(pool: &Pool, write: &FencedWrite) -> Result<UnsellFencedResponse> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    seats::lock_named(&tx, &write.event_id, &write.seat_ids, LockWait::Bounded).await?;
    barrier::mark_undone(&tx, &write.txid, Step::SellFenced).await?;
    let statement = tx
        .prepare_cached(
            "UPDATE seats
                SET status = 'AVAILABLE', holder = NULL, order_id = NULL,
                    version = version + 1
              WHERE event_id = $1 AND seat_id = ANY($2) AND status = 'SOLD'
                AND order_id = $3 AND holder = $4
          RETURNING seat_id",
        )
        .await?;
    let rows = tx
        .query(
            &statement,
            &[
                &write.event_id,
                &write.seat_ids,
                &write.order_id,
                &write.txid,
            ],
        )
        .await?;
    tx.commit().await?;
    let mut returned: Vec<String> = rows.iter().map(|row| row.get("seat_id")).collect();
    returned.sort();
    Ok(UnsellFencedResponse { seat_ids: returned })
}

/// Refuses the sale when any seat has seen a newer token than `token`, or this very
/// token from another purchase (only a retry of one sale may repeat a token, and a retry
/// of a sale that is done never gets here). Token 0 is an unfenced write (the lab's
/// negative control) and is never refused.
fn ensure_fresh_token(seats: &[LockedSeat], token: u64) -> Result<()> {
    if token == 0 {
        return Ok(());
    }
    let seen = |s: &LockedSeat| u64::try_from(s.fencing_token).unwrap_or(0);
    let used: Vec<&LockedSeat> = seats.iter().filter(|s| seen(s) >= token).collect();
    match used.iter().map(|s| seen(s)).max() {
        None => Ok(()),
        Some(seen) => Err(Error::StaleFencingToken {
            seats: used.iter().map(|s| s.seat_id.clone()).collect(),
            token,
            seen,
        }),
    }
}

fn fencing_token_param(token: u64) -> i64 {
    i64::try_from(token).expect("validated to fit in i64")
}
