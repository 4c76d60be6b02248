use std::collections::HashMap;
use std::time::Duration;

use local_mesh::MeshOptions;
use proto::v1::SeatStatus;
use serde_json::{Value, json};

use crate::site::Site;

/// A declined card: the page says so in words, nothing is charged, and the seat is back
/// on the map (and in inventory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_shows_the_decline_charges_nothing_and_the_seat_comes_back() {
    let site = Site::start(MeshOptions::default()).await;
    site.event("matinee", "Sunday Matinee", "Little Theatre", 1, 4)
        .await;
    site.open_room("matinee", 1, Duration::from_secs(120), None, 0)
        .await;
    let seen = site
        .scenario(
            "declined",
            json!({ "event": "matinee", "user": "noor", "seat": "A-1-2" }),
        )
        .await
        .expect("the scenario ends");
    assert_eq!(seen["outcome"], "refused", "{seen:#}");
    assert_eq!(seen["reason"], "CARD_DECLINED");
    assert_eq!(
        seen["message"],
        "Your card was declined (card declined). Nothing was charged, and the seats went back on sale."
    );
    assert_eq!(seen["next"], "Join the queue again");
    assert_eq!(seen["seat_state"], "available");
    assert_eq!(
        site.seat_status("matinee", "A-1-2").await,
        SeatStatus::Available
    );
    let audit = site.audit("matinee").await;
    assert_eq!(
        (
            audit["sold"].as_i64(),
            audit["captured_cents"].as_i64(),
            audit["confirmed_orders"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{audit:#}"
    );
}

/// Twenty browser fans join a drop while two thousand command-line fans do: the browser
/// fans are admitted in their join order among the others, none is told sold out while
/// a seat is free, and each page ends on exactly one of tickets or sold out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_fans_and_two_thousand_command_line_fans_share_one_fair_drop() {
    let site = Site::start(MeshOptions::default()).await;
    let seats = 100;
    site.event("rush", "Rush Hour", "Drop Arena", 1, seats)
        .await;
    site.open_room("rush", 64, Duration::from_secs(60), None, 0)
        .await;
    let users: Vec<String> = (1..=20).map(|n| format!("browser-{n:02}")).collect();
    let browsers = site.scenario("crowd", json!({ "event": "rush", "users": users }));
    // The command line's drop on the same event and room, at the same time.
    let drop = site
        .ticketdrop(&[
            "drop",
            "--event",
            "rush",
            "--fans",
            "2000",
            "--seats",
            "100",
            "--protocol",
            "saga",
            // A browser on a loaded machine takes its time from admission to paying.
            "--admission-ttl",
            "120s",
            "--json",
        ])
        .output();
    let (pages, drop) = tokio::join!(browsers, drop);
    let pages = pages.expect("the scenario ends");
    let drop = drop.expect("ticketdrop runs");
    assert!(
        drop.status.success(),
        "the drop: {}{}",
        String::from_utf8_lossy(&drop.stdout),
        String::from_utf8_lossy(&drop.stderr)
    );
    let report: Value = serde_json::from_slice(&drop.stdout).expect("the drop's JSON");
    let report = if report.is_array() {
        report[0].clone()
    } else {
        report
    };

    // Each page ends on exactly one of tickets or sold out.
    let pages = pages.as_array().expect("one result per fan");
    assert_eq!(pages.len(), 20);
    let mut bought = 0;
    for page in pages {
        assert_eq!(page["outcomes_shown"], 1, "{page:#}");
        match page["outcome"].as_str() {
            Some("tickets") => {
                assert_eq!(page["seats"].as_array().map(Vec::len), Some(1), "{page:#}");
                bought += 1;
            }
            Some("sold-out") => {}
            other => panic!("a page ended on {other:?}: {page:#}"),
        }
    }
    // Nobody is turned away while a seat is free: every seat ended sold, and the command
    // line's fans saw no seat left unsold while they were turned away.
    let room = site.get_room("rush").await;
    let sold_out_at = room.sold_out_at.expect("the room sold out");
    let sold_out_at_ms = sold_out_at.seconds * 1_000 + i64::from(sold_out_at.nanos) / 1_000_000;
    for page in pages.iter().filter(|p| p["outcome"] == "sold-out") {
        assert!(
            page["ended_at"].as_i64().expect("a time") >= sold_out_at_ms,
            "told sold out before the room sold out: {page:#}"
        );
    }
    let audit = site.audit("rush").await;
    assert_eq!(audit["sold"], seats, "{audit:#}");
    assert_eq!(report["seats_unsold_while_turned_away"], 0, "{report:#}");
    assert_eq!(report["fairness_violations"], 0, "{report:#}");
    assert_eq!(
        report["sold"].as_u64().expect("sold") + bought,
        u64::from(seats),
        "{report:#}"
    );

    // Admitted in join order among everyone: ranking every fan the room admitted by join
    // number gives their admission order, browser fans included.
    let redis_url =
        std::env::var("TICKETDROP_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:56379".into());
    let mut redis = redis::Client::open(redis_url)
        .expect("a redis client")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let prefix = format!("{}:{{rush}}:fan:", site.mesh.room_prefix);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut redis)
        .await
        .expect("the fans' keys");
    let mut admitted: Vec<(u64, u64, String)> = Vec::new();
    for key in keys {
        let fan: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .expect("a fan");
        if let (Some(seq), Some(number)) = (fan.get("seq"), fan.get("admission_number")) {
            let user = key.trim_start_matches(&prefix).to_owned();
            admitted.push((
                seq.parse().expect("seq"),
                number.parse().expect("number"),
                user,
            ));
        }
    }
    admitted.sort();
    let by_join: Vec<u64> = admitted.iter().map(|(_, number, _)| *number).collect();
    let mut sorted = by_join.clone();
    sorted.sort_unstable();
    assert_eq!(by_join, sorted, "admission order is join order");
    let browser_admitted = admitted
        .iter()
        .filter(|(_, _, user)| user.starts_with("browser-"))
        .count();
    let admitted_pages = pages.iter().filter(|p| p["admitted"] == true).count();
    assert_eq!(browser_admitted, admitted_pages, "{pages:#?}");
}
