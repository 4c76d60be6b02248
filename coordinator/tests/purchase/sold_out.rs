use local_mesh::MeshOptions;
use proto::v1::*;
use tonic::Code;

use crate::common::*;

fn best_available(protocol: Protocol, event: &str, key: &str) -> PurchaseRequest {
    PurchaseRequest {
        quantity: 1,
        ..purchase(protocol, event, &[], "tok_visa", key)
    }
}

async fn logged(world: &World) -> i64 {
    world
        .mesh
        .coordinator_db
        .connect()
        .await
        .expect("connects")
        .query_one("SELECT count(*) FROM transactions", &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_inventory_says_sold_out_best_available_purchases_are_answered_unlogged() {
    let world = World::start(MeshOptions::default()).await;
    world.event("one-seat", 1, 1, 1_000).await;
    let mut coordinator = world.coordinator.clone();
    coordinator
        .purchase(best_available(
            Protocol::TwoPhaseCommit,
            "one-seat",
            "first",
        ))
        .await
        .expect("the only seat is sold");

    // Inventory itself says sold out: logged, with a txid, and nothing to abort.
    let status = coordinator
        .purchase(best_available(
            Protocol::TwoPhaseCommit,
            "one-seat",
            "second",
        ))
        .await
        .expect_err("sold out");
    let (code, why, metadata) = reason(&status);
    assert_eq!((code, why.as_str()), (Code::FailedPrecondition, "SOLD_OUT"));
    let txid = metadata["txid"].clone();
    let steps = coordinator
        .get_transaction(GetTransactionRequest { txid })
        .await
        .expect("logged")
        .into_inner()
        .transaction
        .expect("transaction")
        .steps;
    let operations: Vec<&str> = steps.iter().map(|s| s.operation.as_str()).collect();
    assert_eq!(
        operations,
        ["prepare"],
        "a refused prepare leaves nothing to abort"
    );
    assert_eq!(logged(&world).await, 2);

    // Within the window: answered at once, unlogged, no txid.
    let status = coordinator
        .purchase(best_available(Protocol::Saga, "one-seat", "third"))
        .await
        .expect_err("sold out");
    let (code, why, metadata) = reason(&status);
    assert_eq!((code, why.as_str()), (Code::FailedPrecondition, "SOLD_OUT"));
    assert!(!metadata.contains_key("txid"), "{metadata:?}");
    assert!(
        status.message().contains("nothing was attempted"),
        "{status:?}"
    );
    assert_eq!(logged(&world).await, 2, "the fast path logs nothing");

    // Named seats never take the fast path.
    let status = coordinator
        .purchase(purchase(
            Protocol::Saga,
            "one-seat",
            &["A-1-1"],
            "tok_visa",
            "named",
        ))
        .await
        .expect_err("taken");
    assert_eq!(reason(&status).1, "SEAT_TAKEN");
    assert_eq!(logged(&world).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_leased_by_another_buyer_is_a_conflict_not_sold_out() {
    let world = World::start(MeshOptions::default()).await;
    world.event("leased", 1, 1, 1_000).await;
    let client = redis::Client::open(
        std::env::var("TICKETDROP_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:56379".into()),
    )
    .expect("redis url");
    let mut redis = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let _: () = redis::cmd("SET")
        .arg("lock:seat:{leased}:A-1-1")
        .arg("someone-else")
        .arg("PX")
        .arg(30_000)
        .query_async(&mut redis)
        .await
        .expect("lease taken");

    let status = world
        .coordinator
        .clone()
        .purchase(best_available(Protocol::Lease, "leased", "lease-1"))
        .await
        .expect_err("the only seat is leased");
    let (code, why, _) = reason(&status);
    assert_eq!(
        (code, why.as_str()),
        (Code::Aborted, "SEAT_TAKEN"),
        "{status:?}"
    );
    let _: () = redis::cmd("DEL")
        .arg("lock:seat:{leased}:A-1-1")
        .query_async(&mut redis)
        .await
        .expect("released");
    world
        .coordinator
        .clone()
        .purchase(best_available(Protocol::Lease, "leased", "lease-2"))
        .await
        .expect("bought once the lease is gone");
}
