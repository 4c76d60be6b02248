use proto::v1::*;
use tonic::Code;

use crate::common::*;

#[tokio::test]
async fn the_same_key_and_parameters_give_one_payment_and_the_same_response() {
    let payments = Payments::start(&[]).await;
    let mut client = payments.client.clone();
    let first = client
        .authorize(authorize("key-1", 9_900, "tok_visa"))
        .await
        .expect("authorized")
        .into_inner();
    assert!(!first.replayed);
    let second = client
        .authorize(authorize("key-1", 9_900, "tok_visa"))
        .await
        .expect("replayed")
        .into_inner();
    assert!(second.replayed);
    assert_eq!(second.payment, first.payment, "the same response");
    assert_eq!(payments.count("SELECT count(*) FROM payments").await, 1);
    let counts = payments.row_counts().await;

    let status = client
        .authorize(authorize("key-1", 10_000, "tok_visa"))
        .await
        .expect_err("the same key with another amount is refused");
    let (code, reason, metadata) = details(&status);
    assert_eq!(
        (code, reason.as_str()),
        (Code::FailedPrecondition, "IDEMPOTENCY_KEY_REUSED")
    );
    assert_eq!(metadata["idempotency_key"], "key-1");
    assert_eq!(payments.row_counts().await, counts, "nothing charged");
    payments.assert_ledger_balances().await;
}

#[tokio::test]
async fn a_lost_capture_response_then_a_retry_captures_exactly_once() {
    let payments = Payments::start(&[]).await;
    let mut client = payments.client.clone();
    let payment = payments
        .authorize("auth-lost", 5_000, "tok_visa")
        .await
        .expect("authorized");

    payments
        .set_faults(FaultSettings {
            lose_response_probability: 1.0,
            ..Default::default()
        })
        .await;
    let capture = CaptureRequest {
        payment_id: payment.payment_id.clone(),
        amount_cents: 0,
        idempotency_key: "capture-lost".into(),
    };
    let status = client
        .capture(capture.clone())
        .await
        .expect_err("the response is lost");
    assert_eq!(status.code(), Code::Unavailable);
    payments.set_faults(FaultSettings::default()).await;

    let retried = client
        .capture(capture)
        .await
        .expect("the retry succeeds")
        .into_inner();
    assert!(retried.replayed, "the retry replays the committed capture");
    let captured = retried.payment.expect("payment");
    assert_eq!(
        (captured.state(), captured.captured_cents),
        (PaymentState::Captured, 5_000)
    );
    let captures = payments
        .count(
            "SELECT count(*) FROM ledger_entries
              WHERE account = 'merchant_revenue' AND amount_cents > 0",
        )
        .await;
    assert_eq!(captures, 1, "exactly one capture in the ledger");
    payments.assert_ledger_balances().await;
}

/// The compensation of an Authorize, by the Authorize's key: it voids what the key
/// authorized; for a key that never authorized it records the compensation, and the
/// Authorize arriving after it is refused (STEP_COMPENSATED) and holds nothing. A second
/// compensation answers the same.
#[tokio::test]
async fn an_authorize_after_its_compensation_is_refused_and_holds_nothing() {
    let payments = Payments::start(&[]).await;
    let cancel = |key: &str| CancelAuthorizationRequest {
        authorize_idempotency_key: key.into(),
    };
    // Compensated before it arrives.
    for _ in 0..2 {
        let answer = payments
            .client
            .clone()
            .cancel_authorization(cancel("late"))
            .await
            .expect("compensated")
            .into_inner();
        assert!(
            answer.null_compensation && answer.payment.is_none(),
            "{answer:?}"
        );
    }
    let status = payments
        .authorize("late", 1_000, "tok_visa")
        .await
        .expect_err("arrives after its compensation");
    let (code, reason, _) = details(&status);
    assert_eq!(
        (code, reason.as_str()),
        (Code::FailedPrecondition, "STEP_COMPENSATED")
    );
    assert_eq!(payments.count("SELECT count(*) FROM payments").await, 0);

    // Compensated after it ran: its authorization is voided.
    let authorized = payments
        .authorize("early", 1_000, "tok_visa")
        .await
        .expect("authorized");
    let answer = payments
        .client
        .clone()
        .cancel_authorization(cancel("early"))
        .await
        .expect("compensated")
        .into_inner();
    assert!(!answer.null_compensation);
    let voided = answer.payment.expect("its authorization");
    assert_eq!(
        (voided.state(), voided.payment_id),
        (PaymentState::Voided, authorized.payment_id)
    );
    payments.assert_ledger_balances().await;
}
