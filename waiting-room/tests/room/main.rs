//! The waiting room as a real process on the real Redis, with a real inventory behind
//! it: a fan keeps their place across a SIGKILL of the service, fans are admitted in
//! join order within max_active, an unused admission expires and its slot goes to the
//! next fan, leaving gives the slot back, and bad input names the field.

use std::time::Duration;

use local_mesh::{Mesh, MeshOptions};
use proto::v1::inventory_service_client::InventoryServiceClient;
use proto::v1::waiting_room_service_client::WaitingRoomServiceClient;
use proto::v1::*;
use server_kit::outgoing::MeshChannel;
use tonic::Code;

struct Rooms {
    mesh: Mesh,
    room: WaitingRoomServiceClient<MeshChannel>,
}

impl Rooms {
    async fn start() -> Self {
        Self::start_with(MeshOptions::default()).await
    }

    async fn start_with(options: MeshOptions<'_>) -> Self {
        let mesh = Mesh::start(options).await.expect("the mesh starts");
        let room = connect(&mesh).await;
        Self { mesh, room }
    }

    /// An event of `seats` seats with an open room.
    async fn room(&self, event_id: &str, seats: u32, max_active: u32, ttl: Duration) {
        InventoryServiceClient::new(
            local_mesh::auth::channel(&self.mesh.inventory.endpoint()).await,
        )
        .create_event(CreateEventRequest {
            event_id: event_id.into(),
            name: format!("Show {event_id}"),
            starts_at: Some(prost_types::Timestamp {
                seconds: 1_900_000_000,
                nanos: 0,
            }),
            description: String::new(),
            currency: "EUR".into(),
            venue: Some(VenueLayout {
                venue_name: "Room Hall".into(),
                price_tiers: vec![PriceTier {
                    name: "std".into(),
                    price_cents: 1_000,
                }],
                sections: vec![SectionLayout {
                    name: "A".into(),
                    rows: 1,
                    seats_per_row: seats,
                    price_tier: "std".into(),
                }],
            }),
        })
        .await
        .expect("event created");
        self.room
            .clone()
            .open_room(OpenRoomRequest {
                event_id: event_id.into(),
                max_active,
                admission_ttl: Some(duration(ttl)),
                ..Default::default()
            })
            .await
            .expect("room opened");
    }

    async fn join(&self, event_id: &str, user: &str) -> Place {
        self.room
            .clone()
            .join(JoinRequest {
                event_id: event_id.into(),
                user_id: user.into(),
            })
            .await
            .expect("joined")
            .into_inner()
            .place
            .expect("a place")
    }

    /// The first message of the fan's Watch stream that is not a position update, or
    /// the position itself when nothing else comes within `patience`.
    async fn watch(
        &self,
        event_id: &str,
        user: &str,
        patience: Duration,
    ) -> watch_response::Update {
        let mut stream = self
            .room
            .clone()
            .watch(WatchRequest {
                event_id: event_id.into(),
                user_id: user.into(),
                join: false,
            })
            .await
            .expect("watching")
            .into_inner();
        let mut last = None;
        loop {
            match tokio::time::timeout(patience, stream.message()).await {
                Err(_) => return last.expect("at least the position came"),
                Ok(message) => match message.expect("healthy").expect("open").update {
                    Some(update @ watch_response::Update::Waiting(_)) => last = Some(update),
                    Some(last) => return last,
                    None => {}
                },
            }
        }
    }

    async fn get(&self, event_id: &str) -> Room {
        self.room
            .clone()
            .get_room(GetRoomRequest {
                event_id: event_id.into(),
            })
            .await
            .expect("room")
            .into_inner()
            .room
            .expect("room")
    }
}

async fn connect(mesh: &Mesh) -> WaitingRoomServiceClient<MeshChannel> {
    WaitingRoomServiceClient::new(local_mesh::auth::channel(&mesh.waiting_room.endpoint()).await)
}

fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).expect("short"),
        nanos: i32::try_from(d.subsec_nanos()).expect("nanos"),
    }
}

fn admission_number(update: &watch_response::Update) -> u64 {
    match update {
        watch_response::Update::Admitted(admission) => admission.admission_number,
        other => panic!("expected an admission, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_who_joins_again_across_a_sigkill_of_the_service_keeps_their_place() {
    let mut rooms = Rooms::start().await;
    rooms.room("refresh", 10, 1, Duration::from_secs(60)).await;
    let first = rooms.join("refresh", "ana").await;
    let mut places = Vec::new();
    for user in ["bob", "cara", "dan"] {
        places.push(rooms.join("refresh", user).await);
    }
    // One slot: ana is admitted, the others wait in join order.
    assert_eq!(first.join_number, 1);
    assert_eq!(
        admission_number(&rooms.watch("refresh", "ana", Duration::from_secs(10)).await),
        1
    );
    let numbers: Vec<u64> = places.iter().map(|p| p.join_number).collect();
    assert_eq!(numbers, [2, 3, 4]);
    let before = rooms.join("refresh", "cara").await;
    assert_eq!((before.join_number, before.position), (3, 2));

    let status = rooms.mesh.waiting_room.kill().await.expect("SIGKILL");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    rooms.mesh.waiting_room.restart().await.expect("restarts");
    rooms.room = connect(&rooms.mesh).await;

    // A refreshed browser joins again: the same place.
    let again = rooms.join("refresh", "cara").await;
    assert_eq!(again.join_number, 3);
    assert_eq!(again.joined_at, before.joined_at);
    assert_eq!(again.state(), FanState::Waiting);
    assert_eq!(again.position, 2, "bob is ahead of cara, ana was admitted");
    assert_eq!(
        rooms.join("refresh", "cara").await.join_number,
        3,
        "and again"
    );
    let room = rooms.get("refresh").await;
    assert_eq!((room.joined, room.waiting, room.active), (4, 3, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fans_are_admitted_in_join_order_and_a_slot_comes_back_when_a_fan_leaves() {
    let rooms = Rooms::start().await;
    rooms.room("order", 10, 2, Duration::from_secs(60)).await;
    for n in 1..=5 {
        assert_eq!(
            rooms.join("order", &format!("fan-{n}")).await.join_number,
            n
        );
    }
    let short = Duration::from_millis(500);
    assert_eq!(
        admission_number(&rooms.watch("order", "fan-1", short).await),
        1
    );
    assert_eq!(
        admission_number(&rooms.watch("order", "fan-2", short).await),
        2
    );
    match rooms.watch("order", "fan-3", short).await {
        watch_response::Update::Waiting(place) => assert_eq!(place.position, 1),
        other => panic!("two slots only: fan-3 waits, not {other:?}"),
    }
    assert_eq!(rooms.get("order").await.active, 2);

    // fan-1 leaves: the slot goes to fan-3, not fan-4.
    let left = rooms
        .room
        .clone()
        .leave(LeaveRequest {
            event_id: "order".into(),
            user_id: "fan-1".into(),
        })
        .await
        .expect("left")
        .into_inner();
    assert_eq!(left.left_from(), FanState::Admitted);
    assert_eq!(
        admission_number(&rooms.watch("order", "fan-3", Duration::from_secs(10)).await),
        3
    );
    match rooms.watch("order", "fan-4", short).await {
        watch_response::Update::Waiting(place) => assert_eq!(place.position, 1),
        other => panic!("fan-4 still waits, not {other:?}"),
    }
    // A fan who left and joins again goes to the back.
    let back = rooms.join("order", "fan-1").await;
    assert_eq!((back.join_number, back.position), (6, 3));
    let room = rooms.get("order").await;
    assert_eq!((room.admitted, room.left, room.waiting), (3, 1, 3));
}

/// A Watch that joins: every message of the stream, in order, until the final one (or
/// until nothing more comes within `patience`).
async fn join_and_watch(
    room: &WaitingRoomServiceClient<MeshChannel>,
    event_id: &str,
    user: &str,
    patience: Duration,
) -> Vec<watch_response::Update> {
    let mut stream = room
        .clone()
        .watch(WatchRequest {
            event_id: event_id.into(),
            user_id: user.into(),
            join: true,
        })
        .await
        .expect("watching")
        .into_inner();
    let mut updates = Vec::new();
    while let Ok(message) = tokio::time::timeout(patience, stream.message()).await {
        let Some(message) = message.expect("healthy") else {
            break;
        };
        let update = message.update.expect("an update");
        let last = !matches!(
            update,
            watch_response::Update::Joined(_) | watch_response::Update::Waiting(_)
        );
        updates.push(update);
        if last {
            break;
        }
    }
    updates
}

fn joined(update: &watch_response::Update) -> &Place {
    match update {
        watch_response::Update::Joined(place) => place,
        other => panic!("expected the join's place first, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_joins_opens_with_the_join_and_a_fan_already_in_line_keeps_their_place() {
    let rooms = Rooms::start().await;
    rooms.room("one-call", 10, 1, Duration::from_secs(60)).await;
    let short = Duration::from_millis(500);

    // ana joins by watching: her place first, then her admission (the one slot).
    let ana = join_and_watch(&rooms.room, "one-call", "ana", Duration::from_secs(10)).await;
    assert_eq!(ana.len(), 2, "{ana:?}");
    assert_eq!(joined(&ana[0]).join_number, 1);
    assert_eq!(admission_number(&ana[1]), 1);

    // bob joined the usual way; watching with join keeps his place.
    assert_eq!(rooms.join("one-call", "bob").await.join_number, 2);
    let bob = join_and_watch(&rooms.room, "one-call", "bob", short).await;
    assert_eq!(
        bob.len(),
        1,
        "bob waits, and his place is not sent twice: {bob:?}"
    );
    let place = joined(&bob[0]);
    assert_eq!(
        (place.join_number, place.position, place.state()),
        (2, 1, FanState::Waiting)
    );

    // cara is new: behind bob. ana watching again with join is told her admission again,
    // her join number unchanged.
    let cara = join_and_watch(&rooms.room, "one-call", "cara", short).await;
    assert_eq!(
        (joined(&cara[0]).join_number, joined(&cara[0]).position),
        (3, 2)
    );
    let again = join_and_watch(&rooms.room, "one-call", "ana", short).await;
    assert_eq!(joined(&again[0]).join_number, 1);
    assert_eq!(joined(&again[0]).state(), FanState::Admitted);
    assert_eq!(admission_number(&again[1]), 1);
    let room = rooms.get("one-call").await;
    assert_eq!((room.joined, room.waiting, room.active), (3, 2, 1));

    // Bad input names the field and joins nobody; a room that does not exist is not found.
    let mut client = rooms.room.clone();
    let status = client
        .watch(WatchRequest {
            event_id: "one-call".into(),
            user_id: "da n".into(),
            join: true,
        })
        .await
        .expect_err("bad user id");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("user_id"), "{status:?}");
    let status = client
        .watch(WatchRequest {
            event_id: "no-room".into(),
            user_id: "dan".into(),
            join: true,
        })
        .await
        .expect_err("no room");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(rooms.get("one-call").await.joined, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_admission_expires_and_its_slot_goes_to_the_next_fan() {
    // An unused admission keeps its slot for the claim grace past its expiry (a purchase
    // received in time may still be on its way): here 1 s.
    let rooms = Rooms::start_with(MeshOptions {
        waiting_room_args: vec!["--claim-grace-secs", "1"],
        ..MeshOptions::default()
    })
    .await;
    rooms.room("ttl", 10, 1, Duration::from_secs(1)).await;
    rooms.join("ttl", "ana").await;
    rooms.join("ttl", "bob").await;
    assert_eq!(
        admission_number(&rooms.watch("ttl", "ana", Duration::from_millis(500)).await),
        1
    );
    // Ana never buys: a second after her admission's expiry it lapses, bob gets the slot.
    assert_eq!(
        admission_number(&rooms.watch("ttl", "bob", Duration::from_secs(10)).await),
        2
    );
    match rooms.watch("ttl", "ana", Duration::from_millis(500)).await {
        watch_response::Update::Expired(expired) => assert!(expired.expired_at.is_some()),
        other => panic!("ana's admission expired, not {other:?}"),
    }
    assert_eq!(rooms.get("ttl").await.expired, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_names_the_field_and_unknown_rooms_and_fans_are_not_found() {
    let rooms = Rooms::start().await;
    let mut room = rooms.room.clone();
    let open = |event: &str, max_active, ttl: Option<prost_types::Duration>| OpenRoomRequest {
        event_id: event.into(),
        max_active,
        admission_ttl: ttl,
        ..Default::default()
    };
    let cases = [
        (
            open("", 5, Some(duration(Duration::from_secs(30)))),
            "event_id",
        ),
        (
            open("e", 0, Some(duration(Duration::from_secs(30)))),
            "max_active",
        ),
        (open("e", 5, None), "admission_ttl"),
        (
            open("e", 5, Some(duration(Duration::from_millis(10)))),
            "admission_ttl",
        ),
    ];
    for (request, field) in cases {
        let status = room.open_room(request).await.expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(field), "{field}: {status:?}");
    }
    let status = room
        .open_room(open(
            "no-such-event",
            5,
            Some(duration(Duration::from_secs(30))),
        ))
        .await
        .expect_err("unknown event");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = room
        .join(JoinRequest {
            event_id: "no-room".into(),
            user_id: "ana".into(),
        })
        .await
        .expect_err("no room");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = room
        .join(JoinRequest {
            event_id: "no-room".into(),
            user_id: "an a".into(),
        })
        .await
        .expect_err("bad user id");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("user_id"), "{status:?}");

    rooms.room("known", 1, 1, Duration::from_secs(30)).await;
    let status = room
        .watch(WatchRequest {
            event_id: "known".into(),
            user_id: "stranger".into(),
            join: false,
        })
        .await
        .expect_err("never joined");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(
        room.get_room(GetRoomRequest {
            event_id: "none".into()
        })
        .await
        .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seats_locked_outside_the_room_are_not_offered_until_they_are_freed() {
    // The coordinator's recovery would abort a branch its log does not know: not during
    // this test.
    let rooms = Rooms::start_with(MeshOptions {
        coordinator_args: vec!["--recovery-interval-ms", "600000"],
        ..MeshOptions::default()
    })
    .await;
    rooms.room("locked", 3, 3, Duration::from_secs(60)).await;
    // Two of the three seats sit in a prepared 2PC branch the room does not count: an
    // abort waiting for another participant, say.
    let mut inventory = InventoryServiceClient::new(
        local_mesh::auth::channel(&rooms.mesh.inventory.endpoint()).await,
    );
    let prepared = inventory
        .prepare_sale(PrepareSaleRequest {
            log_id: String::new(),
            txid: "tx-outside".into(),
            event_id: "locked".into(),
            order_id: "ord-outside".into(),
            seat_ids: vec![],
            quantity: 2,
        })
        .await
        .expect("prepared")
        .into_inner();
    assert_eq!(prepared.seats.len(), 2);
    for fan in ["fan-1", "fan-2", "fan-3"] {
        rooms.join("locked", fan).await;
    }
    let short = Duration::from_millis(500);
    assert_eq!(
        admission_number(&rooms.watch("locked", "fan-1", short).await),
        1
    );
    // Three slots, but one seat free to buy: fan-2 waits instead of being admitted to a
    // certain conflict.
    match rooms.watch("locked", "fan-2", short).await {
        watch_response::Update::Waiting(place) => assert_eq!(place.position, 1),
        other => panic!("one free seat only: fan-2 waits, not {other:?}"),
    }
    assert_eq!(rooms.get("locked").await.active, 1);

    inventory
        .abort_sale(AbortSaleRequest {
            log_id: String::new(),
            txid: "tx-outside".into(),
        })
        .await
        .expect("aborted");
    assert_eq!(
        admission_number(
            &rooms
                .watch("locked", "fan-2", Duration::from_secs(10))
                .await
        ),
        2
    );
    assert_eq!(
        admission_number(
            &rooms
                .watch("locked", "fan-3", Duration::from_secs(10))
                .await
        ),
        3
    );
    let room = rooms.get("locked").await;
    assert_eq!((room.admitted, room.active, room.waiting), (3, 3, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fans_of_the_pre_queue_are_placed_in_the_seeds_fair_order_ahead_of_later_fans() {
    let rooms = Rooms::start().await;
    rooms.room("early", 10, 1, Duration::from_secs(60)).await;
    // In whole milliseconds, as the room keeps it.
    let mut opens_at =
        prost_types::Timestamp::from(std::time::SystemTime::now() + Duration::from_secs(3));
    opens_at.nanos -= opens_at.nanos % 1_000_000;
    let mut room = rooms.room.clone();
    let refused = room
        .open_room(OpenRoomRequest {
            event_id: "early".into(),
            max_active: 1,
            admission_ttl: Some(duration(Duration::from_secs(60))),
            opens_at: Some(opens_at),
            shuffle_seed: 42,
        })
        .await
        .expect_err("the sale of 'early' has opened");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let too_far = room
        .open_room(OpenRoomRequest {
            event_id: "early".into(),
            max_active: 1,
            admission_ttl: Some(duration(Duration::from_secs(60))),
            opens_at: Some(prost_types::Timestamp {
                seconds: opens_at.seconds + 31 * 24 * 3600,
                nanos: 0,
            }),
            shuffle_seed: 42,
        })
        .await
        .expect_err("too far ahead");
    assert!(too_far.message().contains("opens_at"), "{too_far:?}");
    // A room whose sale opens in 3 s, with a seed so that the order is known.
    InventoryServiceClient::new(local_mesh::auth::channel(&rooms.mesh.inventory.endpoint()).await)
        .create_event(CreateEventRequest {
            event_id: "later".into(),
            name: "Later".into(),
            starts_at: Some(prost_types::Timestamp {
                seconds: 1_900_000_000,
                nanos: 0,
            }),
            venue: Some(VenueLayout {
                venue_name: "Hall".into(),
                price_tiers: vec![PriceTier {
                    name: "std".into(),
                    price_cents: 1_000,
                }],
                sections: vec![SectionLayout {
                    name: "A".into(),
                    rows: 1,
                    seats_per_row: 10,
                    price_tier: "std".into(),
                }],
            }),
            ..Default::default()
        })
        .await
        .expect("event created");
    let opened = room
        .open_room(OpenRoomRequest {
            event_id: "later".into(),
            max_active: 2,
            admission_ttl: Some(duration(Duration::from_secs(60))),
            opens_at: Some(opens_at),
            shuffle_seed: 42,
        })
        .await
        .expect("room opened")
        .into_inner()
        .room
        .expect("a room");
    assert_eq!(opened.state(), RoomState::PreQueue);
    assert_eq!(opened.opens_at, Some(opens_at));

    let early: Vec<String> = (1..=6).map(|n| format!("early-{n}")).collect();
    for fan in &early {
        let place = rooms.join("later", fan).await;
        assert_eq!(place.state(), FanState::PreQueue, "{fan}: {place:?}");
        assert_eq!((place.join_number, place.position), (0, 0));
        assert_eq!(place.opens_at, Some(opens_at));
        // Joining again (a refresh) keeps the fan in the pre-queue, nothing more.
        assert_eq!(rooms.join("later", fan).await.state(), FanState::PreQueue);
    }
    match rooms
        .watch("later", "early-1", Duration::from_millis(300))
        .await
    {
        watch_response::Update::Waiting(place) => {
            assert_eq!(place.state(), FanState::PreQueue);
            assert_eq!(place.opens_at, Some(opens_at));
        }
        other => panic!("the sale has not opened: {other:?}"),
    }
    let before = rooms.get("later").await;
    assert_eq!(
        (before.pre_queued, before.joined, before.admitted),
        (6, 6, 0)
    );

    local_mesh::eventually("the sale opens", Duration::from_secs(30), || async {
        rooms.get("later").await.state() == RoomState::Open
    })
    .await;
    let late = ["late-1", "late-2"];
    let late_places = [
        rooms.join("later", late[0]).await,
        rooms.join("later", late[1]).await,
    ];
    let room_now = rooms.get("later").await;
    assert_eq!(
        (
            room_now.shuffle_seed,
            room_now.pre_queue_placed,
            room_now.pre_queued
        ),
        (42, 6, 0)
    );

    // The seed's order, as anyone can recompute it.
    let order = waiting_room::shuffle::fair_order(early.clone(), 42);
    assert_ne!(order, early, "a shuffle, not the join order");
    for (index, fan) in order.iter().enumerate() {
        let place = rooms.join("later", fan).await;
        assert_eq!(place.join_number, index as u64 + 1, "{fan}: {place:?}");
    }
    assert_eq!(
        late_places.map(|p| p.join_number),
        [7, 8],
        "later fans follow in join order"
    );
    // Admission follows the order: two slots, the first two of the shuffle.
    for (index, fan) in order.iter().take(2).enumerate() {
        assert_eq!(
            admission_number(&rooms.watch("later", fan, Duration::from_secs(10)).await),
            index as u64 + 1,
            "{fan}"
        );
    }
    match rooms
        .watch("later", &order[2], Duration::from_millis(300))
        .await
    {
        watch_response::Update::Waiting(place) => assert_eq!(place.position, 1),
        other => panic!("{} waits third: {other:?}", order[2]),
    }
}
