use local_mesh::PrivatePostgres;
use proto::v1::*;
use tokio_postgres::NoTls;
use tonic::Code;

use crate::common::*;

async fn prepared_gids(url: &str) -> Vec<String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connects to the private server");
    tokio::spawn(connection);
    client
        .query(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() ORDER BY gid",
            &[],
        )
        .await
        .expect("pg_prepared_xacts readable")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn seat_state(url: &str, seat_id: &str) -> (String, Option<String>) {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connects to the private server");
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT status, order_id FROM seats WHERE event_id = 'restart' AND seat_id = $1",
            &[&seat_id],
        )
        .await
        .expect("seat readable");
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_prepared_sale_survives_a_postgres_restart_and_blocks_other_buyers() {
    let pg = tokio::task::spawn_blocking(PrivatePostgres::start)
        .await
        .expect("joins")
        .expect("a private PostgreSQL starts");
    {
        let (admin, connection) = tokio_postgres::connect(&pg.url("postgres"), NoTls)
            .await
            .expect("connects");
        tokio::spawn(connection);
        admin
            .batch_execute("CREATE DATABASE inventory")
            .await
            .expect("database created");
    }
    let url = pg.url("inventory");
    let service = start_service(&url).await;
    let mut client = client(&service).await;
    create_event(&mut client, "restart", "A", 2, 5, 4_000).await;

    client
        .prepare_sale(prepare(
            "tx-commit",
            "restart",
            "order-1",
            &["A-1-1", "A-1-2"],
        ))
        .await
        .expect("prepared");
    client
        .prepare_sale(prepare("tx-abort", "restart", "order-2", &["A-2-1"]))
        .await
        .expect("prepared");

    pg.stop().expect("PostgreSQL stops");
    pg.start_server().expect("PostgreSQL starts again");

    assert_eq!(
        prepared_gids(&url).await,
        vec!["td-tx-abort".to_owned(), "td-tx-commit".to_owned()],
        "prepared transactions survive the restart"
    );
    let in_doubt = client
        .list_in_doubt_sales(ListInDoubtSalesRequest::default())
        .await
        .expect("in-doubt list")
        .into_inner()
        .transactions;
    let mut txids: Vec<_> = in_doubt.iter().map(|t| t.txid.as_str()).collect();
    txids.sort();
    assert_eq!(txids, ["tx-abort", "tx-commit"]);

    // Another buyer of the prepared seats is refused: 2PC and saga alike.
    let status = client
        .prepare_sale(prepare(
            "tx-rival",
            "restart",
            "order-3",
            &["A-1-2", "A-1-3"],
        ))
        .await
        .expect_err("the seats are locked by the prepared branch");
    let (code, reason, metadata) = details(&status);
    assert_eq!(
        (code, reason.as_str()),
        (Code::Aborted, "SEAT_TAKEN"),
        "{status:?}"
    );
    assert!(metadata["seats"].contains("A-1-2"));
    let status = client
        .hold_seats(hold("saga-rival", "restart", &["A-1-1"], 60))
        .await
        .expect_err("the seat is locked by the prepared branch");
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert_eq!(
        seat_state(&url, "A-1-3").await.0,
        "AVAILABLE",
        "the rival changed nothing"
    );

    let committed = client
        .commit_sale(CommitSaleRequest {
            log_id: String::new(),
            txid: "tx-commit".into(),
        })
        .await
        .expect("commits")
        .into_inner();
    assert_eq!(committed.state(), ParticipantTxnState::Committed);
    let aborted = client
        .abort_sale(AbortSaleRequest {
            log_id: String::new(),
            txid: "tx-abort".into(),
        })
        .await
        .expect("aborts")
        .into_inner();
    assert_eq!(aborted.state(), ParticipantTxnState::Aborted);
    assert!(!aborted.tombstone);

    for seat in ["A-1-1", "A-1-2"] {
        assert_eq!(
            seat_state(&url, seat).await,
            ("SOLD".to_owned(), Some("order-1".to_owned()))
        );
    }
    assert_eq!(
        seat_state(&url, "A-2-1").await,
        ("AVAILABLE".to_owned(), None)
    );
    assert!(
        prepared_gids(&url).await.is_empty(),
        "no prepared transaction is left"
    );
}

#[tokio::test]
async fn an_abort_before_prepare_leaves_a_tombstone_that_refuses_the_late_prepare() {
    let inventory = Inventory::start().await;
    inventory.event("tomb", 1, 4, 1_000).await;
    let mut client = inventory.client.clone();

    let aborted = client
        .abort_sale(AbortSaleRequest {
            log_id: String::new(),
            txid: "tx-late".into(),
        })
        .await
        .expect("abort of an unknown txid succeeds")
        .into_inner();
    assert_eq!(aborted.state(), ParticipantTxnState::Aborted);
    assert!(aborted.tombstone);
    let before = inventory.snapshot().await;

    let status = client
        .prepare_sale(prepare("tx-late", "tomb", "order-late", &["A-1-1"]))
        .await
        .expect_err("a prepare after the abort is refused");
    let (code, reason, metadata) = details(&status);
    assert_eq!(
        (code, reason.as_str()),
        (Code::FailedPrecondition, "TXN_ABORTED")
    );
    assert_eq!(metadata["txid"], "tx-late");
    assert_eq!(
        inventory.snapshot().await,
        before,
        "the refused prepare changed nothing"
    );
    assert_eq!(inventory.seat("tomb", "A-1-1").await.status, "AVAILABLE");

    let again = client
        .abort_sale(AbortSaleRequest {
            log_id: String::new(),
            txid: "tx-late".into(),
        })
        .await
        .expect("a repeated abort succeeds")
        .into_inner();
    assert!(again.already_done);
}

#[tokio::test]
async fn commit_twice_has_one_effect_and_prepare_twice_one_branch() {
    let inventory = Inventory::start().await;
    inventory.event("twice", 1, 4, 1_500).await;
    let mut client = inventory.client.clone();

    let first = client
        .prepare_sale(prepare("tx-twice", "twice", "order-t", &["A-1-2", "A-1-1"]))
        .await
        .expect("prepared")
        .into_inner();
    let second = client
        .prepare_sale(prepare("tx-twice", "twice", "order-t", &["A-1-2", "A-1-1"]))
        .await
        .expect("a repeated prepare succeeds")
        .into_inner();
    assert_eq!(first, second, "the repeated prepare answers the same");
    assert_eq!(first.total_cents, 3_000);
    let in_doubt = client
        .list_in_doubt_sales(ListInDoubtSalesRequest::default())
        .await
        .expect("listed")
        .into_inner()
        .transactions;
    assert_eq!(in_doubt.len(), 1);

    let commit = CommitSaleRequest {
        log_id: String::new(),
        txid: "tx-twice".into(),
    };
    let once = client
        .commit_sale(commit.clone())
        .await
        .expect("commits")
        .into_inner();
    assert!(!once.already_done);
    let after_first = inventory.snapshot().await;
    let seat = inventory.seat("twice", "A-1-1").await;
    assert_eq!((seat.status.as_str(), seat.version), ("SOLD", 1));

    let twice = client
        .commit_sale(commit)
        .await
        .expect("commits again")
        .into_inner();
    assert!(twice.already_done);
    assert_eq!(twice.state(), ParticipantTxnState::Committed);
    assert_eq!(
        inventory.snapshot().await,
        after_first,
        "the second commit changed nothing"
    );

    let status = client
        .commit_sale(CommitSaleRequest {
            log_id: String::new(),
            txid: "tx-never".into(),
        })
        .await
        .expect_err("an unknown txid cannot commit");
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .abort_sale(AbortSaleRequest {
            log_id: String::new(),
            txid: "tx-twice".into(),
        })
        .await
        .expect_err("a committed txid cannot abort");
    assert_eq!(status.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn best_available_is_sold_out_only_when_every_seat_is_sold_and_committed() {
    let inventory = Inventory::start().await;
    inventory.event("last", 1, 1, 1_000).await;
    let mut client = inventory.client.clone();
    let best = |saga: &str| HoldSeatsRequest {
        saga_id: saga.into(),
        event_id: "last".into(),
        seat_ids: Vec::new(),
        quantity: 1,
        hold_ttl: secs(60),
    };
    let conflict = (Code::Aborted, "SEAT_TAKEN");

    // The only seat locked by a transaction in flight: a conflict, it may come back.
    let mut sql = inventory.sql().await;
    let open = sql.transaction().await.expect("begin");
    open.execute(
        "SELECT 1 FROM seats WHERE event_id = 'last' AND seat_id = 'A-1-1' FOR UPDATE",
        &[],
    )
    .await
    .expect("locked");
    let status = client
        .hold_seats(best("saga-early"))
        .await
        .expect_err("locked");
    let (code, reason, _) = details(&status);
    assert_eq!((code, reason.as_str()), conflict, "{status:?}");
    open.rollback().await.expect("rollback");

    // The only seat inside a live prepared branch: the branch may still abort, so a
    // conflict, not sold out; and the seat counts say so.
    let mut request = prepare("tx-last", "last", "order-last", &[]);
    request.quantity = 1;
    client.prepare_sale(request).await.expect("prepared");
    let status = client
        .hold_seats(best("saga-late"))
        .await
        .expect_err("in a prepared branch");
    let (code, reason, _) = details(&status);
    assert_eq!((code, reason.as_str()), conflict, "{status:?}");
    let counts = seat_counts(&mut client, "last").await;
    assert_eq!(
        counts,
        (1, 0, 0, 0, 1),
        "capacity, available, held, sold, prepared"
    );
    client
        .abort_sale(AbortSaleRequest {
            log_id: String::new(),
            txid: "tx-last".into(),
        })
        .await
        .expect("aborted");
    assert_eq!(seat_counts(&mut client, "last").await, (1, 1, 0, 0, 0));

    // Prepared again and committed: every seat SOLD, now sold out.
    let mut request = prepare("tx-final", "last", "order-final", &[]);
    request.quantity = 1;
    client.prepare_sale(request).await.expect("prepared");
    client
        .commit_sale(CommitSaleRequest {
            log_id: String::new(),
            txid: "tx-final".into(),
        })
        .await
        .expect("committed");
    let status = client
        .hold_seats(best("saga-after"))
        .await
        .expect_err("sold out");
    let (code, reason, _) = details(&status);
    assert_eq!(
        (code, reason.as_str()),
        (Code::FailedPrecondition, "SOLD_OUT"),
        "{status:?}"
    );
    assert_eq!(seat_counts(&mut client, "last").await, (1, 0, 0, 1, 0));
}

async fn seat_counts(
    client: &mut proto::v1::inventory_service_client::InventoryServiceClient<
        server_kit::outgoing::MeshChannel,
    >,
    event_id: &str,
) -> (u64, u64, u64, u64, u64) {
    let c = client
        .get_seat_counts(GetSeatCountsRequest {
            event_id: event_id.into(),
        })
        .await
        .expect("counted")
        .into_inner();
    (c.capacity, c.available, c.held, c.sold, c.prepared)
}
