use std::time::Duration;

use futures::future::join_all;
use proto::v1::*;
use tonic::Code;

use crate::common::*;

fn confirm(saga_id: &str, event_id: &str, order_id: &str) -> ConfirmSeatsRequest {
    ConfirmSeatsRequest {
        saga_id: saga_id.into(),
        event_id: event_id.into(),
        order_id: order_id.into(),
    }
}

fn release(saga_id: &str, event_id: &str) -> ReleaseSeatsRequest {
    ReleaseSeatsRequest {
        saga_id: saga_id.into(),
        event_id: event_id.into(),
    }
}

fn unsell(saga_id: &str, event_id: &str) -> UnsellSeatsRequest {
    UnsellSeatsRequest {
        saga_id: saga_id.into(),
        event_id: event_id.into(),
    }
}

async fn barrier_rows(inventory: &Inventory, saga_id: &str) -> Vec<(String, String, String)> {
    inventory
        .sql()
        .await
        .query(
            "SELECT step, operation, outcome FROM saga_barrier WHERE gid = $1
              ORDER BY step, operation",
            &[&saga_id],
        )
        .await
        .expect("barrier readable")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

#[tokio::test]
async fn a_duplicate_hold_replays_the_first_answer_and_changes_nothing() {
    let inventory = Inventory::start().await;
    inventory.event("dup", 1, 4, 2_000).await;
    let mut client = inventory.client.clone();

    let first = client
        .hold_seats(hold("saga-dup", "dup", &["A-1-1", "A-1-2"], 600))
        .await
        .expect("held")
        .into_inner();
    assert_eq!(first.barrier(), BarrierOutcome::Applied);
    assert_eq!(first.total_cents, 4_000);
    let before = inventory.snapshot().await;

    let second = client
        .hold_seats(hold("saga-dup", "dup", &["A-1-1", "A-1-2"], 600))
        .await
        .expect("a duplicate succeeds")
        .into_inner();
    assert_eq!(second.barrier(), BarrierOutcome::Duplicate);
    assert_eq!(second.seats, first.seats);
    assert_eq!(second.hold_expires_at, first.hold_expires_at);
    assert_eq!(
        inventory.snapshot().await,
        before,
        "the duplicate changed nothing"
    );
    let seat = inventory.seat("dup", "A-1-1").await;
    assert_eq!(
        (seat.status.as_str(), seat.holder.as_deref(), seat.version),
        ("HELD", Some("saga-dup"), 1)
    );
}

#[tokio::test]
async fn a_compensation_without_its_step_is_a_recorded_no_op_that_refuses_the_late_step() {
    let inventory = Inventory::start().await;
    inventory.event("null", 1, 4, 2_000).await;
    let mut client = inventory.client.clone();
    let before = inventory.seat("null", "A-1-1").await;

    let released = client
        .release_seats(release("saga-null", "null"))
        .await
        .expect("a null compensation succeeds")
        .into_inner();
    assert_eq!(released.barrier(), BarrierOutcome::NullCompensation);
    assert!(released.seat_ids.is_empty());
    assert_eq!(
        barrier_rows(&inventory, "saga-null").await,
        vec![
            (
                "hold_seats".into(),
                "action".into(),
                "null_compensation".into()
            ),
            (
                "hold_seats".into(),
                "compensation".into(),
                "null_compensation".into()
            ),
        ]
    );

    let status = client
        .hold_seats(hold("saga-null", "null", &["A-1-1"], 600))
        .await
        .expect_err("the step after its compensation is refused");
    let (code, reason, metadata) = details(&status);
    assert_eq!(
        (code, reason.as_str()),
        (Code::FailedPrecondition, "STEP_COMPENSATED")
    );
    assert_eq!(metadata["step"], "hold_seats");
    assert_eq!(
        inventory.seat("null", "A-1-1").await,
        before,
        "the seat is untouched"
    );

    let again = client
        .release_seats(release("saga-null", "null"))
        .await
        .expect("a duplicate compensation succeeds")
        .into_inner();
    assert_eq!(again.barrier(), BarrierOutcome::Duplicate);
}

#[tokio::test]
async fn steps_after_their_compensations_are_refused() {
    let inventory = Inventory::start().await;
    inventory.event("comp", 1, 4, 2_000).await;
    let mut client = inventory.client.clone();

    // Hold, then release: a repeated hold is refused and the seat stays available.
    client
        .hold_seats(hold("saga-h", "comp", &["A-1-1"], 600))
        .await
        .expect("held");
    let released = client
        .release_seats(release("saga-h", "comp"))
        .await
        .expect("released")
        .into_inner();
    assert_eq!(released.barrier(), BarrierOutcome::Applied);
    assert_eq!(released.seat_ids, ids(&["A-1-1"]));
    let status = client
        .hold_seats(hold("saga-h", "comp", &["A-1-1"], 600))
        .await
        .expect_err("hold after release is refused");
    assert_eq!(details(&status).1, "STEP_COMPENSATED");
    let seat = inventory.seat("comp", "A-1-1").await;
    assert_eq!((seat.status.as_str(), seat.holder), ("AVAILABLE", None));

    // Hold, confirm, unsell: a repeated confirm is refused and the seat stays available.
    client
        .hold_seats(hold("saga-c", "comp", &["A-1-2"], 600))
        .await
        .expect("held");
    let confirmed = client
        .confirm_seats(confirm("saga-c", "comp", "order-c"))
        .await
        .expect("confirmed")
        .into_inner();
    assert_eq!(confirmed.seat_ids, ids(&["A-1-2"]));
    let seat = inventory.seat("comp", "A-1-2").await;
    assert_eq!(
        (seat.status.as_str(), seat.order_id.as_deref()),
        ("SOLD", Some("order-c"))
    );
    let unsold = client
        .unsell_seats(unsell("saga-c", "comp"))
        .await
        .expect("unsold")
        .into_inner();
    assert_eq!(unsold.seat_ids, ids(&["A-1-2"]));
    let status = client
        .confirm_seats(confirm("saga-c", "comp", "order-c"))
        .await
        .expect_err("confirm after unsell is refused");
    assert_eq!(details(&status).1, "STEP_COMPENSATED");
    let seat = inventory.seat("comp", "A-1-2").await;
    assert_eq!((seat.status.as_str(), seat.order_id), ("AVAILABLE", None));
}

#[tokio::test]
async fn an_expired_hold_is_released_by_the_sweeper_and_can_no_longer_be_confirmed() {
    let inventory = Inventory::start().await;
    inventory.event("sweep", 1, 4, 2_000).await;
    let mut client = inventory.client.clone();
    client
        .hold_seats(hold("saga-sweep", "sweep", &["A-1-3"], 1))
        .await
        .expect("held");

    let mut released = false;
    for _ in 0..100 {
        if inventory.seat("sweep", "A-1-3").await.status == "AVAILABLE" {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(released, "the sweeper returned the expired hold");
    let stats = client
        .get_sweeper_stats(GetSweeperStatsRequest {})
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(stats.released_total, 1);
    assert!(stats.runs > 0 && stats.last_run_at.is_some());

    let status = client
        .confirm_seats(confirm("saga-sweep", "sweep", "order-sweep"))
        .await
        .expect_err("a lost hold cannot be confirmed");
    let (code, reason, metadata) = details(&status);
    assert_eq!(
        (code, reason.as_str()),
        (Code::FailedPrecondition, "HOLD_LOST")
    );
    assert_eq!(metadata["seats"], "A-1-3");
    assert_eq!(inventory.seat("sweep", "A-1-3").await.status, "AVAILABLE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_confirm_racing_the_sweeper_never_leaves_a_seat_both_available_and_confirmed() {
    let inventory = Inventory::start().await;
    inventory.event("race", 4, 10, 2_000).await;

    // Each saga confirms right around its hold's expiry, while the sweeper runs every
    // 50 ms: some confirms win, some lose, none may half-win.
    let races = (0..40).map(|i| {
        let mut client = inventory.client.clone();
        let seat = format!("A-{}-{}", i / 10 + 1, i % 10 + 1);
        async move {
            let saga = format!("saga-race-{i}");
            client
                .hold_seats(hold(&saga, "race", &[&seat], 1))
                .await
                .expect("held");
            tokio::time::sleep(Duration::from_millis(900 + 5 * i as u64)).await;
            let confirmed = client
                .confirm_seats(confirm(&saga, "race", &format!("order-{i}")))
                .await;
            (seat, i, confirmed)
        }
    });
    let outcomes = join_all(races).await;
    // Every hold has ended — confirmed, or released by the sweeper once expired.
    local_mesh::eventually(
        "the sweeper to release every expired hold",
        Duration::from_secs(30),
        || async {
            for i in 0..40 {
                let seat = format!("A-{}-{}", i / 10 + 1, i % 10 + 1);
                if inventory.seat("race", &seat).await.status == "HELD" {
                    return false;
                }
            }
            true
        },
    )
    .await;
    let mut won = 0;
    for (seat, i, confirmed) in outcomes {
        let row = inventory.seat("race", &seat).await;
        match confirmed {
            Ok(response) => {
                won += 1;
                assert_eq!(response.into_inner().seat_ids, vec![seat.clone()]);
                assert_eq!(row.status, "SOLD", "{seat}");
                assert_eq!(row.order_id, Some(format!("order-{i}")));
            }
            Err(status) => {
                assert_eq!(details(&status).1, "HOLD_LOST", "{status:?}");
                assert_eq!(row.status, "AVAILABLE", "{seat}");
                assert_eq!(row.order_id, None);
            }
        }
    }
    eprintln!("{won} of 40 confirms beat the sweeper");
}
