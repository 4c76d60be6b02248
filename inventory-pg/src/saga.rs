//! Saga steps and their compensations: HoldSeats ↔ ReleaseSeats and ConfirmSeats ↔
//! UnsellSeats. Each runs in one transaction together with its barrier row, so the
//! effect and the barrier commit or vanish together.
//!
//! HELD is a semantic lock with an expiry: ConfirmSeats succeeds only for seats still
//! HELD by this saga with an unexpired hold, and the sweeper's release is conditional
//! the other way round, so the two can never both win.

use deadpool_postgres::Pool;
use prost::Message;
use proto::v1::{
    BarrierOutcome, ConfirmSeatsResponse, HoldSeatsResponse, ReleaseSeatsResponse,
    UnsellSeatsResponse,
};
use server_kit::convert;

use crate::barrier::{self, Entry, Step};
use crate::error::{Error, Result};
use crate::model::{Hold, SeatSelection};
use crate::seats::{self, LockWait};

pub async fn hold_seats(pool: &Pool, hold: &Hold) -> Result<HoldSeatsResponse> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    match barrier::enter_action(&tx, &hold.saga_id, Step::HoldSeats).await? {
        Entry::Fresh => {}
        Entry::Duplicate(answer) => return replay::<HoldSeatsResponse>(&answer),
        Entry::NullCompensation => unreachable!("only compensations are null"),
    }
    let currency = seats::event_currency(&tx, &hold.event_id).await?;
    let locked = match &hold.selection {
        SeatSelection::Named(ids) => {
            let locked = seats::lock_named(&tx, &hold.event_id, ids, LockWait::Bounded).await?;
            seats::ensure_free(&locked)?;
            locked
        }
        SeatSelection::BestAvailable(n) => {
            seats::lock_best_available(&tx, &hold.event_id, *n).await?
        }
    };
    let ttl_ms = i64::try_from(hold.ttl.as_millis()).expect("ttl is at most an hour");
    let statement = tx
        .prepare_cached(
            "UPDATE seats
                SET status = 'HELD', holder = $3, order_id = NULL,
                    hold_expires_at = now() + $4::bigint * interval '1 millisecond',
                    version = version + 1
              WHERE event_id = $1 AND seat_id = ANY($2)
          RETURNING hold_expires_at",
        )
        .await?;
    let rows = tx
        .query(
            &statement,
            &[
                &hold.event_id,
                &seats::seat_ids(&locked),
                &hold.saga_id,
                &ttl_ms,
            ],
        )
        .await?;
    let expires_at: chrono::DateTime<chrono::Utc> = rows
        .first()
        .map(|row| row.get(0))
        .expect("at least one seat was updated");
    let priced: Vec<_> = locked.iter().map(seats::LockedSeat::priced).collect();
    let response = HoldSeatsResponse {
        total_cents: seats::total_cents(&priced),
        seats: priced,
        currency,
        hold_expires_at: Some(convert::timestamp(expires_at)),
        barrier: BarrierOutcome::Applied.into(),
    };
    barrier::record(
        &tx,
        &hold.saga_id,
        Step::HoldSeats,
        "action",
        &response.encode_to_vec(),
    )
    .await?;
    server_kit::crash_point!("inventory::hold");
    tx.commit().await?;
    Ok(response)
}

pub async fn release_seats(
    pool: &Pool,
    saga_id: &str,
    event_id: &str,
) -> Result<ReleaseSeatsResponse> {
    let (seat_ids, barrier) = compensate(
        pool,
        saga_id,
        event_id,
        Step::HoldSeats,
        "UPDATE seats
            SET status = 'AVAILABLE', holder = NULL, hold_expires_at = NULL,
                version = version + 1
          WHERE event_id = $1 AND holder = $2 AND status = 'HELD'
      RETURNING seat_id",
    )
    .await?;
    Ok(ReleaseSeatsResponse {
        seat_ids,
        barrier: barrier.into(),
    })
}

pub async fn confirm_seats(
    pool: &Pool,
    saga_id: &str,
    event_id: &str,
    order_id: &str,
) -> Result<ConfirmSeatsResponse> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    match barrier::enter_action(&tx, saga_id, Step::ConfirmSeats).await? {
        Entry::Fresh => {}
        Entry::Duplicate(answer) => return replay::<ConfirmSeatsResponse>(&answer),
        Entry::NullCompensation => unreachable!("only compensations are null"),
    }
    // The seats this saga's HoldSeats took; no hold means nothing can be confirmed.
    let held: Vec<String> = match barrier::answer_of(&tx, saga_id, Step::HoldSeats).await? {
        Some(answer) => HoldSeatsResponse::decode(answer.as_slice())
            .map_err(|_| Error::HoldLost { seats: Vec::new() })?
            .seats
            .into_iter()
            .map(|s| s.seat_id)
            .collect(),
        None => return Err(Error::HoldLost { seats: Vec::new() }),
    };
    let statement = tx
        .prepare_cached(
            "UPDATE seats
                SET status = 'SOLD', order_id = $4, hold_expires_at = NULL, version = version + 1
              WHERE event_id = $1 AND seat_id = ANY($2) AND holder = $3
                AND status = 'HELD' AND hold_expires_at > now()
          RETURNING seat_id",
        )
        .await?;
    let confirmed = sorted_ids(
        tx.query(&statement, &[&event_id, &held, &saga_id, &order_id])
            .await?,
    );
    if confirmed.len() != held.len() {
        // Dropping the transaction rolls back the partial confirmation and the barrier.
        let lost = held
            .into_iter()
            .filter(|s| !confirmed.contains(s))
            .collect();
        return Err(Error::HoldLost { seats: lost });
    }
    let response = ConfirmSeatsResponse {
        seat_ids: confirmed,
        barrier: BarrierOutcome::Applied.into(),
    };
    barrier::record(
        &tx,
        saga_id,
        Step::ConfirmSeats,
        "action",
        &response.encode_to_vec(),
    )
    .await?;
    tx.commit().await?;
    Ok(response)
}

pub async fn unsell_seats(
    pool: &Pool,
    saga_id: &str,
    event_id: &str,
) -> Result<UnsellSeatsResponse> {
    let (seat_ids, barrier) = compensate(
        pool,
        saga_id,
        event_id,
        Step::ConfirmSeats,
        "UPDATE seats
            SET status = 'AVAILABLE', holder = NULL, order_id = NULL,
                hold_expires_at = NULL, version = version + 1
          WHERE event_id = $1 AND holder = $2 AND status = 'SOLD'
      RETURNING seat_id",
    )
    .await?;
    Ok(UnsellSeatsResponse {
        seat_ids,
        barrier: barrier.into(),
    })
}

/// Runs the compensation of `step` behind the barrier: `undo` (parameters: event id,
/// saga id) returns the seats it gave back. Returns them with how the barrier applied
/// the compensation.
async fn compensate(
    pool: &Pool,
    saga_id: &str,
    event_id: &str,
    step: Step,
    undo: &str,
) -> Result<(Vec<String>, BarrierOutcome)> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let (seat_ids, outcome) = match barrier::enter_compensation(&tx, saga_id, step).await? {
        Entry::Duplicate(answer) => {
            // Both compensations answer {seat_ids, barrier}: one wire format.
            let stored = ReleaseSeatsResponse::decode(answer.as_slice()).unwrap_or_default();
            return Ok((stored.seat_ids, BarrierOutcome::Duplicate));
        }
        Entry::NullCompensation => (Vec::new(), BarrierOutcome::NullCompensation),
        Entry::Fresh => {
            let statement = tx.prepare_cached(undo).await?;
            let rows = tx.query(&statement, &[&event_id, &saga_id]).await?;
            (sorted_ids(rows), BarrierOutcome::Applied)
        }
    };
    let answer = ReleaseSeatsResponse {
        seat_ids: seat_ids.clone(),
        barrier: outcome.into(),
    };
    barrier::record(&tx, saga_id, step, "compensation", &answer.encode_to_vec()).await?;
    tx.commit().await?;
    Ok((seat_ids, outcome))
}

/// Decodes a stored answer and marks it as a replay.
fn replay<T: WithBarrier + Message>(answer: &[u8]) -> Result<T> {
    let mut response = T::decode(answer).unwrap_or_default();
    response.set_barrier(BarrierOutcome::Duplicate);
    Ok(response)
}

fn sorted_ids(rows: Vec<tokio_postgres::Row>) -> Vec<String> {
    let mut ids: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    ids.sort();
    ids
}

/// Saga responses carry how the barrier applied them.
trait WithBarrier: Default {
    fn set_barrier(&mut self, outcome: BarrierOutcome);
}

macro_rules! with_barrier {
    ($($response:ty),*) => {$(
        impl WithBarrier for $response {
            fn set_barrier(&mut self, outcome: BarrierOutcome) {
                self.barrier = outcome.into();
            }
        }
    )*};
}

with_barrier!(HoldSeatsResponse, ConfirmSeatsResponse);
