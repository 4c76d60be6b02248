use proto::v1::*;
use tonic::Code;

use crate::common::*;

fn prepare(txid: &str, card: &str) -> PreparePaymentRequest {
    PreparePaymentRequest {
        log_id: String::new(),
        txid: txid.into(),
        order_id: format!("order-{txid}"),
        amount_cents: 3_000,
        currency: "EUR".into(),
        card_token: card.into(),
    }
}

#[tokio::test]
async fn prepare_commit_and_abort_are_idempotent_per_txid_with_tombstones() {
    let payments = Payments::start(&[]).await;
    let mut client = payments.client.clone();

    let first = client
        .prepare_payment(prepare("tx-1", "tok_visa"))
        .await
        .expect("prepared")
        .into_inner();
    let again = client
        .prepare_payment(prepare("tx-1", "tok_visa"))
        .await
        .expect("again")
        .into_inner();
    assert_eq!(first.payment, again.payment);
    assert_eq!(payments.count("SELECT count(*) FROM payments").await, 1);
    let in_doubt = client
        .list_in_doubt_payments(ListInDoubtPaymentsRequest::default())
        .await
        .expect("listed")
        .into_inner()
        .transactions;
    assert_eq!(in_doubt.len(), 1);

    let commit = CommitPaymentRequest {
        log_id: String::new(),
        txid: "tx-1".into(),
    };
    let once = client
        .commit_payment(commit.clone())
        .await
        .expect("committed")
        .into_inner();
    assert!(!once.already_done);
    assert_eq!(
        once.payment.as_ref().map(|p| p.state()),
        Some(PaymentState::Captured)
    );
    let twice = client
        .commit_payment(commit)
        .await
        .expect("committed again")
        .into_inner();
    assert!(twice.already_done);
    assert_eq!(
        payments
            .count("SELECT count(*) FROM ledger_entries WHERE account = 'merchant_revenue'")
            .await,
        1,
        "one capture"
    );

    client
        .prepare_payment(prepare("tx-2", "tok_visa"))
        .await
        .expect("prepared");
    let aborted = client
        .abort_payment(AbortPaymentRequest {
            log_id: String::new(),
            txid: "tx-2".into(),
        })
        .await
        .expect("aborted")
        .into_inner();
    assert!(!aborted.tombstone && !aborted.already_done);
    let again = client
        .abort_payment(AbortPaymentRequest {
            log_id: String::new(),
            txid: "tx-2".into(),
        })
        .await
        .expect("aborted again")
        .into_inner();
    assert!(again.already_done);

    let tomb = client
        .abort_payment(AbortPaymentRequest {
            log_id: String::new(),
            txid: "tx-3".into(),
        })
        .await
        .expect("tombstone")
        .into_inner();
    assert!(tomb.tombstone);
    let counts = payments.row_counts().await;
    let status = client
        .prepare_payment(prepare("tx-3", "tok_visa"))
        .await
        .expect_err("a late prepare is refused");
    assert_eq!(details(&status).1, "TXN_ABORTED");
    assert_eq!(payments.row_counts().await, counts);

    let status = client
        .prepare_payment(prepare("tx-4", "tok_declined"))
        .await
        .expect_err("declined");
    assert_eq!(
        (status.code(), details(&status).1.as_str()),
        (Code::FailedPrecondition, "CARD_DECLINED")
    );
    payments.assert_ledger_balances().await;
}
