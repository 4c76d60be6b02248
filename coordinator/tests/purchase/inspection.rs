use local_mesh::MeshOptions;
use proto::v1::*;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_shows_timelines_lists_failures_and_decisions() {
    let world = World::start(MeshOptions::default()).await;
    world.event("inspect", 1, 4, 1_000).await;
    let bought = world
        .buy(
            Protocol::TwoPhaseCommit,
            "inspect",
            &["A-1-1"],
            "tok_visa",
            "inspect-ok",
        )
        .await
        .expect("bought");
    let declined = world
        .buy(
            Protocol::Saga,
            "inspect",
            &["A-1-2"],
            "tok_declined",
            "inspect-declined",
        )
        .await
        .expect_err("declined");
    let declined_txid = reason(&declined).2["txid"].clone();
    let mut coordinator = world.coordinator.clone();

    let shown = coordinator
        .get_transaction(GetTransactionRequest {
            txid: bought.txid.clone(),
        })
        .await
        .expect("shown")
        .into_inner()
        .transaction
        .expect("transaction");
    assert_eq!(
        (shown.state(), shown.decision()),
        (TransactionState::Committed, Decision::Commit)
    );
    let steps: Vec<(Participant, &str)> = shown
        .steps
        .iter()
        .map(|s| (s.participant(), s.operation.as_str()))
        .collect();
    for expected in [
        (Participant::Inventory, "prepare"),
        (Participant::Orders, "prepare"),
        (Participant::Payments, "prepare"),
        (Participant::Inventory, "commit"),
        (Participant::Orders, "commit"),
        (Participant::Payments, "commit"),
    ] {
        assert!(steps.contains(&expected), "{expected:?} in {steps:?}");
    }
    assert!(shown.steps.iter().all(|s| s.outcome() == StepOutcome::Ok));

    let saga = coordinator
        .get_transaction(GetTransactionRequest {
            txid: declined_txid.clone(),
        })
        .await
        .expect("shown")
        .into_inner()
        .transaction
        .expect("transaction");
    assert_eq!(saga.state(), TransactionState::Aborted);
    let failed: Vec<_> = saga
        .steps
        .iter()
        .filter(|s| s.outcome() == StepOutcome::Failed)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0].participant(), failed[0].operation.as_str()),
        (Participant::Payments, "authorize")
    );
    let compensations: Vec<_> = saga
        .steps
        .iter()
        .filter(|s| s.compensation)
        .map(|s| s.operation.as_str())
        .collect();
    // The authorization was refused outright: nothing to void, so no payment lookup.
    assert_eq!(compensations, ["cancel_order", "release_seats"]);

    let listed = coordinator
        .list_transactions(ListTransactionsRequest {
            state: TransactionState::Aborted.into(),
            protocol: Protocol::Saga.into(),
            event_id: "inspect".into(),
            ..Default::default()
        })
        .await
        .expect("listed")
        .into_inner();
    assert_eq!(
        listed
            .transactions
            .iter()
            .map(|t| t.txid.as_str())
            .collect::<Vec<_>>(),
        [declined_txid.as_str()]
    );
    let by_error = coordinator
        .list_transactions(ListTransactionsRequest {
            error_contains: "CARD DECLINED".into(),
            ..Default::default()
        })
        .await
        .expect("listed")
        .into_inner();
    assert_eq!(
        by_error.transactions.len(),
        1,
        "error text matches case-insensitively"
    );

    let by_cause = coordinator
        .failure_summary(FailureSummaryRequest {
            group_by: FailureGroupBy::Error.into(),
            ..Default::default()
        })
        .await
        .expect("summary")
        .into_inner();
    assert_eq!(by_cause.counted, "purchases");
    assert_eq!(by_cause.total, 1);
    assert_eq!(
        (
            by_cause.groups[0].key.as_str(),
            by_cause.groups[0].label.as_str(),
            by_cause.groups[0].count
        ),
        (
            "CARD_DECLINED:card_declined",
            "payment declined (card_declined)",
            1
        )
    );
    let elsewhere = coordinator
        .failure_summary(FailureSummaryRequest {
            group_by: FailureGroupBy::Error.into(),
            event_id: "another-event".into(),
            ..Default::default()
        })
        .await
        .expect("summary")
        .into_inner();
    assert_eq!(elsewhere.total, 0, "only the event asked for");

    let summary = coordinator
        .failure_summary(FailureSummaryRequest {
            since: None,
            group_by: FailureGroupBy::Participant.into(),
            event_id: String::new(),
        })
        .await
        .expect("summary")
        .into_inner();
    assert_eq!(summary.total, 1);
    assert_eq!(summary.groups.len(), 1);
    assert_eq!(
        (summary.groups[0].key.as_str(), summary.groups[0].count),
        ("payments", 1)
    );
    assert_eq!(
        summary.groups[0].example_txids,
        std::slice::from_ref(&declined_txid)
    );

    let pending = coordinator
        .list_pending(ListPendingRequest {})
        .await
        .expect("pending")
        .into_inner();
    assert!(
        pending.transactions.is_empty(),
        "nothing pending: {pending:?}"
    );

    for (txid, decision) in [
        (bought.txid.as_str(), Decision::Commit),
        (declined_txid.as_str(), Decision::Abort),
        ("tx-never-logged", Decision::Abort),
    ] {
        let answer = coordinator
            .get_decision(GetDecisionRequest {
                txid: txid.into(),
                participant: Participant::Inventory.into(),
            })
            .await
            .expect("decision")
            .into_inner();
        assert_eq!(answer.decision(), decision, "{txid}");
    }
}
