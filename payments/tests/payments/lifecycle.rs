use std::time::Duration;

use proto::v1::*;
use tonic::Code;

use crate::common::*;

#[tokio::test]
async fn captures_voids_and_refunds_beyond_what_the_state_allows_are_refused() {
    let payments = Payments::start(&[]).await;
    let mut client = payments.client.clone();
    let payment = payments
        .authorize("auth", 8_000, "tok_mastercard")
        .await
        .expect("authorized");
    assert_eq!(
        (payment.card_brand.as_str(), payment.card_last4.as_str()),
        ("mastercard", "4444")
    );

    let status = client
        .capture(CaptureRequest {
            payment_id: payment.payment_id.clone(),
            amount_cents: 8_001,
            idempotency_key: "cap-too-much".into(),
        })
        .await
        .expect_err("capture above the authorization");
    let (code, reason, _) = details(&status);
    assert_eq!(
        (code, reason.as_str()),
        (Code::FailedPrecondition, "AMOUNT_EXCEEDED")
    );
    payments.assert_ledger_balances().await;

    let captured = client
        .capture(CaptureRequest {
            payment_id: payment.payment_id.clone(),
            amount_cents: 6_000,
            idempotency_key: "cap".into(),
        })
        .await
        .expect("partial capture")
        .into_inner()
        .payment
        .expect("payment");
    assert_eq!(
        (captured.state(), captured.captured_cents),
        (PaymentState::Captured, 6_000)
    );
    payments.assert_ledger_balances().await;

    let status = client
        .void(VoidRequest {
            payment_id: payment.payment_id.clone(),
            idempotency_key: "void-late".into(),
        })
        .await
        .expect_err("void after capture");
    let (code, reason, metadata) = details(&status);
    assert_eq!(
        (code, reason.as_str()),
        (Code::FailedPrecondition, "INVALID_STATE")
    );
    assert_eq!(metadata["state"], "CAPTURED");
    payments.assert_ledger_balances().await;

    let refund = |amount, key: &str| RefundRequest {
        payment_id: payment.payment_id.clone(),
        amount_cents: amount,
        idempotency_key: key.into(),
    };
    client
        .refund(refund(2_500, "ref-1"))
        .await
        .expect("partial refund");
    let status = client
        .refund(refund(3_501, "ref-2"))
        .await
        .expect_err("refund above what is left");
    assert_eq!(details(&status).1, "AMOUNT_EXCEEDED");
    let refunded = client
        .refund(refund(0, "ref-3"))
        .await
        .expect("refund the rest")
        .into_inner()
        .payment
        .expect("payment");
    assert_eq!(
        (refunded.state(), refunded.refunded_cents),
        (PaymentState::Refunded, 6_000)
    );
    payments.assert_ledger_balances().await;
    let revenue = payments
        .count("SELECT coalesce(sum(amount_cents), 0)::bigint FROM ledger_entries WHERE account = 'merchant_revenue'")
        .await;
    assert_eq!(revenue, 0);
}

#[tokio::test]
async fn an_authorization_past_its_deadline_is_voided_by_the_sweeper() {
    let payments = Payments::start(&[
        "--authorization-ttl-secs",
        "1",
        "--sweep-interval-ms",
        "100",
    ])
    .await;
    let payment = payments
        .authorize("old", 4_200, "tok_visa")
        .await
        .expect("authorized");
    assert_eq!(payment.state(), PaymentState::Authorized);
    let mut state = PaymentState::Authorized;
    for _ in 0..100 {
        state = payments
            .client
            .clone()
            .get_payment(GetPaymentRequest {
                payment_id: payment.payment_id.clone(),
            })
            .await
            .expect("read")
            .into_inner()
            .payment
            .expect("payment")
            .state();
        if state != PaymentState::Authorized {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, PaymentState::Expired);
    payments.assert_ledger_balances().await;
    let holds = payments
        .count("SELECT coalesce(sum(amount_cents), 0)::bigint FROM ledger_entries WHERE account = 'authorization_holds'")
        .await;
    assert_eq!(holds, 0, "the hold is released");
}

#[tokio::test]
async fn bad_input_is_invalid_argument_naming_the_field_and_writes_no_row() {
    let payments = Payments::start(&[]).await;
    let mut client = payments.client.clone();
    let before = payments.row_counts().await;
    for (request, field) in [
        (authorize("k1", 0, "tok_visa"), "amount_cents"),
        (authorize("k2", -100, "tok_visa"), "amount_cents"),
        (
            AuthorizeRequest {
                currency: "XXX".into(),
                ..authorize("k3", 100, "tok_visa")
            },
            "currency",
        ),
        (authorize("k4", 100, "4242424242424242"), "card_token"),
        (authorize("k5", 100, "tok_"), "card_token"),
        (authorize("k6", 100, "tok_unknown_card"), "card_token"),
        (authorize("", 100, "tok_visa"), "idempotency_key"),
    ] {
        let status = client.authorize(request).await.expect_err("refused");
        let (code, reason, metadata) = details(&status);
        assert_eq!(
            (code, reason.as_str()),
            (Code::InvalidArgument, "INVALID_FIELD"),
            "{status:?}"
        );
        assert_eq!(metadata["field"], field, "{status:?}");
    }
    let status = client
        .capture(CaptureRequest {
            payment_id: "pay_x".into(),
            amount_cents: -1,
            idempotency_key: "k7".into(),
        })
        .await
        .expect_err("refused");
    assert_eq!(details(&status).2["field"], "amount_cents");
    assert_eq!(payments.row_counts().await, before, "no row written");
}
