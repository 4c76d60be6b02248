//! Reading and locking seat rows: the one place that decides lock order and what
//! counts as available, shared by the saga, 2PC and lease paths.

use deadpool_postgres::GenericClient;
use proto::v1::PricedSeat;

use crate::error::{Error, Result};

/// How long a seat-locking transaction waits for a row another transaction holds before
/// it answers "locked by another purchase" (ABORTED) instead of queueing further.
pub const LOCK_TIMEOUT: &str = "2s";

/// A locked seat row.
#[derive(Debug, Clone)]
pub struct LockedSeat {
    pub seat_id: String,
    pub status: String,
    pub hold_expired: bool,
    pub order_id: Option<String>,
    pub price_cents: i64,
    pub fencing_token: i64,
}

impl LockedSeat {
    /// AVAILABLE, or HELD by a hold that has expired and not been swept yet.
    pub fn is_free(&self) -> bool {
        self.status == "AVAILABLE" || (self.status == "HELD" && self.hold_expired)
    }

    pub fn priced(&self) -> PricedSeat {
        PricedSeat {
            seat_id: self.seat_id.clone(),
            price_cents: self.price_cents,
        }
    }
}

/// Whether to wait for rows locked by other transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Wait up to [`LOCK_TIMEOUT`]: for short saga and lease transactions.
    Bounded,
    /// Fail at once: for 2PC, whose prepared rows stay locked until phase two.
    NoWait,
}

/// The event's currency; NOT_FOUND when the event does not exist.
pub async fn event_currency(tx: &impl GenericClient, event_id: &str) -> Result<String> {
    let statement = tx
        .prepare_cached("SELECT currency FROM events WHERE event_id = $1")
        .await?;
    tx.query_opt(&statement, &[&event_id])
        .await?
        .map(|row| row.get(0))
        .ok_or_else(|| Error::EventNotFound(event_id.to_owned()))
}

/// Locks the named seats in seat-id order (so concurrent buyers never deadlock) and
/// returns them; NOT_FOUND naming the seats the event does not have.
pub async fn lock_named(
    tx: &impl GenericClient,
    event_id: &str,
    seat_ids: &[String],
    wait: LockWait,
) -> Result<Vec<LockedSeat>> {
    let sql = match wait {
        LockWait::Bounded => {
            "SELECT seat_id, status, NULL::text, hold_expires_at < now(), order_id, price_cents, fencing_token
               FROM seats WHERE event_id = $1 AND seat_id = ANY($2)
              ORDER BY seat_id FOR UPDATE"
        }
        LockWait::NoWait => {
            "SELECT seat_id, status, NULL::text, hold_expires_at < now(), order_id, price_cents, fencing_token
               FROM seats WHERE event_id = $1 AND seat_id = ANY($2)
              ORDER BY seat_id FOR UPDATE NOWAIT"
        }
    };
    if wait == LockWait::Bounded {
        tx.batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            .await?;
    }
    let statement = tx.prepare_cached(sql).await?;
    let rows = match tx.query(&statement, &[&event_id, &seat_ids]).await {
        Ok(rows) => rows,
        Err(error)
            if error.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) =>
        {
            return Err(Error::SeatsLocked {
                seats: seat_ids.to_vec(),
            });
        }
        Err(error) => return Err(error.into()),
    };
    let seats: Vec<LockedSeat> = rows
        .iter()
        .map(|row| LockedSeat {
            seat_id: row.get(0),
            status: row.get(1),
            hold_expired: row.get::<_, Option<bool>>(3).unwrap_or(false),
            order_id: row.get(4),
            price_cents: row.get(5),
            fencing_token: row.get(6),
        })
        .collect();
    if seats.len() < seat_ids.len() {
        // Tell "no such event" from "no such seats".
        event_currency(tx, event_id).await?;
        let missing = seat_ids
            .iter()
            .filter(|id| !seats.iter().any(|s| &s.seat_id == *id))
            .cloned()
            .collect();
        return Err(Error::SeatsNotFound {
            event_id: event_id.to_owned(),
            seats: missing,
        });
    }
    Ok(seats)
}

/// FAILED_PRECONDITION naming every seat of `seats` that is not free.
pub fn ensure_free(seats: &[LockedSeat]) -> Result<()> {
    let taken: Vec<&LockedSeat> = seats.iter().filter(|s| !s.is_free()).collect();
    if taken.is_empty() {
        return Ok(());
    }
    Err(Error::SeatsTaken {
        seats: taken.iter().map(|s| s.seat_id.clone()).collect(),
        order_id: taken.iter().find_map(|s| s.order_id.clone()),
    })
}

/// Locks the best `quantity` AVAILABLE seats (cheapest first, then section, row,
/// number), skipping rows other buyers have locked so nobody queues behind anybody.
/// SOLD_OUT when fewer than `quantity` seats are not SOLD; a conflict when enough are
/// unsold but held or locked by purchases in flight.
pub async fn lock_best_available(
    tx: &impl GenericClient,
    event_id: &str,
    quantity: u32,
) -> Result<Vec<LockedSeat>> {
    let statement = tx
        .prepare_cached(
            "SELECT seat_id, status, NULL::text, false, order_id, price_cents, fencing_token
               FROM seats WHERE event_id = $1 AND status = 'AVAILABLE'
              ORDER BY price_cents, section, row_no, seat_no
              LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .await?;
    let rows = tx
        .query(&statement, &[&event_id, &i64::from(quantity)])
        .await?;
    if rows.len() < quantity as usize {
        event_currency(tx, event_id).await?;
        // SOLD_OUT only when fewer than `quantity` seats are not SOLD: a seat HELD by a
        // saga, locked by a purchase in flight, or inside a live prepared 2PC branch
        // (it reads AVAILABLE until COMMIT PREPARED) may still come back, so then the
        // answer is a conflict, not sold out.
        let unsold = unsold_seats(tx, event_id).await?;
        if unsold >= i64::from(quantity) {
            return Err(Error::AvailableSeatsLocked);
        }
        return Err(Error::SoldOut {
            requested: quantity,
            unsold: u32::try_from(unsold).unwrap_or(u32::MAX),
        });
    }
    let mut seats: Vec<LockedSeat> = rows
        .iter()
        .map(|row| LockedSeat {
            seat_id: row.get(0),
            status: row.get(1),
            hold_expired: false,
            order_id: row.get(4),
            price_cents: row.get(5),
            fencing_token: row.get(6),
        })
        .collect();
    seats.sort_by(|a, b| a.seat_id.cmp(&b.seat_id));
    Ok(seats)
}

/// Seats of the event that are not SOLD in the committed state.
async fn unsold_seats(tx: &impl GenericClient, event_id: &str) -> Result<i64> {
    let statement = tx
        .prepare_cached("SELECT count(*) FROM seats WHERE event_id = $1 AND status <> 'SOLD'")
        .await?;
    Ok(tx.query_one(&statement, &[&event_id]).await?.get(0))
}

/// The event's seats by definitive state: (capacity, available, held, sold, prepared).
/// Seats inside live prepared 2PC branches read AVAILABLE in the committed state; they
/// are counted apart, as `prepared`.
pub async fn counts(tx: &impl GenericClient, event_id: &str) -> Result<SeatCounts> {
    let statement = tx
        .prepare_cached(
            "SELECT count(*),
                    count(*) FILTER (WHERE status = 'AVAILABLE'),
                    count(*) FILTER (WHERE status = 'HELD'),
                    count(*) FILTER (WHERE status = 'SOLD'),
                    coalesce(max(fencing_token), 0)::bigint,
                    (SELECT coalesce(sum(cardinality(p.seat_ids)), 0)::bigint
                       FROM txn_prepared p
                       JOIN pg_prepared_xacts x
                         ON p.txid = substr(x.gid, 4) AND x.database = current_database()
                      WHERE p.event_id = $1 AND x.gid LIKE 'td-%')
               FROM seats WHERE event_id = $1",
        )
        .await?;
    let row = tx.query_one(&statement, &[&event_id]).await?;
    let capacity: i64 = row.get(0);
    if capacity == 0 {
        event_currency(tx, event_id).await?;
    }
    let prepared: i64 = row.get(5);
    let available: i64 = row.get(1);
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(SeatCounts {
        capacity: count(capacity),
        available: count(available - prepared),
        held: count(row.get(2)),
        sold: count(row.get(3)),
        prepared: count(prepared),
        max_fencing_token: count(row.get(4)),
    })
}

/// The event's seats by definitive state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatCounts {
    pub capacity: u64,
    pub available: u64,
    pub held: u64,
    pub sold: u64,
    pub prepared: u64,
    /// The highest fencing token any seat of the event has seen.
    pub max_fencing_token: u64,
}

pub fn seat_ids(seats: &[LockedSeat]) -> Vec<String> {
    seats.iter().map(|s| s.seat_id.clone()).collect()
}

pub fn total_cents(seats: &[PricedSeat]) -> i64 {
    seats.iter().map(|s| s.price_cents).sum()
}
