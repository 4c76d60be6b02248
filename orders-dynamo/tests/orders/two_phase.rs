use proto::v1::*;
use tonic::Code;

use crate::common::*;

#[tokio::test]
async fn a_repeated_prepare_changes_nothing_and_commit_and_abort_are_idempotent() {
    let orders = Orders::start().await;
    let mut client = orders.client.clone();

    let first = client
        .prepare_order(prepare("tx-1", "order-tx-1", &["B-1-1", "B-1-2"]))
        .await
        .expect("prepared")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(first.status(), OrderStatus::Prepared);
    let before = orders.snapshot().await;
    let again = client
        .prepare_order(prepare("tx-1", "order-tx-1", &["B-1-1", "B-1-2"]))
        .await
        .expect("a repeated prepare is accepted")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(again, first);
    assert_eq!(
        orders.snapshot().await,
        before,
        "the repeated prepare changed nothing"
    );
    let in_doubt = client
        .list_in_doubt_orders(ListInDoubtOrdersRequest::default())
        .await
        .expect("listed")
        .into_inner()
        .transactions;
    assert_eq!(
        in_doubt.iter().map(|t| t.txid.as_str()).collect::<Vec<_>>(),
        ["tx-1"]
    );

    let commit = CommitOrderRequest {
        log_id: String::new(),
        txid: "tx-1".into(),
        payment_id: "pay-1".into(),
    };
    let committed = client
        .commit_order(commit.clone())
        .await
        .expect("committed")
        .into_inner();
    assert!(!committed.already_done);
    let order = committed.order.expect("order");
    assert_eq!(order.status(), OrderStatus::Confirmed);
    assert_eq!(order.tickets.len(), 2);
    assert_eq!(
        in_doubt_txids(&mut client).await,
        Vec::<String>::new(),
        "a committed branch is no longer in doubt"
    );
    let after_commit = orders.snapshot().await;
    let twice = client
        .commit_order(commit)
        .await
        .expect("committed again")
        .into_inner();
    assert!(twice.already_done);
    assert_eq!(twice.order.expect("order").tickets, order.tickets);
    assert_eq!(
        orders.snapshot().await,
        after_commit,
        "the second commit changed nothing"
    );

    let status = client
        .abort_order(AbortOrderRequest {
            log_id: String::new(),
            txid: "tx-1".into(),
        })
        .await
        .expect_err("a committed txid cannot abort");
    assert_eq!(status.code(), Code::FailedPrecondition);

    // Prepare, abort twice: one effect, claims released.
    client
        .prepare_order(prepare("tx-2", "order-tx-2", &["B-2-1"]))
        .await
        .expect("prepared");
    assert_eq!(in_doubt_txids(&mut client).await, ["tx-2"]);
    let aborted = client
        .abort_order(AbortOrderRequest {
            log_id: String::new(),
            txid: "tx-2".into(),
        })
        .await
        .expect("aborted")
        .into_inner();
    assert!(!aborted.already_done && !aborted.tombstone);
    assert_eq!(
        in_doubt_txids(&mut client).await,
        Vec::<String>::new(),
        "an aborted branch is no longer in doubt"
    );
    let after_abort = orders.snapshot().await;
    let again = client
        .abort_order(AbortOrderRequest {
            log_id: String::new(),
            txid: "tx-2".into(),
        })
        .await
        .expect("aborted again")
        .into_inner();
    assert!(again.already_done);
    assert_eq!(orders.snapshot().await, after_abort);
    assert_eq!(
        orders.claim("evt", "B-2-1").await,
        Some(("order-tx-2".into(), "RELEASED".into()))
    );
    let order = orders
        .item("ORDER#order-tx-2", "ORDER")
        .await
        .expect("order item");
    assert_eq!(text(&order, "status"), "ORDER_STATUS_CANCELLED");
}

#[tokio::test]
async fn a_prepare_after_its_abort_is_refused() {
    let orders = Orders::start().await;
    let mut client = orders.client.clone();
    let aborted = client
        .abort_order(AbortOrderRequest {
            log_id: String::new(),
            txid: "tx-late".into(),
        })
        .await
        .expect("an abort of an unknown txid succeeds")
        .into_inner();
    assert!(aborted.tombstone);
    let before = orders.snapshot().await;

    let status = client
        .prepare_order(prepare("tx-late", "order-late", &["C-1-1"]))
        .await
        .expect_err("the late prepare is refused");
    let (code, reason, metadata) = details(&status);
    assert_eq!(
        (code, reason.as_str()),
        (Code::FailedPrecondition, "TXN_ABORTED")
    );
    assert_eq!(metadata["txid"], "tx-late");
    assert_eq!(
        orders.snapshot().await,
        before,
        "the refused prepare wrote nothing"
    );
}

/// The txids ListInDoubtOrders names, in its order.
async fn in_doubt_txids(
    client: &mut proto::v1::orders_service_client::OrdersServiceClient<
        server_kit::outgoing::MeshChannel,
    >,
) -> Vec<String> {
    client
        .list_in_doubt_orders(ListInDoubtOrdersRequest::default())
        .await
        .expect("listed")
        .into_inner()
        .transactions
        .into_iter()
        .map(|t| t.txid)
        .collect()
}
