//! Trust, then verify: after orders-dynamo's store failed, the orders of the purchases
//! decided shortly before are read back, and a write the store acknowledged but lost is
//! written again.
//!
//! Why: DynamoDB Local can acknowledge a TransactWriteItems that a SIGKILL a moment
//! later undoes (the chaos lab caught it: a 2pc commit, a saga's confirmation, gone after
//! the restart while the log said COMMITTED). The protocols' own retries never see it —
//! the participant said yes. So when a call to orders ends with an unknown outcome (the
//! store or the service is in trouble), recovery re-asserts what the log says every
//! order decided in the last the reassert window (`--reassert-window-ms`) must be, through the participant's idempotent
//! operations, each one a logged step of the purchase.

use std::time::Instant;

use proto::v1::*;
use tracing::{info, warn};

use crate::driver::{CallError, Driver, Run, Step};
use crate::error::Result;
use crate::log::{Decision, TxnRecord};
use crate::rpc;

/// Re-asserts the orders of purchases decided since the reassert window (`--reassert-window-ms`) before the outage the
/// driver noted, if any; the note is cleared once every one of them checks out.
///
/// One clock: `decided_at` is the log's (PostgreSQL's) time, so the outage is placed on
/// the log's clock too — the log's now, less how long ago (on this process's monotonic
/// clock) the outage was noted. The coordinator's own wall clock, which may run ahead
/// of or behind the log's, is never compared with it.
pub async fn after_orders_outage(driver: &Driver) -> Result<()> {
    let Some(outage) = *driver.orders_outage.since.lock().expect("outage lock") else {
        return Ok(());
    };
    let ago = chrono::Duration::from_std(outage.elapsed() + driver.orders_outage.window)
        .unwrap_or(chrono::Duration::MAX);
    let since = driver.log.now().await? - ago;
    let mut all_fine = true;
    for txn in driver.log.decided_since(since).await? {
        // As the purchase's owner for the moment; one being driven now is looked at
        // again next round.
        let Some((txn, owned)) = crate::recovery::take_over_finished(driver, &txn.txid).await
        else {
            all_fine = false;
            continue;
        };
        let reasserted = reassert(driver, &txn, owned).await;
        match reasserted {
            Ok(()) => {}
            Err(error) => {
                all_fine = false;
                warn!(txid = %txn.txid, error = %crate::driver::describe(error.status()),
                      "could not verify an order after the orders outage; trying next round");
            }
        }
    }
    let mut noted = driver.orders_outage.since.lock().expect("outage lock");
    if all_fine && *noted == Some(outage) {
        *noted = None;
        info!(%since, "orders after the outage verified");
    }
    Ok(())
}

/// Makes the purchase's order what its decision says it must be, as its owner for the
/// moment, then lets it go.
async fn reassert(
    driver: &Driver,
    txn: &TxnRecord,
    owned: crate::ownership::Owned,
) -> std::result::Result<(), CallError> {
    let run = Run::new(driver, txn, owned)
        .await
        .map_err(|error| CallError::Unknown(tonic::Status::unavailable(error.to_string())))?;
    let reasserted = reassert_order(&run, txn).await;
    let _ = driver.log.release(&run.owned).await;
    reasserted
}

async fn reassert_order(run: &Run, txn: &TxnRecord) -> std::result::Result<(), CallError> {
    let Some(decision) = txn.decision else {
        return Ok(());
    };
    let driver = &run.driver;
    let p = &driver.participants;
    let finish = driver.policies.finish;
    let order = match run
        .call(
            Step::forward(Participant::Orders, "verify_order"),
            finish,
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
    {
        Ok(answer) => answer.order.map(|o| o.status()),
        Err(CallError::Refused(status)) if status.code() == tonic::Code::NotFound => None,
        Err(error) => return Err(error),
    };
    let purchase = &txn.purchase;
    let seats = txn.seats.clone();
    let currency = txn.currency.clone().unwrap_or_default();
    let payment_id = txn.payment_id.clone().unwrap_or_default();
    let txid = txn.txid.clone();
    use OrderStatus::{Cancelled, Confirmed, Pending, Prepared};
    match (decision, txn.protocol, order) {
        (Decision::Commit, _, Some(Confirmed)) | (Decision::Abort, _, None | Some(Cancelled)) => {
            return Ok(());
        }
        (Decision::Commit, Protocol::TwoPhaseCommit, status) => {
            if status.is_none() {
                let request = PrepareOrderRequest {
                    txid: txid.clone(),
                    order_id: txn.order_id.clone(),
                    user_id: purchase.user_id.clone(),
                    event_id: purchase.event_id.clone(),
                    seats,
                    currency,
                    idempotency_key: purchase.idempotency_key.clone(),
                    payment_id: String::new(),
                    log_id: run.log_id(),
                };
                run.call(
                    Step::forward(Participant::Orders, "prepare"),
                    finish,
                    || rpc!(p.orders, prepare_order, request.clone()),
                )
                .await?;
            }
            let request = CommitOrderRequest {
                txid,
                payment_id,
                log_id: run.log_id(),
            };
            run.call(Step::forward(Participant::Orders, "commit"), finish, || {
                rpc!(p.orders, commit_order, request.clone())
            })
            .await?;
        }
        (Decision::Commit, Protocol::Saga, status) => {
            if status.is_none() {
                let request = CreateOrderRequest {
                    saga_id: txid.clone(),
                    order_id: txn.order_id.clone(),
                    user_id: purchase.user_id.clone(),
                    event_id: purchase.event_id.clone(),
                    seats,
                    currency,
                    idempotency_key: purchase.idempotency_key.clone(),
                };
                run.call(
                    Step::forward(Participant::Orders, "create_order"),
                    finish,
                    || rpc!(p.orders, create_order, request.clone()),
                )
                .await?;
            }
            let request = ConfirmOrderRequest {
                saga_id: txid,
                order_id: txn.order_id.clone(),
                payment_id,
            };
            run.call(
                Step::forward(Participant::Orders, "confirm_order"),
                finish,
                || rpc!(p.orders, confirm_order, request.clone()),
            )
            .await?;
        }
        (Decision::Commit, Protocol::Lease, _) => {
            let request = PlaceOrderFencedRequest {
                txid,
                order_id: txn.order_id.clone(),
                user_id: purchase.user_id.clone(),
                event_id: purchase.event_id.clone(),
                seats,
                currency,
                payment_id,
                fencing_token: txn
                    .fencing_token
                    .and_then(|t| u64::try_from(t).ok())
                    .unwrap_or(0),
                idempotency_key: purchase.idempotency_key.clone(),
            };
            run.call(
                Step::forward(Participant::Orders, "place_order_fenced"),
                finish,
                || rpc!(p.orders, place_order_fenced, request.clone()),
            )
            .await?;
        }
        (Decision::Abort, Protocol::TwoPhaseCommit, Some(Prepared)) => {
            run.call(Step::forward(Participant::Orders, "abort"), finish, || {
                rpc!(
                    p.orders,
                    abort_order,
                    AbortOrderRequest {
                        txid: txid.clone(),
                        log_id: run.log_id(),
                    }
                )
            })
            .await?;
        }
        (Decision::Abort, Protocol::Saga, Some(Pending)) => {
            let request = CancelOrderRequest {
                saga_id: txid,
                order_id: txn.order_id.clone(),
            };
            run.call(
                Step::compensation(Participant::Orders, "cancel_order"),
                finish,
                || rpc!(p.orders, cancel_order, request.clone()),
            )
            .await?;
        }
        // The cancel of an undone lease purchase, lost: cancel again (its claims too).
        (Decision::Abort, Protocol::Lease, Some(Confirmed)) => {
            let request = CancelOrderFencedRequest {
                txid,
                order_id: txn.order_id.clone(),
                fencing_token: txn
                    .fencing_token
                    .and_then(|t| u64::try_from(t).ok())
                    .unwrap_or(0)
                    .max(1),
            };
            run.call(
                Step::compensation(Participant::Orders, "cancel_order_fenced"),
                finish,
                || rpc!(p.orders, cancel_order_fenced, request.clone()),
            )
            .await?;
        }
        (decision, protocol, status) => {
            warn!(txid = %txn.txid, ?decision, ?protocol, ?status,
                  "an order disagrees with its purchase's decision and no write fixes it");
            return Ok(());
        }
    }
    info!(txid = %txn.txid, state = txn.state.as_str(), "re-asserted an order its store had lost");
    Ok(())
}

/// Notes that a call to orders that began at `at` ended with an unknown outcome.
pub fn note_outage(driver: &Driver, at: Instant) {
    let mut noted = driver.orders_outage.since.lock().expect("outage lock");
    if noted.is_none() {
        *noted = Some(at);
    }
}
