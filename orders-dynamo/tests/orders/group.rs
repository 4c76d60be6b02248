//! Group commit: many purchases at once share TransactWriteItems, and a purchase whose
//! seat is taken fails alone, with the answer it would have had on its own, while the
//! purchases grouped with it are written.

use futures::future::join_all;
use proto::v1::*;
use tonic::Code;

use crate::common::*;

#[tokio::test]
async fn concurrent_orders_are_written_together_and_a_taken_seat_fails_only_its_own_order() {
    let orders = Orders::start().await;
    // Five seats already belong to an earlier order.
    let taken = ["T-1", "T-2", "T-3", "T-4", "T-5"];
    orders
        .client
        .clone()
        .create_order(create("saga-holder", "order-holder", &taken))
        .await
        .expect("the holder claims its seats");

    // Sixty orders at once: every twelfth wants a taken seat, the rest a free one each.
    let requests: Vec<(String, String, bool)> = (0..60)
        .map(|i| {
            if i % 12 == 0 {
                (format!("order-{i}"), taken[i / 12].to_owned(), true)
            } else {
                (format!("order-{i}"), format!("F-{i}"), false)
            }
        })
        .collect();
    let answers = join_all(requests.iter().map(|(order, seat, _)| {
        let mut client = orders.client.clone();
        let request = create(&format!("saga-{order}"), order, &[seat.as_str()]);
        async move { client.create_order(request).await }
    }))
    .await;

    for ((order, seat, is_taken), answer) in requests.iter().zip(answers) {
        if *is_taken {
            let status = answer.expect_err("a taken seat is refused");
            let (code, reason, metadata) = details(&status);
            assert_eq!(
                (code, reason.as_str()),
                (Code::FailedPrecondition, "SEAT_TAKEN")
            );
            assert_eq!(metadata["seats"], *seat, "{order} names its own seat");
            assert_eq!(metadata["order_id"], "order-holder");
            assert!(
                orders
                    .item(&format!("ORDER#{order}"), "ORDER")
                    .await
                    .is_none(),
                "{order} wrote nothing"
            );
            assert_eq!(
                orders.claim("evt", seat).await,
                Some(("order-holder".into(), "LIVE".into())),
                "{seat} still belongs to its holder"
            );
        } else {
            let order_answer = answer
                .unwrap_or_else(|s| panic!("{order} on a free seat is written: {s:?}"))
                .into_inner();
            assert_eq!(order_answer.barrier(), BarrierOutcome::Applied);
            assert_eq!(
                orders.claim("evt", seat).await,
                Some((order.clone(), "LIVE".into())),
                "{order} holds {seat}"
            );
        }
    }

    // Two orders for the same seat at once never share a transaction: exactly one wins.
    let rivals = join_all((0..2).map(|i| {
        let mut client = orders.client.clone();
        let request = create(&format!("saga-rival-{i}"), &format!("rival-{i}"), &["R-1"]);
        async move { client.create_order(request).await }
    }))
    .await;
    let won: Vec<_> = rivals.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(won.len(), 1, "one rival gets R-1: {rivals:?}");
    let lost = rivals
        .iter()
        .find_map(|r| r.as_ref().err())
        .expect("the other rival is refused");
    assert_eq!(details(lost).1, "SEAT_TAKEN");
}
