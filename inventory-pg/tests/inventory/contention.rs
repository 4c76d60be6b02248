use std::collections::{HashMap, HashSet};

use futures::future::join_all;
use proto::v1::*;
use tonic::Code;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_concurrent_holds_of_one_seat_each_hold_every_seat_exactly_once() {
    let inventory = Inventory::start().await;
    inventory.event("contention", 10, 10, 5_000).await;
    let seats: Vec<String> = (1..=10)
        .flat_map(|row| (1..=10).map(move |n| format!("A-{row}-{n}")))
        .collect();
    assert_eq!(seats.len(), 100);

    let attempts = (0..1_000).map(|i| {
        let mut client = inventory.client.clone();
        let seat = seats[i % seats.len()].clone();
        async move {
            let request = hold(&format!("saga-{i}"), "contention", &[&seat], 600);
            (format!("saga-{i}"), seat, client.hold_seats(request).await)
        }
    });
    let results = join_all(attempts).await;

    let mut winners: HashMap<String, String> = HashMap::new(); // seat -> saga
    let mut refused = 0;
    for (saga, seat, result) in results {
        match result {
            Ok(response) => {
                let response = response.into_inner();
                assert_eq!(response.seats.len(), 1);
                assert_eq!(response.seats[0].seat_id, seat);
                assert!(
                    winners.insert(seat.clone(), saga).is_none(),
                    "{seat} held twice"
                );
            }
            Err(status) => {
                let (code, reason, metadata) = details(&status);
                assert_eq!(code, Code::FailedPrecondition, "{status:?}");
                assert_eq!(reason, "SEAT_TAKEN");
                assert_eq!(metadata["seats"], seat);
                refused += 1;
            }
        }
    }
    assert_eq!(winners.len(), 100, "exactly one hold per seat");
    assert_eq!(refused, 900);

    // The database agrees with the answers, seat by seat.
    let rows = inventory
        .sql()
        .await
        .query(
            "SELECT seat_id, status, holder FROM seats WHERE event_id = 'contention'",
            &[],
        )
        .await
        .expect("seats readable");
    assert_eq!(rows.len(), 100);
    for row in &rows {
        let seat: String = row.get(0);
        assert_eq!(row.get::<_, String>(1), "HELD", "{seat}");
        assert_eq!(
            row.get::<_, Option<String>>(2).as_ref(),
            winners.get(&seat),
            "{seat}"
        );
    }

    let event = inventory
        .client
        .clone()
        .get_event(GetEventRequest {
            event_id: "contention".into(),
            include_seats: false,
            consistent_read: false,
        })
        .await
        .expect("event readable")
        .into_inner();
    let total = event.total.expect("a total");
    assert_eq!((total.available, total.held, total.sold), (0, 100, 0));
    assert_eq!(event.availability.len(), 1);
    assert_eq!(event.availability[0].held, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn best_available_holds_never_overlap_and_are_sold_out_only_once_every_seat_is_sold() {
    let inventory = Inventory::start().await;
    inventory.event("best", 5, 10, 2_500).await;
    let hold = |saga: String| HoldSeatsRequest {
        saga_id: saga,
        event_id: "best".into(),
        seat_ids: Vec::new(),
        quantity: 2,
        hold_ttl: secs(600),
    };

    let attempts = (0..120).map(|i| {
        let mut client = inventory.client.clone();
        let request = hold(format!("best-{i}"));
        async move { (i, client.hold_seats(request).await) }
    });
    let results = join_all(attempts).await;
    let mut held = HashSet::new();
    let mut winners = Vec::new();
    let mut locked = 0;
    for (i, result) in results {
        match result {
            Ok(response) => {
                winners.push(format!("best-{i}"));
                for seat in response.into_inner().seats {
                    assert!(
                        held.insert(seat.seat_id.clone()),
                        "{} held twice",
                        seat.seat_id
                    );
                }
            }
            Err(status) => match details(&status) {
                // Every unsold seat is held by a saga that may still release it: a
                // conflict, never "sold out".
                (Code::Aborted, reason, _) if reason == "SEAT_TAKEN" => locked += 1,
                other => panic!("unexpected answer {other:?}"),
            },
        }
    }
    assert_eq!(held.len(), 50, "all 50 seats held, two per winner");
    assert_eq!((winners.len(), locked), (25, 95));

    // Once every hold is confirmed, every seat is SOLD: now it is sold out.
    let mut client = inventory.client.clone();
    for saga in &winners {
        client
            .confirm_seats(ConfirmSeatsRequest {
                saga_id: saga.clone(),
                event_id: "best".into(),
                order_id: format!("order-{saga}"),
            })
            .await
            .expect("confirmed");
    }
    let status = client
        .hold_seats(hold("best-late".into()))
        .await
        .expect_err("sold out");
    let (code, reason, _) = details(&status);
    assert_eq!(
        (code, reason.as_str()),
        (Code::FailedPrecondition, "SOLD_OUT")
    );
}
