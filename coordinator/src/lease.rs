//! Lease locks: Redis gives cross-database isolation, each database write is local.
//!
//! 1. Acquire `lock:seat:{event}:{seat}` for every seat, in sorted order, with
//!    `SET NX PX` and the txid as the unique value; take a fencing token from the
//!    event's Redis counter; log the intent (token and seats) durably.
//! 2. Renew the leases while working; write inventory (SellFenced), payments
//!    (authorize + capture) and orders (PlaceOrderFenced), every seat write carrying the
//!    fencing token. A participant refuses a token older than one it has seen.
//! 3. Log COMMIT, release the leases with a compare-and-delete script.
//!
//! A holder paused past its lease (SIGSTOP) may wake up and write: the fencing token is
//! what refuses it. `--unsafe-no-fencing` sends no token (0): the lab's negative control.

use std::time::{Duration, Instant};

use proto::v1::*;
use redis::Script;

use crate::driver::{CallError, Run, Step};
use crate::error::{Error, Result};
use crate::log::{Decision, TxnRecord};
use crate::rpc;
use crate::{money, outcome};

/// Takes leases in KEYS order until ARGV[3] are held (ARGV[4] = 1: every key or none),
/// value ARGV[1], ttl ARGV[2] ms. Returns per key 1 taken, -1 held by another, 0 not
/// tried; when too few were taken, it gives back the ones it took.
const ACQUIRE: &str = "local taken, result, want = 0, {}, tonumber(ARGV[3]) \
    for i, key in ipairs(KEYS) do \
      if taken == want then result[i] = 0 \
      elseif redis.call('set', key, ARGV[1], 'NX', 'PX', ARGV[2]) then \
        taken = taken + 1; result[i] = 1 \
      else result[i] = -1; if ARGV[4] == '1' then break end end \
    end \
    for i = #result + 1, #KEYS do result[i] = 0 end \
    if taken < want then \
      for i, key in ipairs(KEYS) do \
        if result[i] == 1 then redis.call('del', key); result[i] = 0 end \
      end \
    end \
    return result";
static ACQUIRE_SCRIPT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(ACQUIRE));
/// Most candidate seats a best-available purchase skips because other purchases hold
/// their leases.
const MAX_SKIPPED: usize = 256;
/// Deletes the lease only while it is still ours.
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
                       return redis.call('del', KEYS[1]) else return 0 end";
/// Extends the lease only while it is still ours.
const RENEW: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
                     return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";

fn lock_key(event_id: &str, seat_id: &str) -> String {
    format!("lock:seat:{{{event_id}}}:{seat_id}")
}

fn fencing_key(event_id: &str) -> String {
    format!("fencing:{{{event_id}}}")
}

pub async fn run(run: &Run, txn: &TxnRecord) -> Result<PurchaseResponse> {
    let purchase = &txn.purchase;
    let txid = &run.txid;
    let started = Instant::now();
    let seats = match acquire(run, txn).await {
        Ok(seats) => seats,
        Err(cause) => return Err(outcome::aborted(run, cause, Ok(())).await),
    };
    // A holder stopped right after taking its leases (crash tests: `sleep(ms)`).
    fail::fail_point!("lease::after_leases");
    let token = if run.driver.unsafe_no_fencing {
        // Without fencing the lease is all there is: the seats are checked once, under
        // the lease, and the writes that follow trust it (a store written by a lock
        // holder does no check of its own). A holder paused past its lease writes on a
        // check that is no longer true — the double sale the negative control shows.
        if let Err(cause) = ensure_unsold_under_lease(run, &purchase.event_id, &seats).await {
            release(run, &purchase.event_id, &seats).await;
            return Err(outcome::aborted(run, cause, Ok(())).await);
        }
        0
    } else {
        let mut redis = run.driver.redis.clone();
        let began = chrono::Utc::now();
        let token: i64 = redis::cmd("INCR")
            .arg(fencing_key(&purchase.event_id))
            .query_async(&mut redis)
            .await?;
        run.record(
            Step::forward(Participant::Locks, "fencing_token"),
            1,
            began,
            StepOutcome::Ok,
            None,
        )
        .await;
        token
    };
    run.driver.log.set_intent(&run.owned, token, &seats).await?;
    run.phase("acquire_leases", started);
    server_kit::crash_point!("lease::after_acquire");

    let renewal = tokio::spawn(renew(
        run.driver.clone(),
        txid.clone(),
        purchase.event_id.clone(),
        seats.clone(),
        run.driver.lease_ttl,
    ));
    let result = write(run, txn, &seats, token as u64).await;
    renewal.abort();
    release(run, &purchase.event_id, &seats).await;
    result
}

/// The writes under the leases, undone on failure.
async fn write(
    run: &Run,
    txn: &TxnRecord,
    seats: &[String],
    token: u64,
) -> Result<PurchaseResponse> {
    let p = &run.driver.participants;
    let forward = run.driver.policies.forward;
    let purchase = &txn.purchase;
    let txid = &run.txid;

    let started = Instant::now();
    let sell = SellFencedRequest {
        txid: txid.clone(),
        event_id: purchase.event_id.clone(),
        order_id: txn.order_id.clone(),
        seat_ids: seats.to_vec(),
        fencing_token: token,
    };
    let sold = match run
        .call(
            Step::forward(Participant::Inventory, "sell_fenced"),
            forward,
            || rpc!(p.inventory, sell_fenced, sell.clone()),
        )
        .await
    {
        Ok(sold) => sold,
        Err(error) => {
            let undone = match &error {
                CallError::Refused(_) | CallError::NotOwner(_) => Ok(()),
                // It may have sold: undo it (a no-op when it did not).
                CallError::Unknown(_) => undo(run, txn, seats, token, Written::Seats).await,
            };
            return Err(abort(run, outcome::refusal("inventory", &error), undone).await);
        }
    };
    run.phase("sell_seats", started);
    run.driver
        .log
        .set_seats(&run.owned, &sold.seats, &sold.currency)
        .await?;

    let started = Instant::now();
    let payment = match money::authorize(run, txn, sold.total_cents, &sold.currency).await {
        Ok(payment) => payment,
        Err(error) => {
            let undone = undo(run, txn, seats, token, Written::Money).await;
            return Err(abort(run, outcome::refusal("payments", &error), undone).await);
        }
    };
    run.driver
        .log
        .set_payment(&run.owned, &payment.payment_id)
        .await?;
    if let Err(error) = money::capture(run, &payment.payment_id).await {
        let undone = undo(run, txn, seats, token, Written::Money).await;
        return Err(abort(run, outcome::refusal("payments", &error), undone).await);
    }
    run.phase("charge", started);

    let started = Instant::now();
    let place = PlaceOrderFencedRequest {
        txid: txid.clone(),
        order_id: txn.order_id.clone(),
        user_id: purchase.user_id.clone(),
        event_id: purchase.event_id.clone(),
        seats: sold.seats.clone(),
        currency: sold.currency.clone(),
        payment_id: payment.payment_id.clone(),
        fencing_token: token,
        idempotency_key: purchase.idempotency_key.clone(),
    };
    let order = match run
        .call(
            Step::forward(Participant::Orders, "place_order_fenced"),
            forward,
            || rpc!(p.orders, place_order_fenced, place.clone()),
        )
        .await
    {
        Ok(answer) => answer.order,
        Err(error) => {
            let undone = undo(run, txn, seats, token, Written::Order).await;
            return Err(abort(run, outcome::refusal("orders", &error), undone).await);
        }
    };
    run.phase("place_order", started);
    run.driver.log.decide(&run.owned, Decision::Commit).await?;
    server_kit::crash_point!("lease::after_decision");
    outcome::committed(
        run,
        Protocol::Lease,
        &txn.order_id,
        &sold.seats,
        &sold.currency,
        &payment.payment_id,
        order,
    )
    .await
}

async fn abort(run: &Run, cause: tonic::Status, undone: Result<(), CallError>) -> Error {
    if let Err(error) = run.driver.log.decide(&run.owned, Decision::Abort).await {
        tracing::warn!(txid = %run.txid, %error, "could not log the abort decision");
    }
    outcome::aborted(run, cause, undone).await
}

/// Takes the leases: the named seats, or the best available ones. Returns the seats
/// held, sorted, or the refusal.
async fn acquire(run: &Run, txn: &TxnRecord) -> Result<Vec<String>, tonic::Status> {
    let purchase = &txn.purchase;
    let (candidates, unsold) = if purchase.seat_ids.is_empty() {
        available_seats(run, &purchase.event_id).await?
    } else {
        (purchase.seat_ids.clone(), usize::MAX)
    };
    let wanted = if purchase.seat_ids.is_empty() {
        purchase.quantity as usize
    } else {
        purchase.seat_ids.len()
    };
    let ttl_ms = u64::try_from(run.driver.lease_ttl.as_millis()).unwrap_or(u64::MAX);
    let began = chrono::Utc::now();
    // One script takes the first free leases among the candidates, in order (named
    // seats: all of them or none). SET NX never waits, so no order can deadlock, and
    // concurrent buyers skip past each other's leases within one round trip.
    let candidates: Vec<String> = candidates.into_iter().take(wanted + MAX_SKIPPED).collect();
    let mut script = ACQUIRE_SCRIPT.prepare_invoke();
    for seat in &candidates {
        script.key(lock_key(&purchase.event_id, seat));
    }
    let taken: Vec<i64> = script
        .arg(&run.txid)
        .arg(ttl_ms)
        .arg(wanted)
        .arg(u8::from(!purchase.seat_ids.is_empty()))
        .invoke_async(&mut run.driver.redis.clone())
        .await
        .map_err(|e| tonic::Status::unavailable(format!("redis: {e}")))?;
    let mut held: Vec<String> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    for (seat, taken) in candidates.iter().zip(&taken) {
        match taken {
            1 => held.push(seat.clone()),
            -1 => refused.push(seat.clone()),
            _ => {}
        }
    }
    if held.len() < wanted {
        let error = format!("leases held by other purchases: {}", refused.join(","));
        // Fewer unsold seats than wanted is sold out; seats held, or leased by purchases
        // in flight, are a conflict (they may come back).
        let status = if purchase.seat_ids.is_empty() && unsold < wanted {
            server_kit::status::with_reason(
                tonic::Code::FailedPrecondition,
                ErrorReason::SoldOut,
                format!("sold out: {unsold} seat(s) left unsold, {wanted} requested"),
                [("event_id", purchase.event_id.clone())],
            )
        } else if purchase.seat_ids.is_empty() {
            server_kit::status::with_reason(
                tonic::Code::Aborted,
                ErrorReason::SeatTaken,
                "no seat is free right now: the unsold seats are held or leased by purchases \
                 in progress, and may come back; try again",
                [("seats", refused.join(","))],
            )
        } else {
            server_kit::status::with_reason(
                tonic::Code::FailedPrecondition,
                ErrorReason::SeatTaken,
                error,
                [("seats", refused.join(","))],
            )
        };
        run.record(
            Step::forward(Participant::Locks, "acquire_leases"),
            1,
            began,
            StepOutcome::Failed,
            Some(&crate::driver::describe(&status)),
        )
        .await;
        return Err(status);
    }
    run.record(
        Step::forward(Participant::Locks, "acquire_leases"),
        1,
        began,
        StepOutcome::Ok,
        None,
    )
    .await;
    held.sort();
    Ok(held)
}

/// The AVAILABLE seats, best first (cheapest, then section, row, number, as inventory
/// orders best-available), from inventory's seat map, and how many seats are not SOLD.
async fn available_seats(run: &Run, event_id: &str) -> Result<(Vec<String>, usize), tonic::Status> {
    let p = &run.driver.participants;
    let event = run
        .call(
            Step::forward(Participant::Inventory, "get_event"),
            run.driver.policies.forward,
            || {
                rpc!(
                    p.inventory,
                    get_event,
                    GetEventRequest {
                        event_id: event_id.to_owned(),
                        include_seats: true,
                    }
                )
            },
        )
        .await
        .map_err(|error| error.status().clone())?;
    let unsold = event
        .seats
        .iter()
        .filter(|seat| seat.status() != SeatStatus::Sold)
        .count();
    let mut seats: Vec<&Seat> = event
        .seats
        .iter()
        .filter(|seat| seat.status() == SeatStatus::Available)
        .collect();
    seats.sort_by(|a, b| {
        (a.price_cents, &a.section, a.row, a.number).cmp(&(
            b.price_cents,
            &b.section,
            b.row,
            b.number,
        ))
    });
    let candidates = seats.into_iter().map(|s| s.seat_id.clone()).collect();
    Ok((candidates, unsold))
}

/// Unfenced purchases only: refuses when a leased seat is no longer AVAILABLE.
async fn ensure_unsold_under_lease(
    run: &Run,
    event_id: &str,
    seats: &[String],
) -> Result<(), tonic::Status> {
    let (available, _) = available_seats(run, event_id).await?;
    let taken: Vec<String> = seats
        .iter()
        .filter(|seat| !available.contains(seat))
        .cloned()
        .collect();
    if taken.is_empty() {
        return Ok(());
    }
    Err(server_kit::status::with_reason(
        tonic::Code::FailedPrecondition,
        ErrorReason::SeatTaken,
        format!("seats already taken: {}", taken.join(", ")),
        [("seats", taken.join(","))],
    ))
}

async fn release(run: &Run, event_id: &str, seats: &[String]) {
    let mut redis = run.driver.redis.clone();
    let began = chrono::Utc::now();
    let script = Script::new(RELEASE);
    let mut failed = None;
    for seat in seats {
        if let Err(error) = script
            .key(lock_key(event_id, seat))
            .arg(&run.txid)
            .invoke_async::<i64>(&mut redis)
            .await
        {
            failed = Some(error.to_string());
        }
    }
    let outcome = if failed.is_some() {
        StepOutcome::Unknown
    } else {
        StepOutcome::Ok
    };
    // A lease we could not delete expires by itself; the audit lists orphans.
    run.record(
        Step::forward(Participant::Locks, "release_leases"),
        1,
        began,
        outcome,
        failed.as_deref(),
    )
    .await;
}

/// Renews the leases every third of their ttl until aborted.
async fn renew(
    driver: crate::driver::Driver,
    txid: String,
    event_id: String,
    seats: Vec<String>,
    ttl: Duration,
) {
    let mut redis = driver.redis.clone();
    let script = Script::new(RENEW);
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    loop {
        tokio::time::sleep(ttl / 3).await;
        for seat in &seats {
            let renewed = script
                .key(lock_key(&event_id, seat))
                .arg(&txid)
                .arg(ttl_ms)
                .invoke_async::<i64>(&mut redis)
                .await;
            if !matches!(renewed, Ok(1)) {
                // Lost the lease: keep going; the fencing token guards the writes.
                tracing::warn!(%txid, seat, "lease lost while working");
            }
        }
    }
}

/// Undoes the writes of a purchase: order (if placed), money, seats, all under the
/// purchase's fencing token. A write refused as stale means a newer lease holder owns
/// the seat now: there is nothing of ours to undo there.
/// How far a lease purchase's writes may have got, so the undo touches only those.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Written {
    Seats,
    Money,
    Order,
}

async fn undo(
    run: &Run,
    txn: &TxnRecord,
    seats: &[String],
    token: u64,
    written: Written,
) -> Result<(), CallError> {
    server_kit::crash_point!("lease::during_undo");
    let p = &run.driver.participants;
    let finish = run.driver.policies.finish;
    let started = Instant::now();
    let result = async {
        if written >= Written::Order {
            ignore_stale(
                run.call(
                    Step::compensation(Participant::Orders, "cancel_order_fenced"),
                    finish,
                    || {
                        rpc!(
                            p.orders,
                            cancel_order_fenced,
                            CancelOrderFencedRequest {
                                txid: run.txid.clone(),
                                order_id: txn.order_id.clone(),
                                fencing_token: token.max(1),
                            }
                        )
                    },
                )
                .await
                .map(drop),
            )?;
        }
        if written >= Written::Money {
            money::release(run, &txn.order_id).await?;
        }
        ignore_stale(
            run.call(
                Step::compensation(Participant::Inventory, "unsell_fenced"),
                finish,
                || {
                    rpc!(
                        p.inventory,
                        unsell_fenced,
                        UnsellFencedRequest {
                            txid: run.txid.clone(),
                            event_id: txn.purchase.event_id.clone(),
                            order_id: txn.order_id.clone(),
                            seat_ids: seats.to_vec(),
                            fencing_token: token.max(1),
                        }
                    )
                },
            )
            .await
            .map(drop),
        )
    }
    .await;
    run.phase("undo", started);
    result
}

/// A refused undo is fine when the seat's claim has a newer holder (stale token) or the
/// order was never placed (not found): there is nothing of ours to undo.
fn ignore_stale(result: Result<(), CallError>) -> Result<(), CallError> {
    match result {
        Err(CallError::Refused(status))
            if status.code() == tonic::Code::NotFound
                || server_kit::status::reason_of(&status)
                    .is_some_and(|(reason, _)| reason == "STALE_FENCING_TOKEN") =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Drives a lease purchase found in the log after a crash. Decided: the writes are all
/// done; release the leases and finish. Otherwise: undo whatever the intent's token may
/// have written (every undo is a no-op where nothing was written).
pub async fn recover(run: &Run, txn: &TxnRecord) -> Result<()> {
    // The intent's seats; before the intent was logged, only named seats can be leased.
    let seats = if txn.leased_seats.is_empty() {
        txn.purchase.seat_ids.clone()
    } else {
        txn.leased_seats.clone()
    };
    if txn.decision == Some(Decision::Commit) {
        release(run, &txn.purchase.event_id, &seats).await;
        let p = &run.driver.participants;
        let order = run
            .call(
                Step::forward(Participant::Orders, "get_order"),
                run.driver.policies.finish,
                || {
                    rpc!(
                        p.orders,
                        get_order,
                        GetOrderRequest {
                            order_id: txn.order_id.clone(),
                            idempotency_key: String::new(),
                        }
                    )
                },
            )
            .await
            .map_err(|error| Error::OutcomeUnknown {
                txid: run.txid.clone(),
                cause: crate::driver::describe(error.status()),
                deadline: false,
            })?
            .order;
        let currency = txn.currency.clone().unwrap_or_default();
        let payment_id = txn.payment_id.clone().unwrap_or_default();
        return outcome::committed(
            run,
            Protocol::Lease,
            &txn.order_id,
            &txn.seats,
            &currency,
            &payment_id,
            order,
        )
        .await
        .map(drop);
    }
    let cause = server_kit::status::refusal::interrupted(
        "the coordinator stopped mid-purchase; the lease purchase was undone",
    );
    let undone = match txn.fencing_token {
        // No intent logged: nothing was written under a token.
        None => Ok(()),
        Some(token) => {
            let token = u64::try_from(token).unwrap_or(0);
            undo(run, txn, &seats, token, Written::Order).await
        }
    };
    release(run, &txn.purchase.event_id, &seats).await;
    match abort(run, cause, undone).await {
        Error::Refused { .. } => Ok(()),
        other => Err(other),
    }
}
