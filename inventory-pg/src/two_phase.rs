//! Two-phase commit with real PostgreSQL prepared transactions.
//!
//! Prepare locks the seats (NOWAIT: a prepared branch holds its rows until phase two,
//! so queueing behind it would hang a buyer), marks them SOLD to the order, inserts the
//! txid's participant row as COMMITTED, and ends with `PREPARE TRANSACTION 'td-<txid>'`.
//! Nothing of it is visible until `COMMIT PREPARED`; `ROLLBACK PREPARED` makes it vanish,
//! participant row included. An Abort that finds nothing prepared writes an ABORTED
//! tombstone, whose primary key makes a late Prepare fail.

use deadpool_postgres::{GenericClient, Pool};
use proto::v1::{
    AbortSaleResponse, CommitSaleResponse, InDoubtTransaction, ParticipantTxnState,
    PrepareSaleResponse, PricedSeat,
};
use server_kit::convert;
use tokio_postgres::error::SqlState;
use tracing::info;

use crate::error::{Error, Result};
use crate::model::{Prepare, SeatSelection};
use crate::seats::{self, LockWait};

/// The prepared transaction's global id.
pub fn gid(txid: &str) -> String {
    format!("td-{txid}")
}

/// How many times Abort retries when a Prepare of the same txid is in flight.
const ABORT_ATTEMPTS: u32 = 5;

pub async fn prepare(pool: &Pool, request: &Prepare) -> Result<PrepareSaleResponse> {
    let mut client = pool.get().await?;
    if let Some(answer) = earlier_answer(&client, &request.txid).await? {
        return Ok(answer);
    }
    // A transaction guard, not a bare BEGIN: when the caller gives up and this future is
    // dropped mid-way, the guard rolls back, so the pooled connection never goes back
    // to the pool inside an open (or aborted) transaction.
    let tx = client.transaction().await?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{}'",
        seats::LOCK_TIMEOUT
    ))
    .await?;
    let prepared = match sell_in_open_transaction(&tx, request).await {
        Ok(prepared) => prepared,
        Err(error) => {
            tx.rollback().await?;
            return match error {
                // The participant row exists: a tombstone, or a duplicate Prepare won.
                Error::Database(ref db) if db.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    earlier_answer(&client, &request.txid)
                        .await?
                        .ok_or_else(|| Error::TxnBusy(request.txid.clone()))
                }
                Error::SeatsLocked { .. } => match earlier_answer(&client, &request.txid).await? {
                    Some(answer) => Ok(answer),
                    None => Err(error),
                },
                other => Err(other),
            };
        }
    };
    server_kit::crash_point!("inventory::prepare");
    let gid = gid(&request.txid);
    // PREPARE TRANSACTION ends the session's transaction (or, failing, rolls it back):
    // the guard's ROLLBACK on drop then finds none, a no-op.
    tx.batch_execute(&format!("PREPARE TRANSACTION '{gid}'"))
        .await?;
    drop(tx);
    // Outside the prepared transaction: what it holds, for replays and ListInDoubt.
    let ids: Vec<String> = prepared.seats.iter().map(|s| s.seat_id.clone()).collect();
    let prices: Vec<i64> = prepared.seats.iter().map(|s| s.price_cents).collect();
    let statement = client
        .prepare_cached(
            "INSERT INTO txn_prepared (txid, event_id, order_id, seat_ids, prices, currency,
                                       log_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (txid) DO NOTHING",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &request.txid,
                &request.event_id,
                &request.order_id,
                &ids,
                &prices,
                &prepared.currency,
                &request.log_id,
            ],
        )
        .await?;
    info!(txid = %request.txid, seats = ?ids, "prepared");
    Ok(prepared)
}

/// Locks and sells the seats inside the caller's open transaction.
async fn sell_in_open_transaction(
    client: &impl GenericClient,
    request: &Prepare,
) -> Result<PrepareSaleResponse> {
    let currency = seats::event_currency(client, &request.event_id).await?;
    let locked = match &request.selection {
        SeatSelection::Named(ids) => {
            let locked =
                seats::lock_named(client, &request.event_id, ids, LockWait::NoWait).await?;
            seats::ensure_free(&locked)?;
            locked
        }
        SeatSelection::BestAvailable(n) => {
            seats::lock_best_available(client, &request.event_id, *n).await?
        }
    };
    let ids = seats::seat_ids(&locked);
    let statement = client
        .prepare_cached(
            "UPDATE seats
                SET status = 'SOLD', order_id = $3, holder = $4, hold_expires_at = NULL,
                    version = version + 1
              WHERE event_id = $1 AND seat_id = ANY($2)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[&request.event_id, &ids, &request.order_id, &request.txid],
        )
        .await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO txn_participants (txid, state, event_id, order_id, seat_ids, log_id)
             VALUES ($1, 'COMMITTED', $2, $3, $4, $5)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &request.txid,
                &request.event_id,
                &request.order_id,
                &ids,
                &request.log_id,
            ],
        )
        .await?;
    let priced: Vec<PricedSeat> = locked.iter().map(seats::LockedSeat::priced).collect();
    Ok(PrepareSaleResponse {
        total_cents: seats::total_cents(&priced),
        seats: priced,
        currency,
    })
}

/// The answer an earlier Prepare of `txid` earned: its seats when it is prepared or
/// committed, TXN_ABORTED when it was aborted, nothing when it never ran.
async fn earlier_answer(
    client: &impl GenericClient,
    txid: &str,
) -> Result<Option<PrepareSaleResponse>> {
    let statement = client
        .prepare_cached(
            "SELECT (SELECT state FROM txn_participants WHERE txid = $1),
                    EXISTS (SELECT 1 FROM pg_prepared_xacts
                             WHERE gid = $2 AND database = current_database()),
                    p.seat_ids, p.prices, p.currency
               FROM (SELECT 1) one
               LEFT JOIN txn_prepared p ON p.txid = $1",
        )
        .await?;
    let row = client.query_one(&statement, &[&txid, &gid(txid)]).await?;
    let state: Option<String> = row.get(0);
    let prepared: bool = row.get(1);
    if state.as_deref() == Some("ABORTED") {
        return Err(Error::TxnAborted(txid.to_owned()));
    }
    if !prepared && state.is_none() {
        return Ok(None);
    }
    let Some(seat_ids) = row.get::<_, Option<Vec<String>>>(2) else {
        // Prepared, but its record is not written yet: the first Prepare is finishing.
        return Err(Error::TxnBusy(txid.to_owned()));
    };
    let prices: Vec<i64> = row.get(3);
    let seats: Vec<PricedSeat> = seat_ids
        .into_iter()
        .zip(prices)
        .map(|(seat_id, price_cents)| PricedSeat {
            seat_id,
            price_cents,
        })
        .collect();
    Ok(Some(PrepareSaleResponse {
        total_cents: seats::total_cents(&seats),
        seats,
        currency: row.get(4),
    }))
}

/// Refuses to finish a branch of another coordinator log: `caller` (None: a caller that
/// predates log ids) must be the log the branch or its tombstone names, if it names one.
async fn ensure_own_branch(
    client: &impl GenericClient,
    txid: &str,
    caller: Option<&str>,
) -> Result<()> {
    let Some(caller) = caller else {
        return Ok(());
    };
    let statement = client
        .prepare_cached(
            "SELECT coalesce((SELECT log_id FROM txn_prepared WHERE txid = $1),
                             (SELECT log_id FROM txn_participants WHERE txid = $1)) AS log_id",
        )
        .await?;
    match client
        .query_one(&statement, &[&txid])
        .await?
        .get::<_, Option<String>>("log_id")
    {
        Some(owner) if owner != caller => Err(Error::BranchOfAnotherLog {
            txid: txid.to_owned(),
            log_id: owner,
        }),
        _ => Ok(()),
    }
}

pub async fn commit(pool: &Pool, txid: &str, log_id: Option<&str>) -> Result<CommitSaleResponse> {
    let client = pool.get().await?;
    ensure_own_branch(&client, txid, log_id).await?;
    match client
        .batch_execute(&format!("COMMIT PREPARED '{}'", gid(txid)))
        .await
    {
        Ok(()) => {
            info!(txid, "committed");
            Ok(CommitSaleResponse {
                state: ParticipantTxnState::Committed.into(),
                already_done: false,
            })
        }
        Err(error) if error.code() == Some(&SqlState::UNDEFINED_OBJECT) => {
            match participant_state(&client, txid).await?.as_deref() {
                Some("COMMITTED") => Ok(CommitSaleResponse {
                    state: ParticipantTxnState::Committed.into(),
                    already_done: true,
                }),
                Some(_) => Err(Error::TxnAborted(txid.to_owned())),
                None => Err(Error::TxnNotFound(txid.to_owned())),
            }
        }
        // Another session is finishing this branch right now: a conflict, retried.
        Err(error) if error.code() == Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) => {
            Err(Error::TxnBusy(txid.to_owned()))
        }
        Err(error) => Err(error.into()),
    }
}

pub async fn abort(pool: &Pool, txid: &str, log_id: Option<&str>) -> Result<AbortSaleResponse> {
    let client = pool.get().await?;
    ensure_own_branch(&client, txid, log_id).await?;
    for attempt in 1..=ABORT_ATTEMPTS {
        match client
            .batch_execute(&format!("ROLLBACK PREPARED '{}'", gid(txid)))
            .await
        {
            Ok(()) => {
                write_tombstone(&client, txid, log_id).await?;
                info!(txid, "aborted");
                return Ok(AbortSaleResponse {
                    state: ParticipantTxnState::Aborted.into(),
                    already_done: false,
                    tombstone: false,
                });
            }
            Err(error) if error.code() == Some(&SqlState::UNDEFINED_OBJECT) => {}
            // Another session is finishing this branch right now (recovery and a live
            // abort of the same txid): the next attempt finds how it ended.
            Err(error) if error.code() == Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) => {
                tracing::warn!(
                    txid,
                    attempt,
                    "the prepared branch is busy in another session; retrying"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt))).await;
                continue;
            }
            Err(error) => return Err(error.into()),
        }
        match participant_state(&client, txid).await?.as_deref() {
            Some("ABORTED") => {
                return Ok(AbortSaleResponse {
                    state: ParticipantTxnState::Aborted.into(),
                    already_done: true,
                    tombstone: false,
                });
            }
            Some(_) => return Err(Error::TxnCommitted(txid.to_owned())),
            None => {}
        }
        // Nothing prepared, nothing decided: leave a tombstone. If a Prepare of the same
        // txid is in flight, the insert waits for it; on timeout, go round again and
        // roll that branch back.
        match write_tombstone(&client, txid, log_id).await {
            Ok(true) => {
                info!(txid, "aborted before prepare; tombstone written");
                return Ok(AbortSaleResponse {
                    state: ParticipantTxnState::Aborted.into(),
                    already_done: false,
                    tombstone: true,
                });
            }
            Ok(false) => {}
            Err(error) if error.sql_state() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {}
            Err(error) => return Err(error),
        }
        tracing::warn!(
            txid,
            attempt,
            "abort raced a prepare of the same txid; retrying"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt))).await;
    }
    Err(Error::TxnBusy(txid.to_owned()))
}

/// Inserts the ABORTED row (naming the aborting log) unless the txid already has one;
/// true when it wrote it.
async fn write_tombstone(
    client: &impl GenericClient,
    txid: &str,
    log_id: Option<&str>,
) -> Result<bool> {
    client
        .batch_execute(&format!("SET lock_timeout = '{}'", seats::LOCK_TIMEOUT))
        .await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO txn_participants (txid, state, log_id) VALUES ($1, 'ABORTED', $2)
             ON CONFLICT (txid) DO NOTHING",
        )
        .await?;
    let written = client.execute(&statement, &[&txid, &log_id]).await;
    client.batch_execute("RESET lock_timeout").await?;
    Ok(written? == 1)
}

async fn participant_state(client: &impl GenericClient, txid: &str) -> Result<Option<String>> {
    let statement = client
        .prepare_cached("SELECT state FROM txn_participants WHERE txid = $1")
        .await?;
    Ok(client
        .query_opt(&statement, &[&txid])
        .await?
        .map(|row| row.get(0)))
}

/// The prepared branches of `log_id` (and those that name no log: prepared, and their
/// record not written yet), or every one when None, oldest first; and how many branches
/// of other logs were left out.
pub async fn list_in_doubt(
    pool: &Pool,
    log_id: Option<&str>,
) -> Result<(Vec<InDoubtTransaction>, u32)> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT substr(x.gid, 4) AS txid, x.prepared,
                    coalesce(p.event_id || ' ' || p.order_id || ' '
                             || array_to_string(p.seat_ids, ','), '') AS detail,
                    coalesce(p.log_id, '') AS log_id
               FROM pg_prepared_xacts x
               LEFT JOIN txn_prepared p ON p.txid = substr(x.gid, 4)
              WHERE x.database = current_database() AND x.gid LIKE 'td-%'
                AND ($1::text IS NULL OR p.log_id IS NULL OR p.log_id = $1)
              ORDER BY x.prepared",
        )
        .await?;
    let listed = client
        .query(&statement, &[&log_id])
        .await?
        .iter()
        .map(|row| InDoubtTransaction {
            txid: row.get("txid"),
            prepared_at: Some(convert::timestamp(row.get("prepared"))),
            detail: row.get("detail"),
            log_id: row.get("log_id"),
        })
        .collect();
    let others: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_prepared_xacts x
               JOIN txn_prepared p ON p.txid = substr(x.gid, 4)
              WHERE x.database = current_database() AND x.gid LIKE 'td-%'
                AND p.log_id IS NOT NULL AND p.log_id <> $1",
            &[&log_id.unwrap_or_default()],
        )
        .await?
        .get(0);
    Ok((
        listed,
        if log_id.is_some() {
            u32::try_from(others).unwrap_or(u32::MAX)
        } else {
            0
        },
    ))
}
