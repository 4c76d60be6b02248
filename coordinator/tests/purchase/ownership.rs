//! The log's ownership rules, on the real log database, without a mesh: one owner at a
//! time, every write conditional on the owner's epoch, a decision written once, takeover
//! only of a lapsed purchase, and a lost purchase noticed by the renewal.

use std::sync::Arc;
use std::time::Duration;

use coordinator::error::Error;
use coordinator::log::{Begun, Decision, Log};
use coordinator::model::Purchase;
use coordinator::ownership::{Owned, Ownership};
use local_mesh::TestDatabase;
use proto::v1::Protocol;

/// A coordinator's view of the log: its own name and its own ownership registry.
async fn coordinator(db: &TestDatabase, name: &str, ttl: Duration) -> (Log, Arc<Ownership>) {
    let pool =
        server_kit::pg::connect_and_migrate(&db.url(), 4, 5, coordinator::schema::MIGRATIONS)
            .await
            .expect("the log database");
    let ownership = Ownership::new(ttl);
    let log = Log::open(
        pool,
        server_kit::pg::pool(&db.url(), 2).expect("a pool"),
        name,
        "127.0.0.1:1",
        ownership.clone(),
    )
    .await
    .expect("the log opens");
    (log, ownership)
}

fn purchase(key: &str) -> Purchase {
    Purchase {
        user_id: "ana".into(),
        event_id: "owned".into(),
        seat_ids: vec!["A-1-1".into()],
        quantity: 0,
        card_token: "tok_visa".into(),
        idempotency_key: key.into(),
        protocol: Protocol::TwoPhaseCommit,
        deadline: None,
        admission_token: String::new(),
        email: None,
        phone: None,
    }
}

async fn begin(log: &Log, key: &str) -> Owned {
    match log
        .begin(
            &format!("tx-{key}"),
            &format!("ord-{key}"),
            &purchase(key),
            None,
        )
        .await
        .expect("BEGIN")
    {
        Begun::New(_, owned) => owned,
        Begun::Existing(_) => panic!("{key} is new"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_is_written_once_and_only_by_the_owner_at_its_epoch() {
    let db = TestDatabase::create("ownership").await.expect("a database");
    let (a, _) = coordinator(&db, "coordinator-a", Duration::from_millis(300)).await;
    let (b, _) = coordinator(&db, "coordinator-b", Duration::from_millis(300)).await;
    assert_eq!(a.log_id(), b.log_id(), "one log, one id");
    assert!(a.log_id().starts_with("log-"), "{}", a.log_id());

    // Decided once; the same decision again is a no-op, another is refused.
    let first = begin(&a, "once").await;
    a.decide(&first, Decision::Commit, None)
        .await
        .expect("decided");
    a.decide(&first, Decision::Commit, None)
        .await
        .expect("the same again");
    assert!(matches!(
        a.decide(&first, Decision::Abort, None).await,
        Err(Error::DecisionConflict {
            logged: "COMMIT",
            attempted: "ABORT",
            ..
        })
    ));
    assert_eq!(
        a.load("tx-once").await.expect("logged").decision,
        Some(Decision::Commit)
    );

    // Another coordinator cannot take a purchase whose ownership has not lapsed...
    let second = begin(&a, "lapsing").await;
    assert!(b.take_over("tx-lapsing").await.expect("asked").is_none());
    // ... and takes it once it has (its owner, "paused", renewed nothing).
    let taken = std::sync::Mutex::new(Vec::new());
    local_mesh::eventually("the ownership lapses", Duration::from_secs(10), || async {
        let found = b.take_over_lapsed(10, 5, false).await.expect("takeover");
        let mut taken = taken.lock().expect("lock");
        taken.extend(found.into_iter().filter(|t| t.txn.txid == "tx-lapsing"));
        !taken.is_empty()
    })
    .await;
    let taken = taken.into_inner().expect("lock");
    assert_eq!(taken.len(), 1, "taken over once");
    assert_eq!(taken[0].owned.epoch, 2);
    assert_eq!(taken[0].txn.owner.as_deref(), Some("coordinator-b"));

    // The paused owner wakes: every write it tries is refused and recorded, and it
    // knows it lost the purchase.
    assert!(matches!(
        a.decide(&second, Decision::Commit, None).await,
        Err(Error::NotOwner { .. })
    ));
    assert!(second.is_lost());
    assert!(matches!(
        a.set_payment(&second, "pay-late").await,
        Err(Error::NotOwner { .. })
    ));
    // The new owner decides; the decision stands.
    b.decide(&taken[0].owned, Decision::Abort, None)
        .await
        .expect("the owner decides");
    let row = b.load("tx-lapsing").await.expect("logged");
    assert_eq!(row.decision, Some(Decision::Abort));
    assert_eq!(row.payment_id, None, "the late write did not land");

    // The renewal tells a coordinator which of its purchases are not its own any more.
    let third = begin(&a, "renewed").await;
    let mut answers = a
        .renew(&[(third.txid.clone(), third.epoch), ("tx-lapsing".into(), 1)])
        .await
        .expect("renewed");
    answers.sort();
    assert_eq!(
        answers,
        vec![
            ("tx-lapsing".into(), 1, false),
            ("tx-renewed".into(), 1, true)
        ]
    );
}

/// The purchase's own last write and the renewal meet on the row: the renewal waits for
/// the purchase to end, and the purchase is still its owner's (seen under load: a fan
/// told "another coordinator took the purchase over" by a coordinator that was alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_racing_the_purchases_own_end_keeps_it_owned() {
    let db = TestDatabase::create("ownership").await.expect("a database");
    let (log, _) = coordinator(&db, "coordinator-a", Duration::from_secs(30)).await;
    let owned = begin(&log, "racing").await;

    // The purchase ends in a transaction of its own that holds the row...
    let (mut ending, connection) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    let ending = ending.transaction().await.expect("BEGIN");
    ending
        .execute(
            "UPDATE transactions SET state = 'COMMITTED', finished_at = now()
              WHERE txid = 'tx-racing'",
            &[],
        )
        .await
        .expect("the purchase's end");
    // ... while the renewal of the same row waits for it.
    let renewal = {
        let (log, owned_txid) = (log.clone(), owned.txid.clone());
        tokio::spawn(async move { log.renew(&[(owned_txid, 1)]).await })
    };
    let watcher = db.connect().await.expect("connects");
    local_mesh::eventually(
        "the renewal waits for the row",
        Duration::from_secs(10),
        || {
            let watcher = &watcher;
            async move {
                watcher
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity
                      WHERE wait_event_type = 'Lock' AND query LIKE '%owned_until%'",
                        &[],
                    )
                    .await
                    .is_ok_and(|row| row.get::<_, i64>(0) > 0)
            }
        },
    )
    .await;
    ending.commit().await.expect("COMMIT");
    let answers = renewal.await.expect("joins").expect("renewed");
    assert_eq!(answers, vec![("tx-racing".to_owned(), 1, true)]);
}
