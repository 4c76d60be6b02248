//! Crash tests: real coordinator processes SIGKILLed or SIGSTOPped at named points
//! (failpoints) mid-purchase, then restarted; recovery must finish or undo every
//! purchase and the invariants must hold. Built only with `--features failpoints`.

#[path = "../common/mod.rs"]
mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use local_mesh::{MeshOptions, eventually};
use proto::v1::orders_service_client::OrdersServiceClient;
use proto::v1::payments_service_client::PaymentsServiceClient;
use proto::v1::*;
use tonic::Code;

async fn log_value(world: &World, sql: &str) -> Option<String> {
    world
        .mesh
        .coordinator_db
        .connect()
        .await
        .expect("connects")
        .query_opt(sql, &[])
        .await
        .expect("query")
        .and_then(|row| row.get(0))
}

/// Starts a purchase in the background; its answer does not matter (the coordinator dies).
fn start_purchase(world: &World, protocol: Protocol, event: &str, seats: &[&str]) {
    let mut client = world.coordinator.clone();
    let request = purchase(
        protocol,
        event,
        seats,
        "tok_visa",
        &format!("crash-{event}"),
    );
    tokio::spawn(async move {
        let _ = client.purchase(request).await;
    });
}

async fn in_doubt_everywhere(world: &World) -> bool {
    let mut inventory = world.inventory.clone();
    let mut orders =
        OrdersServiceClient::new(local_mesh::auth::channel(&world.mesh.orders.endpoint()).await);
    let mut payments = PaymentsServiceClient::new(
        local_mesh::auth::channel(&world.mesh.payments.endpoint()).await,
    );
    let sales = inventory
        .list_in_doubt_sales(ListInDoubtSalesRequest::default())
        .await
        .expect("listed")
        .into_inner();
    let order = orders
        .list_in_doubt_orders(ListInDoubtOrdersRequest::default())
        .await
        .expect("listed")
        .into_inner();
    let payment = payments
        .list_in_doubt_payments(ListInDoubtPaymentsRequest::default())
        .await
        .expect("listed")
        .into_inner();
    !sales.transactions.is_empty()
        && !order.transactions.is_empty()
        && !payment.transactions.is_empty()
}

async fn kill_and_restart_coordinator(world: &mut World) {
    let status = world.mesh.coordinator.kill().await.expect("SIGKILL");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    restart_coordinator(world).await;
}

/// Starts the stopped coordinator again and waits for its recovery to settle.
async fn restart_coordinator(world: &mut World) {
    world
        .mesh
        .coordinator
        .restart()
        .await
        .expect("the coordinator restarts");
    world.reconnect().await;
    world.settle().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_pc_killed_after_every_prepare_before_the_decision_aborts_on_restart() {
    let mut world = World::start(MeshOptions {
        coordinator_env: vec![("FAILPOINTS", "2pc::before_decision=sleep(60000)")],
        ..Default::default()
    })
    .await;
    world.event("crash-2pc-a", 1, 4, 5_000).await;
    start_purchase(
        &world,
        Protocol::TwoPhaseCommit,
        "crash-2pc-a",
        &["A-1-1", "A-1-2"],
    );
    eventually(
        "every participant to prepare",
        Duration::from_secs(30),
        || in_doubt_everywhere(&world),
    )
    .await;

    kill_and_restart_coordinator(&mut world).await;

    assert_eq!(
        log_value(
            &world,
            "SELECT state || ' ' || coalesce(decision, '-') FROM transactions"
        )
        .await
        .as_deref(),
        Some("ABORTED ABORT"),
        "presumed abort"
    );
    let seats = world.seats("crash-2pc-a").await;
    assert!(
        seats.values().all(|(status, _)| status == "AVAILABLE"),
        "the seats are free: {seats:?}"
    );
    assert!(!in_doubt_everywhere(&world).await);
    let payments = world.payments().await;
    assert!(
        payments
            .values()
            .flatten()
            .all(|(state, _, _)| state == "VOIDED"),
        "{payments:?}"
    );
    world.assert_invariants("crash-2pc-a", 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_pc_killed_after_the_decision_commits_everywhere_on_restart() {
    let mut world = World::start(MeshOptions {
        coordinator_env: vec![("FAILPOINTS", "2pc::after_decision=sleep(60000)")],
        ..Default::default()
    })
    .await;
    world.event("crash-2pc-b", 1, 4, 5_000).await;
    start_purchase(
        &world,
        Protocol::TwoPhaseCommit,
        "crash-2pc-b",
        &["A-1-3", "A-1-4"],
    );
    eventually("the commit decision", Duration::from_secs(30), || async {
        log_value(&world, "SELECT decision FROM transactions")
            .await
            .as_deref()
            == Some("COMMIT")
    })
    .await;
    assert!(
        in_doubt_everywhere(&world).await,
        "decided, not yet committed anywhere"
    );
    assert_eq!(
        world.outbox("crash-2pc-b").await.len(),
        1,
        "the decision recorded the confirmation before anything else happened"
    );

    kill_and_restart_coordinator(&mut world).await;

    assert_eq!(
        log_value(&world, "SELECT state FROM transactions")
            .await
            .as_deref(),
        Some("COMMITTED")
    );
    let order_id = log_value(&world, "SELECT order_id FROM transactions")
        .await
        .expect("order");
    let seats = world.seats("crash-2pc-b").await;
    for seat in ["A-1-3", "A-1-4"] {
        assert_eq!(seats[seat], ("SOLD".to_owned(), Some(order_id.clone())));
    }
    let orders = world.orders("crash-2pc-b").await;
    assert_eq!(
        (orders[&order_id].status.as_str(), orders[&order_id].tickets),
        ("ORDER_STATUS_CONFIRMED", 2)
    );
    assert_eq!(
        world.payments().await[&order_id],
        vec![("CAPTURED".to_owned(), 10_000, 10_000)]
    );
    assert!(
        !in_doubt_everywhere(&world).await,
        "no prepared transaction remains"
    );
    world.assert_invariants("crash-2pc-b", 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn saga_killed_after_the_capture_confirms_the_order_on_restart() {
    let mut world = World::start(MeshOptions {
        coordinator_env: vec![("FAILPOINTS", "saga::after_capture=sleep(60000)")],
        ..Default::default()
    })
    .await;
    world.event("crash-saga-a", 1, 4, 2_500).await;
    start_purchase(&world, Protocol::Saga, "crash-saga-a", &["A-1-1", "A-1-2"]);
    eventually("the capture", Duration::from_secs(30), || async {
        world
            .payments()
            .await
            .values()
            .flatten()
            .any(|(state, _, _)| state == "CAPTURED")
    })
    .await;
    assert_eq!(
        log_value(&world, "SELECT decision FROM transactions").await,
        None,
        "the pivot is not logged yet"
    );

    kill_and_restart_coordinator(&mut world).await;

    assert_eq!(
        log_value(&world, "SELECT state FROM transactions")
            .await
            .as_deref(),
        Some("COMMITTED")
    );
    let order_id = log_value(&world, "SELECT order_id FROM transactions")
        .await
        .expect("order");
    let orders = world.orders("crash-saga-a").await;
    assert_eq!(
        (orders[&order_id].status.as_str(), orders[&order_id].tickets),
        ("ORDER_STATUS_CONFIRMED", 2)
    );
    world.assert_invariants("crash-saga-a", 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn saga_killed_after_the_hold_is_compensated_on_restart() {
    let mut world = World::start(MeshOptions {
        coordinator_env: vec![("FAILPOINTS", "saga::after_hold=sleep(60000)")],
        ..Default::default()
    })
    .await;
    world.event("crash-saga-b", 1, 4, 2_500).await;
    start_purchase(&world, Protocol::Saga, "crash-saga-b", &["A-1-3"]);
    eventually("the hold", Duration::from_secs(30), || async {
        world.seats("crash-saga-b").await["A-1-3"].0 == "HELD"
    })
    .await;

    kill_and_restart_coordinator(&mut world).await;

    assert_eq!(
        log_value(
            &world,
            "SELECT state || ' ' || coalesce(decision, '-') FROM transactions"
        )
        .await
        .as_deref(),
        Some("ABORTED ABORT")
    );
    let seats = world.seats("crash-saga-b").await;
    assert_eq!(
        seats["A-1-3"],
        ("AVAILABLE".to_owned(), None),
        "the hold was released"
    );
    let orders = world.orders("crash-saga-b").await;
    assert!(
        orders
            .values()
            .all(|o| o.status == "ORDER_STATUS_CANCELLED"),
        "{orders:?}"
    );
    assert!(world.payments().await.is_empty(), "no money moved");
    world.assert_invariants("crash-saga-b", 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lease_holder_paused_past_its_lease_is_refused_by_fencing() {
    let world = World::start(MeshOptions {
        coordinator_args: vec!["--lease-ttl-ms", "1000"],
        coordinator_env: vec![("FAILPOINTS", "lease::after_acquire=sleep(1500)")],
        ..Default::default()
    })
    .await;
    world.event("fenced", 1, 2, 6_000).await;
    let (rival, rival_log) = world
        .mesh
        .another_coordinator(&MeshOptions {
            coordinator_args: vec!["--lease-ttl-ms", "1000"],
            ..Default::default()
        })
        .await
        .expect("a second coordinator starts");

    // A takes the lease and its fencing token, then stops (SIGSTOP) before writing.
    let mut a = world.coordinator.clone();
    let stale = tokio::spawn(async move {
        a.purchase(purchase(
            Protocol::Lease,
            "fenced",
            &["A-1-1"],
            "tok_visa",
            "holder-a",
        ))
        .await
    });
    eventually("A's fencing token", Duration::from_secs(30), || async {
        log_value(&world, "SELECT fencing_token::text FROM transactions")
            .await
            .is_some()
    })
    .await;
    world.mesh.coordinator.pause().expect("SIGSTOP");
    // A's lease expires: its lock key is gone from Redis.
    let redis = redis::Client::open(local_mesh::redis_url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    eventually("A's lease to expire", Duration::from_secs(30), || {
        let mut redis = redis.clone();
        async move {
            redis::cmd("EXISTS")
                .arg("lock:seat:{fenced}:A-1-1")
                .query_async::<i64>(&mut redis)
                .await
                .is_ok_and(|n| n == 0)
        }
    })
    .await;

    // B buys the same seat with a newer token.
    let mut b = coordinator_client(&rival).await;
    let bought = b
        .purchase(purchase(
            Protocol::Lease,
            "fenced",
            &["A-1-1"],
            "tok_visa",
            "holder-b",
        ))
        .await
        .expect("B buys the seat once A's lease has expired")
        .into_inner();

    // A wakes up and writes with its old token: fencing refuses it.
    world.mesh.coordinator.resume().expect("SIGCONT");
    let status = stale
        .await
        .expect("joins")
        .expect_err("A's stale purchase is refused");
    let (code, reason, metadata) = reason(&status);
    assert_eq!(
        (code, reason.as_str()),
        (Code::FailedPrecondition, "STALE_FENCING_TOKEN"),
        "{status:?}"
    );
    assert_eq!(metadata["seats"], "A-1-1");

    let seats = world.seats("fenced").await;
    assert_eq!(
        seats["A-1-1"],
        ("SOLD".to_owned(), Some(bought.order_id.clone())),
        "exactly one sale"
    );
    let orders = world.orders("fenced").await;
    let confirmed: Vec<_> = orders
        .iter()
        .filter(|(_, o)| o.status == "ORDER_STATUS_CONFIRMED")
        .collect();
    assert_eq!(confirmed.len(), 1);
    world.settle().await;
    world
        .assert_invariants_across("fenced", 2, &[&rival_log])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parked_purchase_is_finished_by_recovery_once_the_participant_is_back() {
    let world = World::start(impatient_coordinator()).await;
    world.event("parked", 1, 2, 1_000).await;
    world.mesh.payments.pause().expect("SIGSTOP payments");

    let status = world
        .buy(
            Protocol::TwoPhaseCommit,
            "parked",
            &["A-1-1"],
            "tok_visa",
            "parked-1",
        )
        .await
        .expect_err("payments does not answer");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("the purchase was aborted"),
        "{status:?}"
    );
    assert_eq!(
        log_value(&world, "SELECT state || ' ' || decision FROM transactions")
            .await
            .as_deref(),
        Some("NEEDS_ATTENTION ABORT"),
        "the abort could not reach payments: parked"
    );
    let pending = world
        .coordinator
        .clone()
        .list_pending(ListPendingRequest {})
        .await
        .expect("pending")
        .into_inner()
        .transactions;
    assert_eq!(pending.len(), 1);
    assert!(pending[0].needs_attention);

    world.mesh.payments.resume().expect("SIGCONT payments");
    eventually(
        "recovery to finish the parked purchase",
        Duration::from_secs(30),
        || async {
            log_value(&world, "SELECT state FROM transactions")
                .await
                .as_deref()
                == Some("ABORTED")
        },
    )
    .await;
    // Recovery may also have tried while payments was still frozen: each try is counted,
    // and there are at most five before a purchase waits for a person.
    let attempts: u32 = log_value(&world, "SELECT recovery_attempts::text FROM transactions")
        .await
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(
        (1..=5).contains(&attempts),
        "{attempts} counted recovery attempts"
    );
    // Recovery numbers its attempts on from the purchase's own: the abort at payments
    // reads #1, #2, ... #n in the log, each number once, however many runs made them.
    let numbered: Vec<i32> = world
        .mesh
        .coordinator_db
        .connect()
        .await
        .expect("connects")
        .query(
            "SELECT attempt FROM steps WHERE participant = 'payments' AND operation = 'abort'
              ORDER BY sequence",
            &[],
        )
        .await
        .expect("query")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let expected: Vec<i32> = (1..=i32::try_from(numbered.len()).expect("few")).collect();
    assert!(
        numbered.len() >= 2,
        "the purchase's try and recovery's: {numbered:?}"
    );
    assert_eq!(numbered, expected, "one number per attempt, in order");
    world.assert_invariants("parked", 2).await;
    let seats = world.seats("parked").await;
    assert!(
        seats.values().all(|(status, _)| status == "AVAILABLE"),
        "{seats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_2pc_abort_keeps_the_seats_locked_until_orders_has_dropped_its_claim() {
    let world = World::start(MeshOptions {
        coordinator_env: vec![("FAILPOINTS", "2pc::during_abort=sleep(1500)")],
        coordinator_args: vec![
            "--finish-attempts",
            "2",
            "--call-timeout-ms",
            "500",
            "--recovery-interval-ms",
            "1000",
        ],
        ..Default::default()
    })
    .await;
    world.event("abort-order", 1, 4, 5_000).await;
    // Orders prepares (its claim on A-1-1 is written), payments declines: abort.
    let buying = {
        let world_client = world.coordinator.clone();
        tokio::spawn(async move {
            let mut client = world_client;
            client
                .purchase(purchase(
                    Protocol::TwoPhaseCommit,
                    "abort-order",
                    &["A-1-1"],
                    "tok_declined",
                    "abort-order-key",
                ))
                .await
        })
    };
    eventually("the abort decision", Duration::from_secs(30), || async {
        log_value(&world, "SELECT decision FROM transactions")
            .await
            .as_deref()
            == Some("ABORT")
    })
    .await;
    // Orders stops answering before the abort reaches it.
    world.mesh.orders.pause().expect("SIGSTOP orders");

    let status = buying
        .await
        .expect("the purchase task")
        .expect_err("declined");
    let (code, reason, _) = reason(&status);
    assert_eq!(
        (code, reason.as_str()),
        (Code::FailedPrecondition, "CARD_DECLINED")
    );
    assert_eq!(
        log_value(&world, "SELECT state FROM transactions")
            .await
            .as_deref(),
        Some("NEEDS_ATTENTION"),
        "orders never acknowledged the abort"
    );
    let txid = log_value(&world, "SELECT txid FROM transactions")
        .await
        .expect("txid");
    let sales = world
        .inventory
        .clone()
        .list_in_doubt_sales(ListInDoubtSalesRequest::default())
        .await
        .expect("listed")
        .into_inner();
    assert_eq!(
        sales
            .transactions
            .iter()
            .map(|t| t.txid.as_str())
            .collect::<Vec<_>>(),
        vec![txid.as_str()],
        "the seat stays locked in inventory while orders may still hold its claim"
    );

    world.mesh.orders.resume().expect("SIGCONT orders");
    eventually(
        "recovery to finish the abort",
        Duration::from_secs(30),
        || async {
            log_value(&world, "SELECT state FROM transactions")
                .await
                .as_deref()
                == Some("ABORTED")
        },
    )
    .await;
    let seats = world.seats("abort-order").await;
    assert_eq!(seats["A-1-1"], ("AVAILABLE".to_owned(), None));
    let orders = world.orders("abort-order").await;
    assert!(
        orders
            .values()
            .all(|o| o.status == "ORDER_STATUS_CANCELLED"),
        "{orders:?}"
    );
    assert!(!in_doubt_everywhere(&world).await);
    world.assert_invariants("abort-order", 4).await;
}

/// The confirmation is recorded by the statement that logs the COMMIT decision; a
/// coordinator killed right then, before its relay ran, still has it, and the restarted
/// one finishes the purchase and relays it: the mail arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_coordinator_killed_after_the_commit_decision_and_before_the_relay_still_confirms() {
    let maildev = local_mesh::PrivateMaildev::start().expect("maildev starts");
    let smtp = maildev.smtp_url();
    let mut world = World::start(MeshOptions {
        coordinator_env: vec![("FAILPOINTS", "2pc::after_decision=sleep(60000)")],
        notifier_args: vec!["--smtp-url", &smtp],
        ..Default::default()
    })
    .await;
    world.event("crash-mail", 1, 2, 5_000).await;
    let mut client = world.coordinator.clone();
    let request = PurchaseRequest {
        contact: Some(Contact {
            email: "crash@example.com".into(),
            phone: String::new(),
        }),
        ..purchase(
            Protocol::TwoPhaseCommit,
            "crash-mail",
            &["A-1-1"],
            "tok_visa",
            "crash-mail",
        )
    };
    tokio::spawn(async move {
        let _ = client.purchase(request).await;
    });
    eventually("the commit decision", Duration::from_secs(30), || async {
        log_value(&world, "SELECT decision FROM transactions")
            .await
            .as_deref()
            == Some("COMMIT")
    })
    .await;
    assert_eq!(
        log_value(
            &world,
            "SELECT count(*)::text FROM outbox WHERE relayed_at IS NULL"
        )
        .await
        .as_deref(),
        Some("1"),
        "recorded with the decision, not relayed yet"
    );

    kill_and_restart_coordinator(&mut world).await;

    eventually("the relay", Duration::from_secs(30), || async {
        log_value(
            &world,
            "SELECT count(*)::text FROM outbox WHERE relayed_at IS NOT NULL",
        )
        .await
        .as_deref()
            == Some("1")
    })
    .await;
    eventually("the mail", Duration::from_secs(30), || async {
        maildev
            .emails_to("crash@example.com")
            .await
            .is_ok_and(|mails| mails.len() == 1)
    })
    .await;
    let mail = &maildev.emails_to("crash@example.com").await.expect("mails")[0];
    let order_id = log_value(&world, "SELECT order_id FROM transactions")
        .await
        .expect("order");
    assert!(
        mail["text"]
            .as_str()
            .is_some_and(|text| text.contains(&order_id)),
        "the mail names the order"
    );
    world.assert_invariants("crash-mail", 2).await;
}

/// A purchase cut short by a crash is undone by recovery under every protocol; its
/// retried key is answered ABORTED with reason INTERRUPTED, in words that say so.
///
/// One protocol at a time: each purchase crashes the coordinator at its failpoint
/// (2PC after every prepare, a saga after its hold, a lease purchase after taking its
/// leases) and the restarted coordinator undoes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purchase_undone_after_a_crash_is_answered_interrupted_under_each_protocol() {
    let mut world = World::start(MeshOptions {
        coordinator_env: vec![(
            "FAILPOINTS",
            "2pc::before_decision=return;saga::after_hold=return;lease::after_acquire=return",
        )],
        ..Default::default()
    })
    .await;
    for protocol in PROTOCOLS {
        let event = format!("cut-{}", short(protocol));
        world.event(&event, 1, 2, 1_000).await;
        start_purchase(&world, protocol, &event, &["A-1-1"]);
        let status = world
            .mesh
            .coordinator
            .wait_exit(Duration::from_secs(30))
            .await
            .expect("the coordinator crashes at the failpoint");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(6),
            "aborted by the failpoint"
        );
        restart_coordinator(&mut world).await;
    }

    for protocol in PROTOCOLS {
        let p = short(protocol);
        let event = format!("cut-{p}");
        let status = world
            .coordinator
            .clone()
            .purchase(purchase(
                protocol,
                &event,
                &["A-1-1"],
                "tok_visa",
                &format!("crash-{event}"),
            ))
            .await
            .expect_err("the interrupted purchase was undone");
        let (code, reason, _) = reason(&status);
        assert_eq!(
            (code, reason.as_str()),
            (Code::Aborted, "INTERRUPTED"),
            "{p}: {status:?}"
        );
        assert_eq!(
            world.seats(&event).await["A-1-1"],
            ("AVAILABLE".to_owned(), None),
            "{p}: the seat is for sale again"
        );
        world.assert_invariants(&event, 2).await;
    }
}

/// An admitted fan who sent the purchase before the admission expired keeps the turn,
/// however long the coordinator takes to claim it (here 3 s of queue before the claim,
/// for a 2 s admission); a fan who sent it after the expiry is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_is_checked_when_the_coordinator_received_the_purchase() {
    let world = World::start(MeshOptions {
        coordinator_env: vec![("FAILPOINTS", "purchase::before_claim=sleep(3000)")],
        ..MeshOptions::default()
    })
    .await;
    world.event("queued", 1, 8, 2_500).await;
    world.open_room("queued", 8, Duration::from_secs(2)).await;

    // Each protocol buys a seat of its own (they do not race for one here).
    let seats = ["A-1-1", "A-1-2", "A-1-3"];
    let bought = futures::future::join_all(PROTOCOLS.iter().zip(seats).map(|(&protocol, seat)| {
        let world = &world;
        async move {
            let p = short(protocol);
            let token = world.admitted("queued", &user(p)).await;
            let request = PurchaseRequest {
                admission_token: token,
                ..purchase(protocol, "queued", &[seat], "tok_visa", p)
            };
            let answer = world.coordinator.clone().purchase(request).await;
            (p, answer.map(|a| a.into_inner().seats.len()))
        }
    }))
    .await;
    for (p, answer) in bought {
        assert_eq!(answer.expect(p), 1, "{p}: sent in time, bought");
    }

    // Sent after the expiry: refused, and nothing written.
    let token = world.admitted("queued", &user("late")).await;
    until_expired(&token).await;
    let request = PurchaseRequest {
        quantity: 1,
        admission_token: token,
        ..purchase(Protocol::Saga, "queued", &[], "tok_visa", "late")
    };
    let status = world
        .coordinator
        .clone()
        .purchase(request)
        .await
        .expect_err("sent after the admission expired");
    let (code, reason, _) = reason(&status);
    assert_eq!(
        (code, reason.as_str()),
        (Code::PermissionDenied, "ADMISSION_EXPIRED"),
        "{status:?}"
    );
    assert_eq!(world.logged("queued").await, 3, "only the three in time");
    world.settle().await;
    world.assert_invariants("queued", 8).await;
}

/// Two coordinators on one log. A purchase through the first stops after every prepare
/// (failpoint), the first is SIGSTOPped past its ownership, and the second takes the
/// purchase over: undecided, so presumed abort. SIGCONT: the first one's decision is
/// refused by the log (which records the refusal), it sends no commit, and answers its
/// caller "outcome unknown"; a retry of the key, at the second, gets the true outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_paused_past_its_ownership_cannot_write_and_the_retry_gets_the_true_outcome()
{
    let ttl = [
        "--ownership-ttl-ms",
        "1500",
        "--takeover-interval-ms",
        "200",
    ];
    let world = World::start(MeshOptions {
        coordinator_args: ttl.to_vec(),
        coordinator_env: vec![("FAILPOINTS", "2pc::before_decision=sleep(2000)")],
        ..MeshOptions::default()
    })
    .await;
    let second = world
        .mesh
        .peer_coordinator(&MeshOptions {
            coordinator_args: ttl.to_vec(),
            ..MeshOptions::default()
        })
        .await
        .expect("a second coordinator on the log");
    world.event("owned", 1, 2, 4_000).await;

    let request = purchase(
        Protocol::TwoPhaseCommit,
        "owned",
        &["A-1-1"],
        "tok_visa",
        "paused-buyer",
    );
    let answer = {
        let mut first = world.coordinator.clone();
        let request = request.clone();
        tokio::spawn(async move { first.purchase(request).await })
    };
    // Every participant prepared, the first coordinator in its failpoint: stop it.
    local_mesh::eventually("every branch prepared", Duration::from_secs(30), || {
        in_doubt_everywhere(&world)
    })
    .await;
    world.mesh.coordinator.pause().expect("SIGSTOP");
    let first_id = log_value(&world, "SELECT owner FROM transactions").await;
    local_mesh::eventually(
        "the second coordinator took the purchase over and aborted it",
        Duration::from_secs(30),
        || async {
            log_value(&world, "SELECT state FROM transactions")
                .await
                .as_deref()
                == Some("ABORTED")
        },
    )
    .await;
    assert_ne!(
        log_value(&world, "SELECT owner FROM transactions").await,
        first_id,
        "owned by the second now"
    );
    // Taken over at epoch 2 (the ownership events below say so). The second's
    // reconciliation may take the ended purchase once more, to re-send its abort to a
    // branch it listed in doubt before the abort landed (seen on a loaded machine).
    let epoch: i64 = log_value(&world, "SELECT owner_epoch::text FROM transactions")
        .await
        .and_then(|e| e.parse().ok())
        .expect("an epoch");
    assert!(epoch >= 2, "taken over by the second: epoch {epoch}");
    world.mesh.coordinator.resume().expect("SIGCONT");

    // The first coordinator's answer: unknown, not "committed" — it wrote nothing.
    let status = answer
        .await
        .expect("the call ends")
        .expect_err("the first coordinator lost the purchase");
    let (code, why, metadata) = reason(&status);
    assert_eq!(
        (code, why.as_str()),
        (Code::Unavailable, "OUTCOME_UNKNOWN"),
        "{status:?}"
    );
    assert!(metadata.contains_key("txid"));
    // The log says so: the second's takeover at epoch 2, then the first's refused writes
    // at epoch 1 (its decision, or its renewal when that noticed first).
    let events = log_value(
        &world,
        "SELECT string_agg(event || ' ' || epoch || ' ' || coalesce(detail, ''), ', ' ORDER BY id)
           FROM ownership_events",
    )
    .await
    .unwrap_or_default();
    let events: Vec<&str> = events.split(", ").collect();
    assert_eq!(events[0], "takeover 2 RUNNING", "{events:?}");
    assert!(events.len() >= 2, "{events:?}");
    assert!(
        events[1..]
            .iter()
            .all(|e| *e == "refused 1 decision" || *e == "refused 1 renewal"),
        "{events:?}"
    );
    assert_eq!(
        log_value(&world, "SELECT decision FROM transactions")
            .await
            .as_deref(),
        Some("ABORT"),
        "the decision written once stands"
    );

    // The fan's retry, at the second coordinator: the purchase's true outcome.
    let status = coordinator_client(&second)
        .await
        .purchase(request)
        .await
        .expect_err("the purchase was aborted");
    let (code, reason, _) = reason(&status);
    assert_eq!(
        (code, reason.as_str()),
        (Code::Aborted, "INTERRUPTED"),
        "{status:?}"
    );
    world.settle().await;
    world.assert_invariants("owned", 2).await;
}

/// The fencing token is taken with the leases, in one script: token order is lease
/// order. A holder stopped right after taking its leases (failpoint) is overtaken by a
/// coordinator of another log that leases the seat once the first lease lapsed, and
/// sells it. Woken, the first holder's sale is refused as stale — its token is the
/// older one — and the second holder's sale stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_stopped_after_taking_its_leases_holds_the_older_token() {
    let world = World::start(MeshOptions {
        coordinator_args: vec!["--lease-ttl-ms", "1000"],
        coordinator_env: vec![("FAILPOINTS", "lease::after_leases=sleep(2500)")],
        ..Default::default()
    })
    .await;
    let event = format!("tokens-{}", std::process::id());
    world.event(&event, 1, 2, 2_000).await;
    let (second, second_log) = world
        .mesh
        .another_coordinator(&MeshOptions {
            coordinator_args: vec!["--lease-ttl-ms", "1000"],
            ..Default::default()
        })
        .await
        .expect("a second coordinator starts");

    let mut first = world.coordinator.clone();
    let request = purchase(
        Protocol::Lease,
        &event,
        &["A-1-1"],
        "tok_visa",
        "first-holder",
    );
    let stopped = tokio::spawn(async move { first.purchase(request).await });
    // The first holder leased the seat, then its lease lapsed while it slept.
    let lock = format!("lock:seat:{{{event}}}:A-1-1");
    let redis = redis::Client::open(local_mesh::redis_url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    local_mesh::eventually("the first lease", Duration::from_secs(30), || {
        let mut redis = redis.clone();
        let lock = lock.clone();
        async move {
            redis::cmd("EXISTS")
                .arg(&lock)
                .query_async::<i64>(&mut redis)
                .await
                .is_ok_and(|n| n == 1)
        }
    })
    .await;
    local_mesh::eventually("the first lease lapses", Duration::from_secs(30), || {
        let mut redis = redis.clone();
        let lock = lock.clone();
        async move {
            redis::cmd("EXISTS")
                .arg(&lock)
                .query_async::<i64>(&mut redis)
                .await
                .is_ok_and(|n| n == 0)
        }
    })
    .await;

    // The second coordinator leases and sells the seat.
    coordinator_client(&second)
        .await
        .purchase(purchase(
            Protocol::Lease,
            &event,
            &["A-1-1"],
            "tok_visa",
            "second-holder",
        ))
        .await
        .expect("the current lease holder buys");
    // The first wakes: refused as stale — not as "taken" — because its token is older.
    let status = stopped
        .await
        .expect("the call ends")
        .expect_err("the first holder's lease lapsed");
    let (code, why, _) = reason(&status);
    assert_eq!(
        (code, why.as_str()),
        (Code::FailedPrecondition, "STALE_FENCING_TOKEN"),
        "{status:?}"
    );
    let first_token: i64 = log_value(&world, "SELECT fencing_token::text FROM transactions")
        .await
        .expect("the first intent")
        .parse()
        .expect("a token");
    let second_token: i64 = second_log
        .connect()
        .await
        .expect("connects")
        .query_one("SELECT fencing_token FROM transactions", &[])
        .await
        .expect("the second intent")
        .get(0);
    assert!(
        first_token < second_token,
        "tokens follow the leases: {first_token} then {second_token}"
    );
    world.settle().await;
    world
        .assert_invariants_across(&event, 2, &[&second_log])
        .await;
}

/// A lease sale refused on a retry, after an attempt whose answer was lost, may have
/// sold all the same: the purchase undoes it. The first attempt commits and its answer
/// is lost (inventory sleeps past the call timeout, failpoint); the retry waits on a row
/// lock (held by the test) and is refused. The seat must not stay sold to the aborted
/// purchase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_sale_refused_on_retry_after_a_lost_answer_is_undone() {
    let world = World::start(MeshOptions {
        // The retry waits on the row lock for inventory's lock timeout (2 s), within its
        // call timeout; the first attempt's answer sleeps past it.
        coordinator_args: vec!["--call-timeout-ms", "2500"],
        env: vec![("FAILPOINTS", "inventory::after_sell=1*sleep(3000)")],
        ..Default::default()
    })
    .await;
    world.event("lost-sale", 1, 2, 2_000).await;
    let mut coordinator = world.coordinator.clone();
    let answer = tokio::spawn(async move {
        coordinator
            .purchase(purchase(
                Protocol::Lease,
                "lost-sale",
                &["A-1-1"],
                "tok_visa",
                "lost",
            ))
            .await
    });
    // The first attempt committed (its answer is sleeping): hold the seat's row lock so
    // that the retry is refused.
    local_mesh::eventually(
        "the first sale commits",
        Duration::from_secs(30),
        || async { world.seats("lost-sale").await["A-1-1"].0 == "SOLD" },
    )
    .await;
    let mut inventory = world.mesh.inventory_db.connect().await.expect("connects");
    let lock = inventory.transaction().await.expect("a transaction");
    lock.execute(
        "SELECT 1 FROM seats WHERE seat_id = 'A-1-1' FOR UPDATE",
        &[],
    )
    .await
    .expect("locked");
    local_mesh::eventually("the retry is refused", Duration::from_secs(30), || async {
        log_value(
            &world,
            "SELECT count(*)::text FROM steps
              WHERE operation = 'sell_fenced' AND outcome = 'FAILED'",
        )
        .await
        .as_deref()
            == Some("1")
    })
    .await;
    lock.rollback().await.expect("released");
    let status = answer
        .await
        .expect("the call ends")
        .expect_err("the retry was refused");
    assert_eq!(reason(&status).1, "SEAT_TAKEN", "{status:?}");
    world.settle().await;
    assert_eq!(
        world.seats("lost-sale").await["A-1-1"],
        ("AVAILABLE".to_owned(), None),
        "the sale the lost answer hid was undone"
    );
    world.assert_invariants("lost-sale", 2).await;
}

/// A lease purchase undone after its order was placed, whose cancel the orders store
/// acknowledged and lost (DynamoDB Local loses an acknowledged write when SIGKILLed;
/// here the test puts the order back as CONFIRMED, its claim LIVE): after the next
/// orders outage, recovery re-asserts what the log decided — the order is cancelled
/// again and its claim released, not merely logged as disagreeing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_cancel_lost_by_the_orders_store_is_reasserted_after_an_outage() {
    lost_lease_cancel_is_reasserted(&[]).await;
}

/// The same with the coordinator's wall clock a minute ahead of PostgreSQL's (libfaketime,
/// monotonic time untouched): which purchases were decided around the outage is measured
/// on one clock, the log's, so the lost cancel is still found and re-asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_cancel_is_reasserted_when_the_coordinator_clock_runs_ahead_of_the_log() {
    lost_lease_cancel_is_reasserted(&[
        (
            "LD_PRELOAD",
            "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        ),
        ("FAKETIME", "+60s"),
        ("DONT_FAKE_MONOTONIC", "1"),
    ])
    .await;
}

async fn lost_lease_cancel_is_reasserted(clock: &[(&'static str, &'static str)]) {
    let mut coordinator_env = vec![("FAILPOINTS", "lease::before_decision=1*return")];
    coordinator_env.extend_from_slice(clock);
    let mut world = World::start(MeshOptions {
        // Orders decided up to two minutes before the outage are read back: the purchase
        // whose cancel is lost was decided well before it on a loaded machine.
        coordinator_args: vec![
            "--call-timeout-ms",
            "1000",
            "--forward-attempts",
            "1",
            "--reassert-window-ms",
            "120000",
        ],
        coordinator_env,
        ..Default::default()
    })
    .await;
    // A-1-1 for the purchase whose cancel is lost; the others for purchases that meet
    // the orders outage.
    world.event("recancel", 1, 6, 2_000).await;
    start_purchase(&world, Protocol::Lease, "recancel", &["A-1-1"]);
    // The order is placed, then the coordinator crashes before deciding; restarted, its
    // recovery undoes the purchase: order cancelled, money refunded, seat unsold.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while world.mesh.coordinator.is_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "the coordinator never reached its failpoint"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    restart_coordinator(&mut world).await;
    assert_eq!(
        log_value(&world, "SELECT state FROM transactions")
            .await
            .as_deref(),
        Some("ABORTED")
    );
    let order_id = log_value(&world, "SELECT order_id FROM transactions")
        .await
        .expect("the order");
    assert_eq!(
        world.orders("recancel").await[&order_id].status,
        "ORDER_STATUS_CANCELLED"
    );

    // The store loses the cancel it acknowledged.
    let set = |key: std::collections::HashMap<String, AttributeValue>, update: &str| {
        world
            .dynamodb
            .update_item()
            .table_name(&world.mesh.orders_table)
            .set_key(Some(key))
            .update_expression(update)
    };
    let key = |pk: String, sk: &str| {
        std::collections::HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk)),
            ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
        ])
    };
    set(
        key(format!("ORDER#{order_id}"), "ORDER"),
        "SET #s = :confirmed",
    )
    .expression_attribute_names("#s", "status")
    .expression_attribute_values(
        ":confirmed",
        AttributeValue::S("ORDER_STATUS_CONFIRMED".into()),
    )
    .send()
    .await
    .expect("the order is CONFIRMED again");
    set(
        key("CLAIM#recancel#A-1-1".into(), "CLAIM"),
        "SET claim_status = :live",
    )
    .expression_attribute_values(":live", AttributeValue::S("LIVE".into()))
    .send()
    .await
    .expect("its claim LIVE again");

    // An orders outage: a purchase's call to orders ends with an unknown outcome (the
    // coordinator answers PARTICIPANT_UNAVAILABLE naming orders, or an unknown outcome).
    // On a loaded machine a purchase may fail before it reaches orders (another call
    // timing out); then another one is tried, on a seat of its own, a few times.
    world.mesh.orders.pause().expect("SIGSTOP orders");
    let mut answers = Vec::new();
    for attempt in 1..=5 {
        let seat = format!("A-1-{}", attempt + 1);
        let answer = world
            .coordinator
            .clone()
            .purchase(purchase(
                Protocol::Lease,
                "recancel",
                &[&seat],
                "tok_visa",
                &format!("outage-{attempt}"),
            ))
            .await;
        let met_the_outage = answer.as_ref().is_err_and(|status| {
            proto::outcome::Outcome::of(status) == proto::outcome::Outcome::Unknown
                || proto::error::Refusal::of(status).is_some_and(|refusal| {
                    refusal.reason == ErrorReason::ParticipantUnavailable
                        && refusal.get("participant") == Some("orders")
                })
        });
        answers.push(format!("{answer:?}"));
        if met_the_outage {
            break;
        }
        assert!(
            attempt < 5,
            "no purchase met the orders outage: {answers:#?}"
        );
    }
    world.mesh.orders.resume().expect("SIGCONT orders");

    // Recovery re-asserts the decision of every purchase decided around the outage.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while world.orders("recancel").await[&order_id].status != "ORDER_STATUS_CANCELLED" {
        assert!(
            std::time::Instant::now() < deadline,
            "the lost cancel was not re-asserted within 60 s; the coordinator said:\n{}",
            world
                .mesh
                .coordinator
                .log()
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("re-assert"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    world.settle().await;
    world.assert_invariants("recancel", 6).await;
}
