use std::collections::HashMap;

use futures::future::join_all;
use proto::v1::*;
use tonic::Code;

use crate::common::*;

#[tokio::test]
async fn a_second_order_claiming_an_overlapping_seat_is_refused_naming_seat_and_holder() {
    let orders = Orders::start().await;
    let mut client = orders.client.clone();
    let first = client
        .create_order(create("saga-1", "order-1", &["A-1-1", "A-1-2"]))
        .await
        .expect("the first order claims its seats")
        .into_inner();
    assert_eq!(
        first.order.as_ref().map(|o| o.status()),
        Some(OrderStatus::Pending)
    );
    assert_eq!(first.barrier(), BarrierOutcome::Applied);
    let before = orders.snapshot().await;

    let status = client
        .create_order(create("saga-2", "order-2", &["A-1-2", "A-1-3"]))
        .await
        .expect_err("the overlapping order is refused");
    let (code, reason, metadata) = details(&status);
    assert_eq!(
        (code, reason.as_str()),
        (Code::FailedPrecondition, "SEAT_TAKEN")
    );
    assert_eq!(metadata["seats"], "A-1-2");
    assert_eq!(metadata["order_id"], "order-1");
    assert!(status.message().contains("A-1-2") && status.message().contains("order-1"));
    assert_eq!(
        orders.snapshot().await,
        before,
        "the refused order wrote nothing"
    );

    // Once order-1 is cancelled its claims are released and the seat can be claimed.
    client
        .cancel_order(CancelOrderRequest {
            saga_id: "saga-1".into(),
            order_id: "order-1".into(),
        })
        .await
        .expect("cancelled");
    assert_eq!(
        orders.claim("evt", "A-1-2").await,
        Some(("order-1".into(), "RELEASED".into()))
    );
    client
        .create_order(create("saga-2", "order-2", &["A-1-2", "A-1-3"]))
        .await
        .expect("the seat is free again");
    assert_eq!(
        orders.claim("evt", "A-1-2").await,
        Some(("order-2".into(), "LIVE".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_orders_for_twenty_seats_leave_at_most_one_live_claim_each() {
    let orders = Orders::start().await;
    let attempts = (0..200).map(|i| {
        let mut client = orders.client.clone();
        // A fixed spread of seats, so that every seat is wanted by several orders.
        let seat = format!("S-1-{}", (i * 7) % 20 + 1);
        async move {
            let result = client
                .create_order(create(
                    &format!("saga-{i}"),
                    &format!("order-{i}"),
                    &[&seat],
                ))
                .await;
            (seat, format!("order-{i}"), result)
        }
    });
    let results = join_all(attempts).await;
    let mut winners: HashMap<String, String> = HashMap::new();
    for (seat, order, result) in results {
        match result {
            Ok(_) => assert!(
                winners.insert(seat.clone(), order).is_none(),
                "{seat} won twice"
            ),
            Err(status) => {
                let (code, reason, metadata) = details(&status);
                assert!(
                    (code == Code::FailedPrecondition && reason == "SEAT_TAKEN")
                        || code == Code::Aborted,
                    "{status:?}"
                );
                if code == Code::FailedPrecondition {
                    assert_eq!(metadata["seats"], seat);
                }
            }
        }
    }
    assert_eq!(winners.len(), 20, "every seat was sold to someone");
    for seat in 1..=20 {
        let seat = format!("S-1-{seat}");
        let (order, status) = orders.claim("evt", &seat).await.expect("a claim item");
        assert_eq!(status, "LIVE");
        assert_eq!(
            Some(&order),
            winners.get(&seat),
            "the claim names the winner"
        );
    }
}
