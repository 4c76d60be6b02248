//! Rate limits: a fan who purchases too fast, and an address that joins too many fans,
//! are answered RESOURCE_EXHAUSTED with the wait in a RetryInfo, and nothing is written;
//! after that wait the call passes; operators are not limited.

use std::time::Duration;

use local_mesh::MeshOptions;
use local_mesh::auth::{channel_as, fan};
use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use proto::v1::waiting_room_service_client::WaitingRoomServiceClient;
use proto::v1::*;
use tonic::Code;
use tonic_types::StatusExt;

use crate::common::*;

/// The RetryInfo delay of a RESOURCE_EXHAUSTED refusal by the `limit` bucket.
fn throttled(status: &tonic::Status, limit: &str) -> Duration {
    let (code, reason, metadata) = reason(status);
    assert_eq!(
        (
            code,
            reason.as_str(),
            metadata.get("limit").map(String::as_str)
        ),
        (Code::ResourceExhausted, "RATE_LIMITED", Some(limit)),
        "{status:?}"
    );
    let wait = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .expect("a RetryInfo with the delay");
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_secs(1),
        "{wait:?}"
    );
    wait
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_or_an_address_over_its_limit_is_told_when_to_retry_and_nothing_is_written() {
    let world = World::start(MeshOptions {
        coordinator_args: vec![
            "--rate-limit-user-per-sec",
            "1",
            "--rate-limit-user-burst",
            "2",
        ],
        waiting_room_args: vec![
            "--rate-limit-address-per-sec",
            "1",
            "--rate-limit-address-burst",
            "3",
        ],
        ..MeshOptions::default()
    })
    .await;
    world.event("paced", 2, 5, 1_000).await;

    // Per user, on Purchase: ana's burst of two passes, her third purchase waits.
    let mut ana = CoordinatorServiceClient::new(
        channel_as(&world.mesh.coordinator.endpoint(), fan("ana")).await,
    );
    let buy = |key: &str, seat: &str| PurchaseRequest {
        user_id: "ana".into(),
        ..purchase(Protocol::Saga, "paced", &[seat], "tok_visa", key)
    };
    // Three at once (however long a purchase takes, no token comes back meanwhile): two
    // pass, one is refused.
    let tries = [("ana-1", "A-1-1"), ("ana-2", "A-1-2"), ("ana-3", "A-1-3")];
    let answers = futures::future::join_all(tries.map(|(key, seat)| {
        let mut ana = ana.clone();
        let request = buy(key, seat);
        async move { ((key, seat), ana.purchase(request).await) }
    }))
    .await;
    let refused: Vec<_> = answers
        .iter()
        .filter_map(|(try_, answer)| answer.as_ref().err().map(|status| (*try_, status)))
        .collect();
    assert_eq!(refused.len(), 1, "two within the burst, one over it");
    let ((key, seat), status) = refused[0];
    let wait = throttled(status, "user");
    assert_eq!(
        world.logged("paced").await,
        2,
        "the refused purchase wrote nothing"
    );
    assert_eq!(world.seats("paced").await[seat].0, "AVAILABLE");
    // Another fan has a bucket of their own, and after the wait ana's call passes.
    let mut bob = CoordinatorServiceClient::new(
        channel_as(&world.mesh.coordinator.endpoint(), fan("bob")).await,
    );
    bob.purchase(PurchaseRequest {
        user_id: "bob".into(),
        ..purchase(Protocol::Saga, "paced", &["A-1-4"], "tok_visa", "bob-1")
    })
    .await
    .expect("bob is not limited by ana");
    tokio::time::sleep(wait).await;
    ana.purchase(buy(key, seat))
        .await
        .expect("after the RetryInfo delay");

    // Per address, on Join: three fans from 127.0.0.1 pass, the fourth waits.
    world.open_room("paced", 10, Duration::from_secs(30)).await;
    let room_endpoint = world.mesh.waiting_room.endpoint();
    let join = |user: &str| JoinRequest {
        event_id: "paced".into(),
        user_id: user.into(),
    };
    // Four at once, their connections made first: three pass, one is refused.
    let mut fans = Vec::new();
    for user in ["f1", "f2", "f3", "f4"] {
        fans.push((
            user,
            WaitingRoomServiceClient::new(channel_as(&room_endpoint, fan(user)).await),
        ));
    }
    let joined = futures::future::join_all(
        fans.into_iter()
            .map(|(user, mut room)| async move { room.join(join(user)).await }),
    )
    .await;
    let refused: Vec<&tonic::Status> = joined.iter().filter_map(|j| j.as_ref().err()).collect();
    assert_eq!(
        refused.len(),
        1,
        "three within the address's burst, one over it"
    );
    throttled(refused[0], "address");
    let room = world
        .room
        .clone()
        .get_room(GetRoomRequest {
            event_id: "paced".into(),
        })
        .await
        .expect("room")
        .into_inner()
        .room
        .expect("a room");
    assert_eq!(
        room.joined, 3,
        "the refused fan is not in the room: {room:?}"
    );
    // An operator (the harness's credential) is never limited.
    for user in ["o1", "o2", "o3", "o4", "o5"] {
        world
            .room
            .clone()
            .join(join(user))
            .await
            .expect("operators are not limited");
    }
}
