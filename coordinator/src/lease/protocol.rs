//! Lease locks: Redis gives cross-database isolation, each database write is local.
//!
//! 1. Acquire `lock:seat:{event}:{seat}` for every seat, in sorted order, with
//!    `SET NX PX` and the txid as the unique value, and a fencing token from the event's
//!    Redis counter in the same script (never below the floor: what the participants and
//!    this log have seen); log the intent (token and seats) durably.
//! 2. Renew the leases while working; write inventory (SellFenced), payments
//!    (authorize + capture) and orders (PlaceOrderFenced), every seat write carrying the
//!    fencing token. A participant refuses a token older than one it has seen.
//! 3. Log COMMIT, release the leases with a compare-and-delete script.
//!
//! A holder paused past its lease (SIGSTOP) may wake up and write: the fencing token is
//! what refuses it. `--unsafe-no-fencing` sends no token (0): the lab's negative control.

use std::time::Instant;

use proto::v1::*;

use super::locks::{self, Ask};
use crate::driver::{CallError, Run, Step};
use crate::error::{Error, Result};
use crate::log::{Decision, TxnRecord};
use crate::rpc;
use crate::{money, outcome};

/// Most candidate seats a best-available purchase skips because other purchases hold
/// their leases.
const MAX_SKIPPED: usize = 256;

pub async fn run(run: &Run, txn: &TxnRecord) -> Result<PurchaseResponse> {
    let purchase = &txn.purchase;
    let txid = &run.txid;
    let started = Instant::now();
    let (seats, token) = match acquire(run, txn).await {
        Ok(acquired) => acquired,
        Err(cause) => return Err(outcome::aborted(run, cause, Ok(())).await),
    };
    // A holder stopped right after taking its leases and token (crash tests: `sleep(ms)`).
    fail::fail_point!("lease::after_leases");
    if run.driver.leases.unsafe_no_fencing {
        // Without fencing the lease is all there is: the seats are checked once, under
        // the lease, and the writes that follow trust it (a store written by a lock
        // holder does no check of its own). A holder paused past its lease writes on a
        // check that is no longer true — the double sale the negative control shows.
        if let Err(cause) = ensure_unsold_under_lease(run, &purchase.event_id, &seats).await {
            release(run, &purchase.event_id, &seats).await;
            return Err(outcome::aborted(run, cause, Ok(())).await);
        }
    }
    run.driver.log.set_intent(&run.owned, token, &seats).await?;
    run.phase("acquire_leases", started);
    server_kit::crash_point!("lease::after_acquire");

    let renewal = tokio::spawn(locks::keep_renewed(
        run.driver.leases.redis.clone(),
        txid.clone(),
        purchase.event_id.clone(),
        seats.clone(),
        run.driver.leases.ttl,
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
            let may_have_sold = match &error {
                CallError::Unknown(_) => true,
                // Refused now, but an earlier attempt whose answer was lost may have sold.
                CallError::Refused(_) => run.uncertain(Participant::Inventory, "sell_fenced"),
                CallError::NotOwner(_) => false,
            };
            let undone = if may_have_sold {
                // Undo it (a no-op where it did not sell).
                undo(run, txn, seats, token, Written::Seats).await
            } else {
                Ok(())
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
    server_kit::crash_point!("lease::before_decision");
    run.driver
        .log
        .decide(&run.owned, Decision::Commit, None)
        .await?;
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
    if let Err(error) = run
        .driver
        .log
        .decide(&run.owned, Decision::Abort, None)
        .await
    {
        tracing::warn!(txid = %run.txid, %error, "could not log the abort decision");
    }
    outcome::aborted(run, cause, undone).await
}

/// Takes the leases — the named seats, or the best available ones — and the fencing
/// token, in one script. Returns the seats held, sorted, and the token (0 unfenced), or
/// the refusal.
async fn acquire(run: &Run, txn: &TxnRecord) -> Result<(Vec<String>, i64), tonic::Status> {
    let purchase = &txn.purchase;
    let named = !purchase.seat_ids.is_empty();
    let (candidates, unsold, seen_by_inventory) = if named {
        let seen = max_fencing_token(run, &purchase.event_id).await?;
        (purchase.seat_ids.clone(), usize::MAX, seen)
    } else {
        available_seats(run, &purchase.event_id).await?
    };
    let wanted = if named {
        purchase.seat_ids.len()
    } else {
        purchase.quantity as usize
    };
    let fenced = !run.driver.leases.unsafe_no_fencing;
    // The floor: no token at or below one the participants accepted or this log issued
    // for the event (a Redis restart may have lost the counter's last increments).
    let floor = if fenced {
        let logged = run
            .driver
            .log
            .max_fencing_token(&purchase.event_id)
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        logged.max(seen_by_inventory)
    } else {
        0
    };
    let candidates: Vec<String> = candidates.into_iter().take(wanted + MAX_SKIPPED).collect();
    let began = chrono::Utc::now();
    let acquired = locks::acquire(
        &mut run.driver.leases.redis.clone(),
        &Ask {
            event_id: &purchase.event_id,
            txid: &run.txid,
            candidates: &candidates,
            wanted,
            all_or_none: named,
            ttl: run.driver.leases.ttl,
            fenced,
            floor,
        },
    )
    .await
    .map_err(|e| tonic::Status::unavailable(format!("redis: {e}")))?;
    let step = Step::forward(Participant::Locks, "acquire_leases");
    if acquired.held.len() < wanted {
        let refused = acquired.refused.join(",");
        // Fewer unsold seats than wanted is sold out; seats held, or leased by purchases
        // in flight, are a conflict (they may come back).
        let status = if !named && unsold < wanted {
            proto::error::with_reason(
                tonic::Code::FailedPrecondition,
                ErrorReason::SoldOut,
                format!("sold out: {unsold} seat(s) left unsold, {wanted} requested"),
                [("event_id", purchase.event_id.clone())],
            )
        } else if !named {
            proto::error::with_reason(
                tonic::Code::Aborted,
                ErrorReason::SeatTaken,
                "no seat is free right now: the unsold seats are held or leased by purchases \
                 in progress, and may come back; try again",
                [("seats", refused.clone())],
            )
        } else {
            proto::error::with_reason(
                tonic::Code::FailedPrecondition,
                ErrorReason::SeatTaken,
                format!("leases held by other purchases: {refused}"),
                [("seats", refused.clone())],
            )
        };
        run.record(
            step,
            1,
            began,
            StepOutcome::Failed,
            Some(&crate::driver::describe(&status)),
        )
        .await;
        return Err(status);
    }
    run.record(step, 1, began, StepOutcome::Ok, None).await;
    let mut held = acquired.held;
    held.sort();
    Ok((held, acquired.token))
}

/// The highest fencing token inventory has seen for any seat of the event.
async fn max_fencing_token(run: &Run, event_id: &str) -> Result<i64, tonic::Status> {
    let p = &run.driver.participants;
    let counts = run
        .call(
            Step::forward(Participant::Inventory, "get_seat_counts"),
            run.driver.policies.forward,
            || {
                rpc!(
                    p.inventory,
                    get_seat_counts,
                    GetSeatCountsRequest {
                        event_id: event_id.to_owned(),
                    }
                )
            },
        )
        .await
        .map_err(|error| error.status().clone())?;
    Ok(i64::try_from(counts.max_fencing_token).unwrap_or(i64::MAX))
}

/// The AVAILABLE seats, best first (cheapest, then section, row, number, as inventory
/// orders best-available), from inventory's seat map, how many seats are not SOLD, and
/// the highest fencing token any seat has seen.
async fn available_seats(
    run: &Run,
    event_id: &str,
) -> Result<(Vec<String>, usize, i64), tonic::Status> {
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
                        consistent_read: true,
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
    let seen = event
        .seats
        .iter()
        .map(|seat| seat.fencing_token)
        .max()
        .unwrap_or(0);
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
    Ok((candidates, unsold, i64::try_from(seen).unwrap_or(i64::MAX)))
}

/// Unfenced purchases only: refuses when a leased seat is no longer AVAILABLE.
async fn ensure_unsold_under_lease(
    run: &Run,
    event_id: &str,
    seats: &[String],
) -> Result<(), tonic::Status> {
    let (available, _, _) = available_seats(run, event_id).await?;
    let taken: Vec<String> = seats
        .iter()
        .filter(|seat| !available.contains(seat))
        .cloned()
        .collect();
    if taken.is_empty() {
        return Ok(());
    }
    Err(proto::error::with_reason(
        tonic::Code::FailedPrecondition,
        ErrorReason::SeatTaken,
        format!("seats already taken: {}", taken.join(", ")),
        [("seats", taken.join(","))],
    ))
}

async fn release(run: &Run, event_id: &str, seats: &[String]) {
    let began = chrono::Utc::now();
    let released = locks::release(
        &mut run.driver.leases.redis.clone(),
        event_id,
        seats,
        &run.txid,
    )
    .await;
    // A lease we could not delete expires by itself; the audit lists orphans.
    let (outcome, error) = match &released {
        Ok(()) => (StepOutcome::Ok, None),
        Err(error) => (StepOutcome::Unknown, Some(error.as_str())),
    };
    run.record(
        Step::forward(Participant::Locks, "release_leases"),
        1,
        began,
        outcome,
        error,
    )
    .await;
}

/// How far a lease purchase's writes may have got, so the undo touches only those.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Written {
    Seats,
    Money,
    Order,
}

/// Undoes the writes of a purchase: order (if placed), money, seats. Each participant
/// undoes only what this purchase wrote (its order, its payments, the seats sold to it)
/// and says what that was; a refusal is a failed undo (the purchase is parked and
/// retried), never taken for "nothing to undo" — except the one answer that says so:
/// the order was never placed (NOT_FOUND).
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
            never_placed_is_done(
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
        .map(drop)
    }
    .await;
    run.phase("undo", started);
    result
}

/// Orders answers NOT_FOUND for an order that was never placed: nothing of ours to undo.
fn never_placed_is_done(result: Result<(), CallError>) -> Result<(), CallError> {
    match result {
        Err(CallError::Refused(status)) if status.code() == tonic::Code::NotFound => Ok(()),
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
    let cause = proto::error::refusal::interrupted(
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
