use local_mesh::PrivateDynamo;
use proto::v1::*;

use crate::common::*;

#[tokio::test]
async fn orders_claims_and_prepared_items_survive_a_sigkill_of_dynamodb_local() {
    let mut dynamo = tokio::task::spawn_blocking(PrivateDynamo::start)
        .await
        .expect("joins")
        .expect("DynamoDB Local starts");
    let endpoint = dynamo.endpoint();
    let orders = Orders::start_on(&endpoint).await;
    let mut client = orders.client.clone();

    client
        .prepare_order(prepare("tx-keep", "order-kept", &["D-1-1", "D-1-2"]))
        .await
        .expect("prepared");
    client
        .commit_order(CommitOrderRequest {
            log_id: String::new(),
            txid: "tx-keep".into(),
            payment_id: "pay".into(),
        })
        .await
        .expect("committed");
    client
        .prepare_order(prepare("tx-doubt", "order-doubt", &["D-2-1"]))
        .await
        .expect("prepared");
    let before = orders.snapshot().await;
    assert!(!before.is_empty());

    dynamo = tokio::task::spawn_blocking(move || {
        dynamo
            .restart()
            .expect("DynamoDB Local SIGKILLed and restarted");
        dynamo
    })
    .await
    .expect("joins");

    assert_eq!(orders.snapshot().await, before, "every item is still there");
    let kept = orders
        .item("ORDER#order-kept", "ORDER")
        .await
        .expect("order");
    assert_eq!(text(&kept, "status"), "ORDER_STATUS_CONFIRMED");
    assert_eq!(
        orders.claim("evt", "D-1-1").await,
        Some(("order-kept".into(), "LIVE".into()))
    );
    let doubt = orders
        .item("TXN#tx-doubt", "PARTICIPANT")
        .await
        .expect("participant");
    assert_eq!(text(&doubt, "txn_state"), "PREPARED");
    // The service, which kept running, serves from the restarted database.
    let in_doubt = client
        .list_in_doubt_orders(ListInDoubtOrdersRequest::default())
        .await
        .expect("listed")
        .into_inner()
        .transactions;
    assert_eq!(in_doubt.len(), 1);
    drop(orders);
    drop(dynamo);
}
