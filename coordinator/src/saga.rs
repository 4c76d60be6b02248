//! Orchestrated saga. Forward steps, each with its compensation:
//!
//! | step | compensation |
//! | --- | --- |
//! | inventory HoldSeats (ttl) | ReleaseSeats |
//! | orders CreateOrder (PENDING) | CancelOrder |
//! | payments Authorize | Void |
//! | inventory ConfirmSeats (only while held by this saga) | UnsellSeats |
//! | **pivot: payments Capture** | — |
//! | orders ConfirmOrder + tickets, retried until it succeeds | — |
//!
//! A failure before the pivot compensates what was attempted, in reverse order; after
//! the pivot the saga only moves forward. Every participant applies the barrier rules,
//! so a repeated step is a no-op and a compensation for a step that never ran is a
//! recorded no-op: recovery can compensate everything without knowing how far it got.

use std::time::Instant;

use proto::v1::*;

use crate::driver::{CallError, Run, Step};
use crate::error::{Error, Result};
use crate::log::{Decision, TxnRecord};
use crate::rpc;
use crate::{money, outcome};

/// How far the forward steps got: the step that failed (every step before it succeeded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reached {
    Hold = 1,
    CreateOrder = 2,
    Authorize = 3,
    ConfirmSeats = 4,
    Capture = 5,
}

impl Reached {
    /// The participant and operation of the step, for compensable steps.
    fn step(self) -> Option<(Participant, &'static str)> {
        match self {
            Reached::Hold => Some((Participant::Inventory, "hold_seats")),
            Reached::CreateOrder => Some((Participant::Orders, "create_order")),
            Reached::Authorize => Some((Participant::Payments, "authorize")),
            Reached::ConfirmSeats => Some((Participant::Inventory, "confirm_seats")),
            Reached::Capture => None,
        }
    }

    /// Whether the step `step` needs compensating when the saga failed at `self`:
    /// every step before it did apply; the failing one only may have (an unknown attempt).
    fn compensates(self, step: Reached, failed_may_have_applied: bool) -> bool {
        step < self || (step == self && failed_may_have_applied)
    }
}

pub async fn run(run: &Run, txn: &TxnRecord) -> Result<PurchaseResponse> {
    let p = &run.driver.participants;
    let forward = run.driver.policies.forward;
    let purchase = &txn.purchase;
    let txid = &run.txid;

    let started = Instant::now();
    let hold_request = HoldSeatsRequest {
        saga_id: txid.clone(),
        event_id: purchase.event_id.clone(),
        seat_ids: purchase.seat_ids.clone(),
        quantity: purchase.quantity,
        hold_ttl: Some(server_kit::convert::duration(run.driver.hold_ttl)),
    };
    let hold = match run
        .call(
            Step::forward(Participant::Inventory, "hold_seats"),
            forward,
            || rpc!(p.inventory, hold_seats, hold_request.clone()),
        )
        .await
    {
        Ok(hold) => hold,
        Err(error) => return Err(fail(run, txn, Reached::Hold, "inventory", error).await),
    };
    run.phase("hold", started);
    run.driver
        .log
        .set_seats(&run.owned, &hold.seats, &hold.currency)
        .await?;
    server_kit::crash_point!("saga::after_hold");

    let started = Instant::now();
    let order_request = CreateOrderRequest {
        saga_id: txid.clone(),
        order_id: txn.order_id.clone(),
        user_id: purchase.user_id.clone(),
        event_id: purchase.event_id.clone(),
        seats: hold.seats.clone(),
        currency: hold.currency.clone(),
        idempotency_key: purchase.idempotency_key.clone(),
    };
    if let Err(error) = run
        .call(
            Step::forward(Participant::Orders, "create_order"),
            forward,
            || rpc!(p.orders, create_order, order_request.clone()),
        )
        .await
    {
        return Err(fail(run, txn, Reached::CreateOrder, "orders", error).await);
    }
    run.phase("create_order", started);

    let started = Instant::now();
    let payment = match money::authorize(run, txn, hold.total_cents, &hold.currency).await {
        Ok(payment) => payment,
        Err(error) => return Err(fail(run, txn, Reached::Authorize, "payments", error).await),
    };
    run.phase("authorize", started);
    run.driver
        .log
        .set_payment(&run.owned, &payment.payment_id)
        .await?;

    let started = Instant::now();
    let confirm_request = ConfirmSeatsRequest {
        saga_id: txid.clone(),
        event_id: purchase.event_id.clone(),
        order_id: txn.order_id.clone(),
    };
    if let Err(error) = run
        .call(
            Step::forward(Participant::Inventory, "confirm_seats"),
            forward,
            || rpc!(p.inventory, confirm_seats, confirm_request.clone()),
        )
        .await
    {
        return Err(fail(run, txn, Reached::ConfirmSeats, "inventory", error).await);
    }
    run.phase("confirm_seats", started);

    // The pivot: once the money is captured, the saga only moves forward.
    let started = Instant::now();
    match money::capture(run, &payment.payment_id).await {
        Ok(_) => {}
        Err(error @ CallError::Refused(_)) => {
            return Err(fail(run, txn, Reached::Capture, "payments", error).await);
        }
        // Captured or not: recovery finds out from the payment and goes on from there.
        Err(CallError::Unknown(status)) => return Err(outcome::unknown(run, &status).await),
        // Another coordinator drives the purchase now: stop here.
        Err(CallError::NotOwner(_)) => {
            return Err(Error::NotOwner {
                txid: run.txid.clone(),
            });
        }
    }
    run.phase("capture", started);
    server_kit::crash_point!("saga::after_capture");
    run.driver
        .log
        .decide(&run.owned, Decision::Commit, None)
        .await?;
    server_kit::crash_point!("saga::after_decision");

    forward_after_pivot(run, txn, &hold.seats, &hold.currency, &payment.payment_id).await
}

/// After the pivot: confirm the order and issue tickets, retried until it succeeds.
async fn forward_after_pivot(
    run: &Run,
    txn: &TxnRecord,
    seats: &[PricedSeat],
    currency: &str,
    payment_id: &str,
) -> Result<PurchaseResponse> {
    let p = &run.driver.participants;
    let started = Instant::now();
    let request = ConfirmOrderRequest {
        saga_id: run.txid.clone(),
        order_id: txn.order_id.clone(),
        payment_id: payment_id.to_owned(),
    };
    let order = match run
        .call(
            Step::forward(Participant::Orders, "confirm_order"),
            run.driver.policies.finish,
            || rpc!(p.orders, confirm_order, request.clone()),
        )
        .await
    {
        Ok(answer) => answer.order,
        Err(error) => return Err(outcome::unknown(run, error.status()).await),
    };
    run.phase("confirm_order", started);
    outcome::committed(
        run,
        Protocol::Saga,
        &txn.order_id,
        seats,
        currency,
        payment_id,
        order,
    )
    .await
}

/// A forward step failed before the pivot: log ABORT, compensate in reverse, answer.
async fn fail(
    run: &Run,
    txn: &TxnRecord,
    reached: Reached,
    participant: &str,
    error: CallError,
) -> Error {
    let cause = outcome::refusal(participant, &error);
    if let Err(log_error) = run
        .driver
        .log
        .decide(&run.owned, Decision::Abort, None)
        .await
    {
        tracing::warn!(txid = %run.txid, error = %log_error, "could not log the abort decision");
    }
    // A step refused on every attempt did nothing: it needs no compensation.
    let may_have_applied = matches!(error, CallError::Unknown(_))
        || reached
            .step()
            .is_some_and(|(participant, operation)| run.uncertain(participant, operation));
    server_kit::crash_point!("saga::during_compensation");
    let started = Instant::now();
    let undone = compensate(run, txn, reached, may_have_applied).await;
    run.phase("compensate", started);
    outcome::aborted(run, cause, undone).await
}

/// Runs the compensations of the steps that may have applied, in reverse order.
async fn compensate(
    run: &Run,
    txn: &TxnRecord,
    reached: Reached,
    failed_may_have_applied: bool,
) -> Result<(), CallError> {
    let needs = |step| reached.compensates(step, failed_may_have_applied);
    let p = &run.driver.participants;
    let finish = run.driver.policies.finish;
    let txid = run.txid.clone();
    let event_id = txn.purchase.event_id.clone();
    if needs(Reached::ConfirmSeats) {
        run.call(
            Step::compensation(Participant::Inventory, "unsell_seats"),
            finish,
            || {
                rpc!(
                    p.inventory,
                    unsell_seats,
                    UnsellSeatsRequest {
                        saga_id: txid.clone(),
                        event_id: event_id.clone(),
                    }
                )
            },
        )
        .await?;
    }
    if needs(Reached::Authorize) {
        money::release(run, &txn.order_id).await?;
    }
    if needs(Reached::CreateOrder) {
        run.call(
            Step::compensation(Participant::Orders, "cancel_order"),
            finish,
            || {
                rpc!(
                    p.orders,
                    cancel_order,
                    CancelOrderRequest {
                        saga_id: txid.clone(),
                        order_id: txn.order_id.clone(),
                    }
                )
            },
        )
        .await?;
    }
    if needs(Reached::Hold) {
        run.call(
            Step::compensation(Participant::Inventory, "release_seats"),
            finish,
            || {
                rpc!(
                    p.inventory,
                    release_seats,
                    ReleaseSeatsRequest {
                        saga_id: txid.clone(),
                        event_id: event_id.clone(),
                    }
                )
            },
        )
        .await?;
    }
    Ok(())
}

/// Drives a saga found in the log after a crash. Past the pivot (decision COMMIT, or a
/// captured payment the coordinator died before logging): forward. Otherwise:
/// compensate every step; the barrier makes the ones that never ran no-ops.
pub async fn recover(run: &Run, txn: &TxnRecord) -> Result<()> {
    let p = &run.driver.participants;
    let finish = run.driver.policies.finish;
    let payments = run
        .call(
            Step::forward(Participant::Payments, "list_payments"),
            finish,
            || {
                rpc!(
                    p.payments,
                    list_by_order,
                    ListByOrderRequest {
                        order_id: txn.order_id.clone(),
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
        .payments;
    let captured = payments
        .iter()
        .find(|payment| payment.state() == PaymentState::Captured);
    let past_pivot = txn.decision == Some(Decision::Commit) || captured.is_some();
    if past_pivot && txn.decision != Some(Decision::Abort) {
        let payment_id = captured
            .map(|payment| payment.payment_id.clone())
            .or_else(|| txn.payment_id.clone())
            .unwrap_or_default();
        if txn.decision != Some(Decision::Commit) {
            run.driver
                .log
                .decide(&run.owned, Decision::Commit, None)
                .await?;
        }
        let currency = txn.currency.clone().unwrap_or_default();
        return forward_after_pivot(run, txn, &txn.seats, &currency, &payment_id)
            .await
            .map(drop);
    }
    let cause = proto::error::refusal::interrupted(
        "the coordinator stopped before the pivot; the saga was compensated",
    );
    // Recovery does not know how far the saga got: compensate every step (the
    // participants' barriers make the ones that never ran no-ops).
    match fail(
        run,
        txn,
        Reached::Capture,
        "coordinator",
        CallError::Refused(cause),
    )
    .await
    {
        Error::Refused { .. } => Ok(()),
        other => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::Reached::{self, *};

    const STEPS: [Reached; 5] = [Hold, CreateOrder, Authorize, ConfirmSeats, Capture];

    /// The steps compensated when the saga failed at `failed`.
    fn compensated(failed: Reached, may_have_applied: bool) -> Vec<Reached> {
        STEPS
            .into_iter()
            .filter(|step| failed.compensates(*step, may_have_applied))
            .collect()
    }

    #[test]
    fn every_step_before_the_failed_one_is_compensated_and_the_failed_one_only_if_it_may_have_applied()
     {
        // A certain refusal of the hold: nothing happened, nothing to undo.
        assert_eq!(compensated(Hold, false), vec![]);
        // The hold's answer was lost: it may have held seats.
        assert_eq!(compensated(Hold, true), vec![Hold]);
        // The card was declined: the seats and the order are undone, the authorization not.
        assert_eq!(compensated(Authorize, false), vec![Hold, CreateOrder]);
        // The authorization's answer was lost: it may hold money, so it is voided too.
        assert_eq!(
            compensated(Authorize, true),
            vec![Hold, CreateOrder, Authorize]
        );
        assert_eq!(
            compensated(Capture, false),
            vec![Hold, CreateOrder, Authorize, ConfirmSeats]
        );
        // The capture has no compensation step of its own (the void or refund is the
        // authorization's).
        assert_eq!(Capture.step(), None);
        assert!(STEPS[..4].iter().all(|step| step.step().is_some()));
    }
}
