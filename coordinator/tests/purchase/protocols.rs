use std::time::Duration;

use futures::future::join_all;
use local_mesh::MeshOptions;
use tonic::Code;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_two_seat_purchase_commits_everywhere_under_each_protocol() {
    let world = World::start(MeshOptions::default()).await;
    for protocol in PROTOCOLS {
        let event = format!("two-{}", short(protocol));
        world.event(&event, 1, 4, 4_500).await;
        let bought = world
            .buy(
                protocol,
                &event,
                &["A-1-1", "A-1-2"],
                "tok_visa",
                &format!("key-{event}"),
            )
            .await
            .unwrap_or_else(|status| panic!("{protocol:?}: {status:?}"));
        assert_eq!(bought.protocol(), protocol);
        assert_eq!(bought.seats.len(), 2);
        assert_eq!(bought.tickets.len(), 2, "{protocol:?}: two tickets");
        assert_eq!(bought.amount_cents, 9_000);
        assert!(!bought.phases.is_empty());

        let seats = world.seats(&event).await;
        for seat in ["A-1-1", "A-1-2"] {
            assert_eq!(
                seats[seat],
                ("SOLD".to_owned(), Some(bought.order_id.clone())),
                "{protocol:?} {seat}"
            );
        }
        let orders = world.orders(&event).await;
        assert_eq!(orders.len(), 1);
        let order = &orders[&bought.order_id];
        assert_eq!(
            (order.status.as_str(), order.tickets),
            ("ORDER_STATUS_CONFIRMED", 2)
        );
        let payments = world.payments().await;
        assert_eq!(
            payments[&bought.order_id],
            vec![("CAPTURED".to_owned(), 9_000, 9_000)],
            "{protocol:?}: one captured payment of the right amount"
        );
        world.assert_invariants(&event, 4).await;
        assert_eq!(
            world.outbox(&event).await,
            vec![bought.txid.clone()],
            "{protocol:?}: the commit recorded one confirmation"
        );

        // The same key answers the same purchase again.
        let again = world
            .buy(
                protocol,
                &event,
                &["A-1-1", "A-1-2"],
                "tok_visa",
                &format!("key-{event}"),
            )
            .await
            .expect("replayed");
        assert!(again.replayed);
        assert_eq!(
            (again.txid.as_str(), again.order_id.as_str()),
            (bought.txid.as_str(), bought.order_id.as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_declined_card_leaves_nothing_behind_under_each_protocol() {
    let world = World::start(MeshOptions::default()).await;
    for protocol in PROTOCOLS {
        let event = format!("declined-{}", short(protocol));
        world.event(&event, 1, 4, 3_000).await;
        let status = world
            .buy(
                protocol,
                &event,
                &["A-1-3", "A-1-4"],
                "tok_declined",
                &format!("key-{event}"),
            )
            .await
            .expect_err("declined");
        let (code, reason, metadata) = reason(&status);
        assert_eq!(
            (code, reason.as_str()),
            (Code::FailedPrecondition, "CARD_DECLINED"),
            "{protocol:?}: {status:?}"
        );
        assert_eq!(metadata["decline_code"], "card_declined");
        assert!(metadata.contains_key("txid"));

        let seats = world.seats(&event).await;
        assert!(
            seats
                .values()
                .all(|(status, order)| status == "AVAILABLE" && order.is_none()),
            "{protocol:?}: {seats:?}"
        );
        let orders = world.orders(&event).await;
        assert!(
            orders
                .values()
                .all(|o| o.status == "ORDER_STATUS_CANCELLED"),
            "{protocol:?}: the order is cancelled or absent: {orders:?}"
        );
        let payments = world.payments().await;
        for order_id in orders.keys() {
            for (state, _, _) in payments.get(order_id).into_iter().flatten() {
                assert!(
                    state == "DECLINED" || state == "VOIDED",
                    "{protocol:?}: the authorization is voided or never made, got {state}"
                );
            }
        }
        world.assert_invariants(&event, 4).await;
        assert!(
            world.outbox(&event).await.is_empty(),
            "{protocol:?}: an aborted purchase is confirmed to nobody"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_purchases_of_ten_seats_sell_exactly_ten_under_each_protocol() {
    let world = World::start(MeshOptions::default()).await;
    for protocol in PROTOCOLS {
        let event = format!("rush-{}", short(protocol));
        world.event(&event, 1, 10, 2_000).await;
        let attempts = (0..200).map(|i| {
            let world = &world;
            let event = event.clone();
            async move {
                let seat = format!("A-1-{}", i % 10 + 1);
                world
                    .buy(
                        protocol,
                        &event,
                        &[&seat],
                        "tok_visa",
                        &format!("{event}-fan-{i}"),
                    )
                    .await
            }
        });
        let results = join_all(attempts).await;
        let sold = results.iter().filter(|r| r.is_ok()).count();
        for status in results.iter().filter_map(|r| r.as_ref().err()) {
            let (code, reason, _) = reason(status);
            assert!(
                matches!(code, Code::FailedPrecondition | Code::Aborted)
                    && matches!(
                        reason.as_str(),
                        "SEAT_TAKEN" | "SOLD_OUT" | "STALE_FENCING_TOKEN" | "HOLD_LOST"
                    ),
                "{protocol:?}: a refusal, not an error: {status:?}"
            );
        }
        assert_eq!(sold, 10, "{protocol:?}: exactly ten purchases succeed");
        world.settle().await;
        world.assert_invariants(&event, 10).await;
        let seats = world.seats(&event).await;
        assert!(
            seats.values().all(|(status, _)| status == "SOLD"),
            "{protocol:?}: all ten sold"
        );
    }
}

/// An Authorize that reaches payments after its compensation ran is refused, so no money
/// stays held for an aborted purchase (the saga's barrier, for payments too). The card
/// network takes 1.5 s; the coordinator waits 500 ms, once: the authorization's outcome
/// is unknown, the purchase is compensated while the Authorize is still at the network,
/// and the Authorize arrives after its compensation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_authorization_landing_after_its_compensation_is_refused_under_saga_and_lease() {
    let world = World::start(MeshOptions {
        coordinator_args: vec!["--call-timeout-ms", "500", "--forward-attempts", "1"],
        ..MeshOptions::default()
    })
    .await;
    world.slow_card_network(Duration::from_millis(1_500)).await;
    for (sent, protocol) in [proto::v1::Protocol::Saga, proto::v1::Protocol::Lease]
        .into_iter()
        .enumerate()
    {
        let p = short(protocol);
        let event = format!("late-auth-{p}");
        world.event(&event, 1, 2, 2_000).await;
        let status = world
            .coordinator
            .clone()
            .purchase(purchase(
                protocol,
                &event,
                &["A-1-1"],
                "tok_visa",
                &format!("late-{p}"),
            ))
            .await
            .expect_err("the authorization's outcome was unknown: aborted");
        assert_eq!(
            reason(&status).1,
            "PARTICIPANT_UNAVAILABLE",
            "{p}: {status:?}"
        );
        // Once payments has ended the late Authorize (its caller long gone), no money may
        // be held.
        local_mesh::eventually(
            "the late Authorize ended",
            Duration::from_secs(30),
            || async {
                world
                    .mesh
                    .payments
                    .metric_total("ticketdrop_payments_authorizations_total")
                    .await
                    .is_ok_and(|ended| ended > sent as u64)
            },
        )
        .await;
        let held: Vec<(String, i64, i64)> = world
            .payments()
            .await
            .into_values()
            .flatten()
            .filter(|(state, _, _)| state == "AUTHORIZED")
            .collect();
        assert!(
            held.is_empty(),
            "{p}: money held for an aborted purchase: {held:?}"
        );
    }
}
