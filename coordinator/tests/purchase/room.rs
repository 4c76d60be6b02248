//! Purchases of events with a waiting room: the coordinator refuses a purchase without a
//! valid admission (and writes nothing anywhere), a retried key of a committed purchase
//! is replayed whatever happened since, and seats held by a purchase that then fails go
//! to the next fan in line — the room does not close as sold out.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use local_mesh::MeshOptions;
use proto::v1::*;
use tonic::Code;

use crate::common::*;

fn best_available(protocol: Protocol, event: &str, key: &str, token: &str) -> PurchaseRequest {
    PurchaseRequest {
        quantity: 1,
        admission_token: token.to_owned(),
        ..purchase(protocol, event, &[], "tok_visa", key)
    }
}

/// The same token with another subject in its payload and the original signature.
fn with_subject(token: &str, subject: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("base64")).expect("json");
    claims["sub"] = subject.into();
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json"));
    format!("{}.{payload}.{}", parts[0], parts[2])
}

fn denied(status: &tonic::Status) -> (Code, String) {
    let (code, reason, _) = reason(status);
    (code, reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_without_a_valid_admission_is_permission_denied_and_writes_nothing() {
    let world = World::start(MeshOptions::default()).await;
    world.event("gated", 1, 4, 2_500).await;
    world.open_room("gated", 2, Duration::from_secs(2)).await;
    let ana_token = world.admitted("gated", &user("ana")).await;
    let mut coordinator = world.coordinator.clone();

    for protocol in PROTOCOLS {
        let p = short(protocol);
        let cases = [
            (
                "no token",
                best_available(protocol, "gated", "ana", ""),
                "ADMISSION_REQUIRED",
            ),
            (
                "another user's token",
                best_available(protocol, "gated", "bob", &ana_token),
                "ADMISSION_INVALID",
            ),
            (
                "a forged token (ana's signature, bob's name)",
                best_available(
                    protocol,
                    "gated",
                    "bob",
                    &with_subject(&ana_token, &user("bob")),
                ),
                "ADMISSION_INVALID",
            ),
            (
                "a token that is not one",
                best_available(protocol, "gated", "ana", "eyJ.not.a-token"),
                "ADMISSION_INVALID",
            ),
        ];
        for (case, mut request, expected) in cases {
            request.idempotency_key = format!("{}-{p}", request.idempotency_key);
            let status = coordinator
                .purchase(request)
                .await
                .expect_err("refused without a valid admission");
            assert_eq!(
                denied(&status),
                (Code::PermissionDenied, expected.to_owned()),
                "{p}, {case}: {status:?}"
            );
        }
    }

    // Ana's admission lasts 2 s; past it, her own token is refused too.
    until_expired(&ana_token).await;
    for protocol in PROTOCOLS {
        let key = format!("ana-late-{}", short(protocol));
        let mut request = best_available(protocol, "gated", &key, &ana_token);
        request.user_id = user("ana");
        let status = coordinator.purchase(request).await.expect_err("expired");
        assert_eq!(
            denied(&status),
            (Code::PermissionDenied, "ADMISSION_EXPIRED".to_owned()),
            "{status:?}"
        );
    }

    // Nothing was written anywhere.
    assert_eq!(world.logged("gated").await, 0, "nothing logged");
    let seats = world.seats("gated").await;
    assert!(
        seats
            .values()
            .all(|(status, order)| status == "AVAILABLE" && order.is_none()),
        "{seats:?}"
    );
    assert!(world.orders("gated").await.is_empty(), "no order");
    assert!(world.payments().await.is_empty(), "no payment");

    // The control: an admitted fan with her own token buys.
    let cara_token = world.admitted("gated", &user("cara")).await;
    let bought = coordinator
        .purchase(best_available(Protocol::Saga, "gated", "cara", &cara_token))
        .await
        .expect("an admitted fan buys")
        .into_inner();
    assert_eq!(bought.seats.len(), 1);
    assert_eq!(world.logged("gated").await, 1);
}

/// The log notes that the room was told a purchase ended, as recovery's relay of lost
/// releases reads it: `admission_released_at` on the purchase, and one release step that
/// went through.
async fn assert_release_noted(world: &World, txid: &str) {
    let sql = world.mesh.coordinator_db.connect().await.expect("connects");
    // The purchase tells the room once its end is logged, around its answer: bounded.
    for _ in 0..100 {
        let row = sql
            .query_one(
                "SELECT admission_released_at IS NOT NULL,
                        (SELECT count(*) FROM steps
                          WHERE txid = $1 AND operation = 'release_admission'
                            AND outcome = 'OK')
                   FROM transactions WHERE txid = $1",
                &[&txid],
            )
            .await
            .expect("the purchase is logged");
        let (noted, released): (bool, i64) = (row.get(0), row.get(1));
        if noted {
            assert_eq!(released, 1, "{txid}: one release went through");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{txid}: the log never noted that the room was told the purchase ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_key_of_a_committed_purchase_is_replayed_after_the_event_sold_out() {
    let world = World::start(MeshOptions::default()).await;
    let mut coordinator = world.coordinator.clone();
    for protocol in PROTOCOLS {
        let p = short(protocol);

        // Through a waiting room.
        let event = format!("last-{p}");
        world.event(&event, 1, 1, 1_000).await;
        world.open_room(&event, 4, Duration::from_secs(30)).await;
        let key = format!("first-{p}");
        let token = world.admitted(&event, &user(&key)).await;
        let request = best_available(protocol, &event, &key, &token);
        let bought = coordinator
            .purchase(request.clone())
            .await
            .expect("the only seat is sold")
            .into_inner();
        match world
            .wait_in_room(&event, &user(&format!("second-{p}")))
            .await
        {
            watch_response::Update::SoldOut(sold_out) => assert_eq!(sold_out.capacity, 1),
            other => panic!("{p}: the next fan hears sold out, not {other:?}"),
        }
        let replay = coordinator
            .purchase(request)
            .await
            .unwrap_or_else(|status| {
                panic!("{p}: the retry is answered with its purchase: {status:?}")
            })
            .into_inner();
        assert!(replay.replayed, "{p}");
        assert_eq!(
            (&replay.txid, &replay.order_id, &replay.seats),
            (&bought.txid, &bought.order_id, &bought.seats),
            "{p}"
        );
        assert_release_noted(&world, &bought.txid).await;

        // Without a room, past the sold-out fast path.
        let event = format!("bare-{p}");
        world.event(&event, 1, 1, 1_000).await;
        let first = best_available(protocol, &event, &format!("bare-first-{p}"), "");
        let bought = coordinator
            .purchase(first.clone())
            .await
            .expect("the only seat is sold")
            .into_inner();
        for later in ["bare-second", "bare-third"] {
            let status = coordinator
                .purchase(best_available(
                    protocol,
                    &event,
                    &format!("{later}-{p}"),
                    "",
                ))
                .await
                .expect_err("sold out");
            assert_eq!(
                denied(&status),
                (Code::FailedPrecondition, "SOLD_OUT".to_owned()),
                "{p}: {status:?}"
            );
        }
        let replay = coordinator
            .purchase(first)
            .await
            .unwrap_or_else(|status| panic!("{p}: not answered sold out: {status:?}"))
            .into_inner();
        assert!(replay.replayed, "{p}");
        assert_eq!(replay.txid, bought.txid, "{p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_whose_seats_are_held_while_a_card_is_declined_admits_the_next_fan() {
    let world = World::start(MeshOptions::default()).await;
    // Every card-network call takes 1.5 s: a purchase holds its seat that long
    // (prepared under 2pc, HELD under saga, SOLD before the charge under lease).
    world.slow_card_network(Duration::from_millis(1_500)).await;

    for protocol in PROTOCOLS {
        let p = short(protocol);
        let event = format!("held-{p}");
        world.event(&event, 1, 1, 1_000).await;
        world.open_room(&event, 2, Duration::from_secs(30)).await;
        let ana = format!("ana-{p}");
        let ana_token = world.admitted(&event, &user(&ana)).await;

        // Bob queues behind the only seat, which Ana's purchase holds.
        let bob = format!("bob-{p}");
        let waiting = {
            let world_room = world.room.clone();
            let (event, bob_user) = (event.clone(), user(&bob));
            tokio::spawn(async move {
                let mut room = world_room;
                room.join(JoinRequest {
                    event_id: event.clone(),
                    user_id: bob_user.clone(),
                })
                .await
                .expect("joined");
                let mut stream = room
                    .watch(WatchRequest {
                        event_id: event,
                        user_id: bob_user,
                        join: false,
                    })
                    .await
                    .expect("watching")
                    .into_inner();
                loop {
                    let message = stream.message().await.expect("healthy").expect("final");
                    match message.update.expect("update") {
                        watch_response::Update::Waiting(_) => continue,
                        last => return last,
                    }
                }
            })
        };
        let declined = PurchaseRequest {
            card_token: "tok_declined".into(),
            ..best_available(protocol, &event, &ana, &ana_token)
        };
        let status = world
            .coordinator
            .clone()
            .purchase(declined)
            .await
            .expect_err("declined");
        assert_eq!(reason(&status).1, "CARD_DECLINED", "{p}: {status:?}");

        let bob_token = match tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("bob hears within 30 s")
            .expect("bob's task")
        {
            watch_response::Update::Admitted(admission) => admission.token,
            other => panic!("{p}: the seat came back, bob is admitted, not {other:?}"),
        };
        let bought = world
            .coordinator
            .clone()
            .purchase(best_available(protocol, &event, &bob, &bob_token))
            .await
            .unwrap_or_else(|status| panic!("{p}: bob buys the seat: {status:?}"))
            .into_inner();
        let seats = world.seats(&event).await;
        assert_eq!(
            seats["A-1-1"],
            ("SOLD".to_owned(), Some(bought.order_id.clone())),
            "{p}"
        );
        world.settle().await;
        world.assert_invariants(&event, 1).await;
    }
}

/// Joins the room as `user` in the background and follows the Watch stream to its final
/// message (ADMITTED, SOLD_OUT or EXPIRED).
fn watch_in_background(
    world: &World,
    event: &str,
    user: &str,
) -> tokio::task::JoinHandle<watch_response::Update> {
    let mut room = world.room.clone();
    let (event, user) = (event.to_owned(), user.to_owned());
    tokio::spawn(async move {
        room.join(JoinRequest {
            event_id: event.clone(),
            user_id: user.clone(),
        })
        .await
        .expect("joined");
        let mut stream = room
            .watch(WatchRequest {
                event_id: event,
                user_id: user,
                join: false,
            })
            .await
            .expect("watching")
            .into_inner();
        loop {
            let message = stream.message().await.expect("healthy").expect("final");
            match message.update.expect("update") {
                watch_response::Update::Waiting(_) => continue,
                last => return last,
            }
        }
    })
}

/// A purchase answered "aborted" whose undo has not finished (orders is down: the lease
/// sale's order cannot be cancelled, so the seat stays SOLD) is not over: its admission
/// keeps its slot until recovery has undone it. The room does not call the event sold
/// out meanwhile, and once the seat is back the next fan in line buys it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_whose_undo_is_unfinished_keeps_its_slot_and_the_seat_reaches_the_next_fan() {
    let world = World::start(impatient_coordinator()).await;
    world.event("undoing", 1, 1, 1_000).await;
    world.open_room("undoing", 1, Duration::from_secs(30)).await;
    let ana_token = world.admitted("undoing", &user("ana")).await;
    let bob = watch_in_background(&world, "undoing", &user("bob"));

    // Orders stops answering: Ana's order cannot be placed, nor its undo finished.
    world.mesh.orders.pause().expect("SIGSTOP orders");
    let status = world
        .coordinator
        .clone()
        .purchase(best_available(
            Protocol::Lease,
            "undoing",
            "ana",
            &ana_token,
        ))
        .await
        .expect_err("orders did not answer");
    assert_eq!(reason(&status).1, "PARTICIPANT_UNAVAILABLE", "{status:?}");
    assert_eq!(
        world.seats("undoing").await["A-1-1"].0,
        "SOLD",
        "the undo is unfinished"
    );
    // Meanwhile nobody is told "sold out": the seat may come back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !bob.is_finished(),
        "bob was answered (sold out) while Ana's seat may still come back"
    );

    world.mesh.orders.resume().expect("SIGCONT orders");
    let bob_token = match tokio::time::timeout(Duration::from_secs(60), bob)
        .await
        .expect("bob hears within 60 s")
        .expect("bob's task")
    {
        watch_response::Update::Admitted(admission) => admission.token,
        other => panic!("bob was told {other:?} while the seat was coming back"),
    };
    let bought = world
        .coordinator
        .clone()
        .purchase(best_available(
            Protocol::Lease,
            "undoing",
            "bob",
            &bob_token,
        ))
        .await
        .expect("bob buys the seat that came back")
        .into_inner();
    assert_eq!(bought.seats.len(), 1);
    world.settle().await;
    world.assert_invariants("undoing", 1).await;
}

/// A slot comes back only when its purchase has ended, as the coordinator's log says —
/// not when the room's purchase lease (2 s here) lapses by the clock. Ana's purchase is
/// parked while orders is down, for longer than the lease: the room must not give her
/// slot to Bob (max_active is 1) or call the event sold out meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_in_flight_past_the_room_s_purchase_lease_keeps_its_slot() {
    let world = World::start(MeshOptions {
        waiting_room_args: vec!["--purchase-lease-secs", "2"],
        ..impatient_coordinator()
    })
    .await;
    world.event("leased", 1, 1, 1_000).await;
    world.open_room("leased", 1, Duration::from_secs(2)).await;
    let ana_token = world.admitted("leased", &user("ana")).await;
    let bob = watch_in_background(&world, "leased", &user("bob"));

    world.mesh.orders.pause().expect("SIGSTOP orders");
    let status = world
        .coordinator
        .clone()
        .purchase(best_available(Protocol::Lease, "leased", "ana", &ana_token))
        .await
        .expect_err("orders did not answer");
    assert_eq!(reason(&status).1, "PARTICIPANT_UNAVAILABLE", "{status:?}");
    // Past the purchase lease, twice over: Ana's purchase is still unfinished.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let room = world
        .room
        .clone()
        .get_room(GetRoomRequest {
            event_id: "leased".into(),
        })
        .await
        .expect("room")
        .into_inner()
        .room
        .expect("a room");
    assert_eq!(
        (room.purchasing, room.admitted, room.expired),
        (1, 1, 0),
        "Ana's purchase keeps its slot: {room:?}"
    );
    assert!(
        !bob.is_finished(),
        "bob was answered while Ana's purchase was in flight"
    );

    world.mesh.orders.resume().expect("SIGCONT orders");
    match tokio::time::timeout(Duration::from_secs(60), bob)
        .await
        .expect("bob hears within 60 s")
        .expect("bob's task")
    {
        watch_response::Update::Admitted(_) => {}
        other => panic!("bob was told {other:?}"),
    }
    world.settle().await;
    world.assert_invariants("leased", 1).await;
}

/// The room gives a slot back only once the log says its purchase ended — never on the
/// strength of the answer alone. Ana's card is declined; the log does not take the
/// purchase's end (failpoint `log::end_aborted`, once), so the purchase is unfinished
/// until the coordinator's recovery ends it. Her slot stays taken until then, and the
/// audit (which compares the room's release with the log's end) finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_purchase_whose_end_the_log_missed_keeps_its_slot_until_recovery_ends_it() {
    for protocol in PROTOCOLS {
        // A mesh each: the failpoint fires once, at this protocol's end.
        let world = World::start(MeshOptions {
            coordinator_env: vec![("FAILPOINTS", "log::end_aborted=1*return")],
            ..MeshOptions::default()
        })
        .await;
        let p = short(protocol);
        let event = format!("missed-{p}");
        world.event(&event, 1, 2, 1_000).await;
        world.open_room(&event, 1, Duration::from_secs(30)).await;
        let ana = format!("ana-{p}");
        let token = world.admitted(&event, &user(&ana)).await;
        let declined = PurchaseRequest {
            card_token: "tok_declined".into(),
            ..best_available(protocol, &event, &ana, &token)
        };
        let status = world
            .coordinator
            .clone()
            .purchase(declined)
            .await
            .expect_err("declined");
        assert_eq!(reason(&status).1, "CARD_DECLINED", "{p}: {status:?}");
        // Until the log ends the purchase, the room counts it as buying.
        let room = |world: &World, event: String| {
            let mut room = world.room.clone();
            async move {
                room.get_room(GetRoomRequest { event_id: event })
                    .await
                    .expect("room")
                    .into_inner()
                    .room
                    .expect("a room")
            }
        };
        let state = world.logged_state(&event).await;
        if state != "ABORTED" {
            assert_eq!(
                room(&world, event.clone()).await.purchasing,
                1,
                "{p}: the log says {state}, the slot must stay taken"
            );
        }
        world.settle().await;
        assert_eq!(world.logged_state(&event).await, "ABORTED", "{p}");
        assert_eq!(
            room(&world, event.clone()).await.purchasing,
            0,
            "{p}: recovery ended the purchase and gave the slot back"
        );
        world.assert_invariants(&event, 2).await;
    }
}
