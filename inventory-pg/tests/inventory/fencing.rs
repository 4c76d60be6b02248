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

    // The old lease holder wakes up with token 5 and tries to sell: refused.
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
    assert_eq!(
        inventory.snapshot().await,
        before,
        "the stale sale changed nothing"
    );
    // Its undo of the sale it never made returns nothing and changes no seat; it leaves
    // only its purchase's barrier (a late sale of that purchase is refused).
    let undone = client
        .unsell_fenced(unsell("order-old", &["A-1-2", "A-1-3"], 5))
        .await
        .expect("an undo is never refused for a token")
        .into_inner();
    assert!(undone.seat_ids.is_empty(), "{undone:?}");
    let after_undo = inventory.snapshot().await;
    assert_eq!(
        after_undo
            .lines()
            .filter(|l| l.starts_with("seats:"))
            .collect::<Vec<_>>(),
        before
            .lines()
            .filter(|l| l.starts_with("seats:"))
            .collect::<Vec<_>>(),
        "the undo touched no seat"
    );
    assert!(after_undo.contains("saga_barrier:1:"), "{after_undo}");
    let before = after_undo;
    // Another purchase carrying the same token 7 (two holders of one token, after a
    // Redis restart lost the counter's last increments): refused, a token is one sale's.
    let status = client
        .sell_fenced(sell("order-twin", &["A-1-1"], 7))
        .await
        .expect_err("token 7 was order-new's");
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

    // The purchase's own undo returns its seats; they keep its token.
    let undone = client
        .unsell_fenced(unsell("order-new", &["A-1-1"], 7))
        .await
        .expect("undone")
        .into_inner();
    assert_eq!(undone.seat_ids, ids(&["A-1-1"]));
    let seat = inventory.seat("fence", "A-1-1").await;
    assert_eq!((seat.status.as_str(), seat.fencing_token), ("AVAILABLE", 7));
    // Token 7 stays used: only a newer lease may sell the seat again.
    let status = client
        .sell_fenced(sell("order-old", &["A-1-1"], 7))
        .await
        .expect_err("token 7 is used");
    assert_eq!(details(&status).1, "STALE_FENCING_TOKEN");
    assert_eq!(inventory.seat("fence", "A-1-1").await.status, "AVAILABLE");
    client
        .sell_fenced(sell("order-next", &["A-1-1"], 8))
        .await
        .expect("a newer lease sells it");
}

/// A lease undo touches only what its own purchase wrote. A sells S1 with token 1; A's
/// lease lapses; B leases S1 with token 2, its sale is refused (S1 is A's) but B never
/// hears it, so B undoes. B's undo must leave S1 — A's seat and A's token — alone, so
/// that A's own undo, when A aborts, still returns S1 to sale.
#[tokio::test]
async fn an_undo_returns_only_its_own_purchase_s_seats() {
    let inventory = Inventory::start().await;
    inventory.event("fence", 1, 4, 3_000).await;
    let mut client = inventory.client.clone();

    client
        .sell_fenced(sell("order-a", &["A-1-1"], 1))
        .await
        .expect("A sells S1 with token 1");
    let status = client
        .sell_fenced(sell("order-b", &["A-1-1"], 2))
        .await
        .expect_err("S1 is A's");
    assert_eq!(details(&status).1, "SEAT_TAKEN");
    let undone = client
        .unsell_fenced(unsell("order-b", &["A-1-1"], 2))
        .await
        .expect("B's undo is answered")
        .into_inner();
    assert!(
        undone.seat_ids.is_empty(),
        "nothing of B's to undo: {undone:?}"
    );
    let seat = inventory.seat("fence", "A-1-1").await;
    assert_eq!(
        (seat.status.as_str(), seat.fencing_token),
        ("SOLD", 1),
        "B's undo touched nothing of A's"
    );

    let undone = client
        .unsell_fenced(unsell("order-a", &["A-1-1"], 1))
        .await
        .expect("A's undo")
        .into_inner();
    assert_eq!(undone.seat_ids, ids(&["A-1-1"]));
    assert_eq!(inventory.seat("fence", "A-1-1").await.status, "AVAILABLE");
}

/// A lease sale that lands after its own purchase's undo is refused and changes nothing.
/// A coordinator paused with the sale in flight loses the purchase; the coordinator that
/// takes it over undoes it (nothing was sold yet) and the seat stays for sale; then the
/// paused one wakes and its sale arrives, with the newest token any seat has seen, so the
/// token alone cannot refuse it. The undo left a barrier for its purchase: the late sale
/// is TXN_ABORTED. (Found by the chaos lab, seed 5, pause-coordinator-past-ownership
/// under lease: a seat SOLD to an aborted purchase with no order.)
#[tokio::test]
async fn a_sale_that_arrives_after_its_purchase_was_undone_is_refused() {
    let inventory = Inventory::start().await;
    inventory.event("fence", 1, 4, 3_000).await;
    let mut client = inventory.client.clone();

    let undone = client
        .unsell_fenced(unsell("order-late", &["A-1-2"], 5))
        .await
        .expect("the takeover's undo is answered")
        .into_inner();
    assert!(undone.seat_ids.is_empty(), "nothing sold yet: {undone:?}");

    let status = client
        .sell_fenced(sell("order-late", &["A-1-2"], 5))
        .await
        .expect_err("the purchase was undone before its sale arrived");
    let (code, reason, metadata) = details(&status);
    assert_eq!(
        (code, reason.as_str()),
        (Code::FailedPrecondition, "TXN_ABORTED")
    );
    assert_eq!(metadata["txid"], "tx-order-late-5");
    let seat = inventory.seat("fence", "A-1-2").await;
    assert_eq!(
        (seat.status.as_str(), seat.order_id.as_deref()),
        ("AVAILABLE", None),
        "the late sale changed nothing"
    );

    // Another purchase still buys the seat.
    client
        .sell_fenced(sell("order-next", &["A-1-2"], 6))
        .await
        .expect("a live purchase buys it");
    assert_eq!(inventory.seat("fence", "A-1-2").await.status, "SOLD");
}
