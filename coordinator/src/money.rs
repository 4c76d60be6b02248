//! The payment calls the saga and the lease protocol both make. Idempotency keys derive
//! from the txid and the step, so a retried or recovered step never charges twice.

use proto::v1::*;

use crate::driver::{CallError, Run, Step};
use crate::log::TxnRecord;
use crate::rpc;

/// The idempotency key of one payment step of a purchase.
pub fn key(txid: &str, step: &str) -> String {
    format!("{txid}:{step}")
}

/// Authorizes `amount_cents` on the purchase's card.
pub async fn authorize(
    run: &Run,
    txn: &TxnRecord,
    amount_cents: i64,
    currency: &str,
) -> Result<Payment, CallError> {
    let p = &run.driver.participants;
    let request = AuthorizeRequest {
        order_id: txn.order_id.clone(),
        amount_cents,
        currency: currency.to_owned(),
        card_token: txn.purchase.card_token.clone(),
        idempotency_key: key(&run.txid, "authorize"),
    };
    run.call(
        Step::forward(Participant::Payments, "authorize"),
        run.driver.policies.forward,
        || rpc!(p.payments, authorize, request.clone()),
    )
    .await
    .map(|answer| answer.payment.unwrap_or_default())
}

/// Captures the whole authorization.
pub async fn capture(run: &Run, payment_id: &str) -> Result<(), CallError> {
    let p = &run.driver.participants;
    let request = CaptureRequest {
        payment_id: payment_id.to_owned(),
        amount_cents: 0,
        idempotency_key: key(&run.txid, "capture"),
    };
    run.call(
        Step::forward(Participant::Payments, "capture"),
        run.driver.policies.forward,
        || rpc!(p.payments, capture, request.clone()),
    )
    .await
    .map(drop)
}

/// Gives back whatever the order's payments hold: first the compensation of the
/// purchase's Authorize, by its key — it voids what the key authorized, or, when the
/// Authorize has not arrived (its answer was lost on the way out), records the
/// compensation so that the Authorize is refused when it does arrive (the barrier); then
/// every payment of the order is voided or refunded, looked up by order, because an
/// Authorize whose answer was lost may have made a payment whose id the coordinator
/// never heard.
pub async fn release(run: &Run, order_id: &str) -> Result<(), CallError> {
    let p = &run.driver.participants;
    let finish = run.driver.policies.finish;
    let cancel = CancelAuthorizationRequest {
        authorize_idempotency_key: key(&run.txid, "authorize"),
    };
    run.call(
        Step::compensation(Participant::Payments, "cancel_authorization"),
        finish,
        || rpc!(p.payments, cancel_authorization, cancel.clone()),
    )
    .await?;
    let payments = run
        .call(
            Step::compensation(Participant::Payments, "list_payments"),
            finish,
            || {
                rpc!(
                    p.payments,
                    list_by_order,
                    ListByOrderRequest {
                        order_id: order_id.to_owned(),
                    }
                )
            },
        )
        .await?
        .payments;
    for payment in payments {
        match payment.state() {
            PaymentState::Authorized => {
                let request = VoidRequest {
                    payment_id: payment.payment_id.clone(),
                    idempotency_key: key(&run.txid, &format!("void:{}", payment.payment_id)),
                };
                run.call(
                    Step::compensation(Participant::Payments, "void"),
                    finish,
                    || rpc!(p.payments, void, request.clone()),
                )
                .await?;
            }
            PaymentState::Captured => {
                let request = RefundRequest {
                    payment_id: payment.payment_id.clone(),
                    amount_cents: 0,
                    idempotency_key: key(&run.txid, &format!("refund:{}", payment.payment_id)),
                };
                run.call(
                    Step::compensation(Participant::Payments, "refund"),
                    finish,
                    || rpc!(p.payments, refund, request.clone()),
                )
                .await?;
            }
            _ => {}
        }
    }
    Ok(())
}
