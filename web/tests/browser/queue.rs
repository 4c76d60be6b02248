use std::time::{Duration, SystemTime};

use local_mesh::{MeshOptions, eventually};
use serde_json::json;

use crate::site::{Site, while_browsing};

/// A fan waiting in the queue reloads the page and opens a second tab: the same place
/// every time, and the room counts one fan, not three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_and_a_second_tab_keep_the_fans_place() {
    let site = Site::start(MeshOptions::default()).await;
    site.event("encore", "Encore Night", "Riverside Arena", 1, 8)
        .await;
    site.open_room("encore", 1, Duration::from_secs(300), None, 0)
        .await;
    site.place("encore", "first").await;
    site.place("encore", "second").await;
    let seen = site
        .scenario("refresh", json!({ "event": "encore", "user": "mia" }))
        .await
        .expect("the scenario ends");
    // first is admitted, second waits first in line: mia is second in line.
    assert_eq!(
        seen,
        json!({ "first": 2, "after_reload": 2, "second_tab": 2, "first_tab_after": 2 })
    );
    let mia = site.place("encore", "mia").await;
    assert_eq!((mia.join_number, mia.position), (3, 2));
    let room = site.get_room("encore").await;
    assert_eq!((room.joined, room.waiting, room.active), (3, 2, 1));
}

/// Fans who arrive before the sale opens wait in the pre-queue; at the opening the
/// seeded shuffle orders them, and fans who come after the opening queue behind them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pre_queue_is_ordered_by_the_seeded_shuffle_and_later_fans_follow() {
    let site = Site::start(MeshOptions::default()).await;
    site.event("premiere", "Premiere", "Grand Hall", 1, 10)
        .await;
    let early: Vec<String> = (1..=5).map(|n| format!("early-{n}")).collect();
    let seed = 7;
    // The sale opens in ten minutes; once the five browsers show the pre-queue the
    // operator brings the opening forward to now (the test waits on the room and on the
    // pages, never on the clock: a fan counted in the room whose page has not yet shown
    // the pre-queue would see the opening first — seen on a loaded machine).
    let later = SystemTime::now() + Duration::from_secs(600);
    let room = site
        .open_room("premiere", 1, Duration::from_secs(300), Some(later), seed)
        .await;
    assert_eq!(room.state(), proto::v1::RoomState::PreQueue);
    let mut browser = site.scenario(
        "prequeue",
        json!({ "event": "premiere", "early": early, "late": ["late-1", "late-2"] }),
    );
    while_browsing(
        &mut browser,
        "five fans in the pre-queue, and their pages showing it",
        Duration::from_secs(300),
        || async {
            site.get_room("premiere").await.pre_queued == 5
                && std::fs::read_to_string(crate::site::scenario_log("prequeue"))
                    .is_ok_and(|log| log.contains("every early fan's page shows the pre-queue"))
        },
    )
    .await;
    site.open_room(
        "premiere",
        1,
        Duration::from_secs(300),
        Some(SystemTime::now()),
        seed,
    )
    .await;
    let seen = browser.await.expect("the scenario ends");
    let room = site.get_room("premiere").await;
    assert_eq!(room.state(), proto::v1::RoomState::Open);
    assert_eq!(
        (room.shuffle_seed, room.pre_queue_placed),
        (seed, 5),
        "{room:?}"
    );

    let order = waiting_room::shuffle::fair_order(early.clone(), seed);
    // Every early fan saw the countdown, then the place the shuffle gave them: the
    // first admitted (0), the others in line behind.
    for (index, fan) in order.iter().enumerate() {
        let shown = seen["early"]
            .as_array()
            .expect("early fans")
            .iter()
            .find(|f| f["user"] == fan.as_str())
            .expect("the fan's page");
        assert!(
            shown["countdown"]
                .as_str()
                .expect("a countdown")
                .starts_with("Opens in")
        );
        assert_eq!(shown["place"], index, "{fan} in {seen:#}");
        assert_eq!(
            site.place("premiere", fan).await.join_number,
            index as u64 + 1
        );
    }
    assert_eq!(
        seen["late"],
        json!([{ "user": "late-1", "place": 5 }, { "user": "late-2", "place": 6 }])
    );
    for (fan, number) in [("late-1", 6), ("late-2", 7)] {
        assert_eq!(site.place("premiere", fan).await.join_number, number);
    }
    eventually(
        "the first of the shuffle holds the turn",
        Duration::from_secs(10),
        || async { site.get_room("premiere").await.admitted == 1 },
    )
    .await;
}
