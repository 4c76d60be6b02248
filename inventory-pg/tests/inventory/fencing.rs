use proto::v1::*;
use tonic::Code;

use crate::common::*;

fn sell(order_id: &str, seats: &[&str], token: u64) -> SellFencedRequest {
    SellFencedRequest {
        txid: format!("tx-{order_id}-{token}"),
        event_id: "fence".into(),
        order_id: order_id.into(),
        seat_ids: ids(seats),
        fencing_token: token,
    }
}

fn unsell(order_id: &str, seats: &[&str], token: u64) -> UnsellFencedRequest {
    UnsellFencedRequest {
        txid: format!("tx-{order_id}-{token}"),
        event_id: "fence".into(),
        order_id: order_id.into(),
        seat_ids: ids(seats),
        fencing_token: token,
    }
}

#[tokio::test]
async fn a_write_with_a_stale_fencing_token_is_refused_and_changes_nothing() {
    let inventory = Inventory::start().await;
    inventory.event("fence", 1, 4, 3_000).await;
    let mut client = inventory.client.clone();

    let sold = client
        .sell_fenced(sell("order-new", &["A-1-1", "A-1-2"], 7))
        .await
        .expect("sold with token 7")
        .into_inner();
    assert_eq!(sold.total_cents, 6_000);
    let before = inventory.snapshot().await;

    // The old lease holder wakes up with token 5 and tries to sell and to undo.
    let status = client
        .sell_fenced(sell("order-old", &["A-1-2", "A-1-3"], 5))
        .await
        .expect_err("a stale sale is refused");
    let (code, reason, metadata) = details(&status);
    assert_eq!(
        (code, reason.as_str()),
        (Code::FailedPrecondition, "STALE_FENCING_TOKEN")
    );
    assert_eq!(metadata["seats"], "A-1-2");
    assert_eq!(metadata["seen_fencing_token"], "7");
    let status = client
        .unsell_fenced(unsell("order-new", &["A-1-1"], 6))
        .await
        .expect_err("a stale undo is refused");
    assert_eq!(details(&status).1, "STALE_FENCING_TOKEN");
    assert_eq!(
        inventory.snapshot().await,
        before,
        "the stale writes changed nothing"
    );

    // A retry with the same token is idempotent.
    client
        .sell_fenced(sell("order-new", &["A-1-1", "A-1-2"], 7))
        .await
        .expect("the same sale again succeeds");
    assert_eq!(inventory.snapshot().await, before);

    // A newer token may undo; the seat remembers the newest token afterwards.
    let undone = client
        .unsell_fenced(unsell("order-new", &["A-1-1"], 8))
        .await
        .expect("undone with token 8")
        .into_inner();
    assert_eq!(undone.seat_ids, ids(&["A-1-1"]));
    let seat = inventory.seat("fence", "A-1-1").await;
    assert_eq!((seat.status.as_str(), seat.fencing_token), ("AVAILABLE", 8));
    let status = client
        .sell_fenced(sell("order-old", &["A-1-1"], 7))
        .await
        .expect_err("token 7 is stale now");
    assert_eq!(details(&status).1, "STALE_FENCING_TOKEN");
    assert_eq!(inventory.seat("fence", "A-1-1").await.status, "AVAILABLE");
}
