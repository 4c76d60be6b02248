//! Two-phase commit: the coordinator is the transaction manager.
//!
//! 1. BEGIN is logged before this runs.
//! 2. Prepare: inventory first — it picks and locks the seats (a quantity purchase only
//!    learns its seats and prices here, and a sold-out event is refused without touching
//!    orders or payments) — then orders and payments in parallel.
//! 3. The decision is logged durably: the commit point.
//! 4. Phase two goes to every participant in parallel, retried until each acknowledges
//!    or the ceiling parks the purchase (recovery goes on with it).
//!
//! Presumed abort: a transaction with no logged decision is aborted by recovery, and a
//! participant asking GetDecision about a txid the log does not know hears ABORT.

use std::time::Instant;

use proto::v1::*;

use crate::driver::{CallError, Run, Step};
use crate::error::{Error, Result};
use crate::log::{Decision, TxnRecord};
use crate::outcome;
use crate::rpc;

pub async fn run(run: &Run, txn: &TxnRecord) -> Result<PurchaseResponse> {
    let p = &run.driver.participants;
    let forward = run.driver.policies.forward;
    let purchase = &txn.purchase;
    let txid = &run.txid;

    let prepare_started = Instant::now();
    let request = PrepareSaleRequest {
        txid: txid.clone(),
        event_id: purchase.event_id.clone(),
        order_id: txn.order_id.clone(),
        seat_ids: purchase.seat_ids.clone(),
        quantity: purchase.quantity,
        log_id: run.log_id(),
    };
    let sale = match run
        .call(
            Step::forward(Participant::Inventory, "prepare"),
            forward,
            || rpc!(p.inventory, prepare_sale, request.clone()),
        )
        .await
    {
        Ok(sale) => sale,
        Err(error) => {
            let cause = outcome::refusal("inventory", &error);
            // Refused on every attempt: no branch exists anywhere, nothing to abort.
            let maybe_prepared: &[Participant] = if matches!(error, CallError::Refused(_))
                && !run.uncertain(Participant::Inventory, "prepare")
            {
                &[]
            } else {
                &[Participant::Inventory]
            };
            return Err(abort(run, maybe_prepared, cause).await);
        }
    };
    run.driver
        .log
        .set_seats(&run.owned, &sale.seats, &sale.currency)
        .await?;

    let order_request = PrepareOrderRequest {
        txid: txid.clone(),
        order_id: txn.order_id.clone(),
        user_id: purchase.user_id.clone(),
        event_id: purchase.event_id.clone(),
        seats: sale.seats.clone(),
        currency: sale.currency.clone(),
        idempotency_key: purchase.idempotency_key.clone(),
        payment_id: String::new(),
        log_id: run.log_id(),
    };
    let payment_request = PreparePaymentRequest {
        txid: txid.clone(),
        order_id: txn.order_id.clone(),
        amount_cents: sale.total_cents,
        currency: sale.currency.clone(),
        card_token: purchase.card_token.clone(),
        log_id: run.log_id(),
    };
    let (order, payment) = tokio::join!(
        run.call(
            Step::forward(Participant::Orders, "prepare"),
            forward,
            || { rpc!(p.orders, prepare_order, order_request.clone()) }
        ),
        run.call(
            Step::forward(Participant::Payments, "prepare"),
            forward,
            || { rpc!(p.payments, prepare_payment, payment_request.clone()) }
        ),
    );
    run.phase("prepare", prepare_started);
    let everyone = [
        Participant::Inventory,
        Participant::Orders,
        Participant::Payments,
    ];
    let payment = match (order, payment) {
        (Ok(_), Ok(payment)) => payment.payment.unwrap_or_default(),
        (Err(error), _) => {
            return Err(abort(run, &everyone, outcome::refusal("orders", &error)).await);
        }
        (_, Err(error)) => {
            return Err(abort(run, &everyone, outcome::refusal("payments", &error)).await);
        }
    };

    server_kit::crash_point!("2pc::before_decision");
    let decide_started = Instant::now();
    // The payment is recorded with the decision: only a commit needs it.
    run.driver
        .log
        .decide(&run.owned, Decision::Commit, Some(&payment.payment_id))
        .await?;
    run.phase("decide", decide_started);
    server_kit::crash_point!("2pc::after_decision");

    commit(run, txn, &sale.seats, &sale.currency, &payment.payment_id).await
}

/// Phase two, commit: every participant, in parallel, until each acknowledges.
pub async fn commit(
    run: &Run,
    txn: &TxnRecord,
    seats: &[PricedSeat],
    currency: &str,
    payment_id: &str,
) -> Result<PurchaseResponse> {
    let started = Instant::now();
    let (sale, order, payment) = tokio::join!(
        commit_one(run, Participant::Inventory, payment_id),
        commit_one(run, Participant::Orders, payment_id),
        commit_one(run, Participant::Payments, payment_id),
    );
    run.phase("commit", started);
    let order = match (sale, order, payment) {
        (Ok(_), Ok(order), Ok(_)) => order,
        (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => {
            return Err(outcome::unknown(run, error.status()).await);
        }
    };
    outcome::committed(
        run,
        Protocol::TwoPhaseCommit,
        &txn.order_id,
        seats,
        currency,
        payment_id,
        order,
    )
    .await
}

/// Phase two, commit, at one participant, until it acknowledges; the order when the
/// participant is orders.
pub async fn commit_one(
    run: &Run,
    participant: Participant,
    payment_id: &str,
) -> Result<Option<Order>, CallError> {
    let p = &run.driver.participants;
    let finish = run.driver.policies.finish;
    let txid = run.txid.clone();
    let log_id = run.log_id();
    match participant {
        Participant::Inventory => run
            .call(Step::forward(participant, "commit"), finish, || {
                rpc!(
                    p.inventory,
                    commit_sale,
                    CommitSaleRequest {
                        txid: txid.clone(),
                        log_id: log_id.clone(),
                    }
                )
            })
            .await
            .map(|_| None),
        Participant::Orders => run
            .call(Step::forward(participant, "commit"), finish, || {
                rpc!(
                    p.orders,
                    commit_order,
                    CommitOrderRequest {
                        txid: txid.clone(),
                        payment_id: payment_id.to_owned(),
                        log_id: log_id.clone(),
                    }
                )
            })
            .await
            .map(|answer| answer.order),
        _ => run
            .call(Step::forward(participant, "commit"), finish, || {
                rpc!(
                    p.payments,
                    commit_payment,
                    CommitPaymentRequest {
                        txid: txid.clone(),
                        log_id: log_id.clone(),
                    }
                )
            })
            .await
            .map(|_| None),
    }
}

/// Logs ABORT, then aborts `participants` (each answers a repeated or unknown-txid
/// Abort with success, leaving a tombstone).
pub async fn abort(run: &Run, participants: &[Participant], cause: tonic::Status) -> Error {
    if let Err(error) = run
        .driver
        .log
        .decide(&run.owned, Decision::Abort, None)
        .await
    {
        // Without a logged decision recovery presumes abort anyway.
        tracing::warn!(txid = %run.txid, %error, "could not log the abort decision");
    }
    server_kit::crash_point!("2pc::during_abort");
    let started = Instant::now();
    let undone = abort_participants(run, participants).await;
    run.phase("abort", started);
    outcome::aborted(run, cause, undone).await
}

/// Aborts `participants`: orders and payments in parallel first, inventory last, and
/// inventory only once the others acknowledged. A seat goes back to sale only when no
/// claim or charge of this purchase is left anywhere: the next buyer of the seat never
/// meets this purchase's order claim. When orders or payments cannot be reached, the
/// seats stay locked in inventory's prepared branch, and the parked purchase's recovery
/// aborts everything again, in the same order.
///
/// (Releasing the seats first turned an orders slowdown into a collapse: every seat
/// whose claim survived its aborted purchase was sold again, refused by orders, aborted,
/// and sold again, until recovery reached its claim.)
pub async fn abort_participants(run: &Run, participants: &[Participant]) -> Result<(), CallError> {
    let others: Vec<Participant> = participants
        .iter()
        .copied()
        .filter(|p| *p != Participant::Inventory)
        .collect();
    outcome::first_error(
        futures::future::join_all(others.iter().map(|p| abort_one(run, *p))).await,
    )?;
    if participants.contains(&Participant::Inventory) {
        abort_one(run, Participant::Inventory).await
    } else {
        Ok(())
    }
}

async fn abort_one(run: &Run, participant: Participant) -> Result<(), CallError> {
    let p = &run.driver.participants;
    let finish = run.driver.policies.finish;
    let txid = run.txid.clone();
    let log_id = run.log_id();
    match participant {
        Participant::Inventory => run
            .call(Step::forward(participant, "abort"), finish, || {
                rpc!(
                    p.inventory,
                    abort_sale,
                    AbortSaleRequest {
                        txid: txid.clone(),
                        log_id: log_id.clone(),
                    }
                )
            })
            .await
            .map(drop),
        Participant::Orders => run
            .call(Step::forward(participant, "abort"), finish, || {
                rpc!(
                    p.orders,
                    abort_order,
                    AbortOrderRequest {
                        txid: txid.clone(),
                        log_id: log_id.clone(),
                    }
                )
            })
            .await
            .map(drop),
        _ => run
            .call(Step::forward(participant, "abort"), finish, || {
                rpc!(
                    p.payments,
                    abort_payment,
                    AbortPaymentRequest {
                        txid: txid.clone(),
                        log_id: log_id.clone(),
                    }
                )
            })
            .await
            .map(drop),
    }
}

/// Drives a 2PC transaction found in the log after a crash: re-drive a logged decision,
/// abort everything undecided (presumed abort).
pub async fn recover(run: &Run, txn: &TxnRecord) -> Result<()> {
    let everyone = [
        Participant::Inventory,
        Participant::Orders,
        Participant::Payments,
    ];
    match txn.decision {
        Some(Decision::Commit) => {
            let payment_id = txn.payment_id.clone().unwrap_or_default();
            commit(
                run,
                txn,
                &txn.seats,
                txn.currency.as_deref().unwrap_or_default(),
                &payment_id,
            )
            .await
            .map(drop)
        }
        _ => {
            let cause = proto::error::refusal::interrupted(
                "the coordinator stopped before deciding; the purchase was aborted (presumed abort)",
            );
            match abort(run, &everyone, cause).await {
                Error::Refused { .. } => Ok(()),
                other => Err(other),
            }
        }
    }
}
