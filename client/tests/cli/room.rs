use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::common::*;

/// The most purchases of `event` the coordinator's log shows in flight at once: its
/// intervals [started_at, finished_at] swept in time order.
async fn most_in_flight(cli: &Cli, event: &str) -> i64 {
    let sql = cli.mesh.coordinator_db.connect().await.expect("connects");
    let rows = sql
        .query(
            "SELECT started_at, finished_at FROM transactions WHERE event_id = $1",
            &[&event],
        )
        .await
        .expect("the log");
    assert!(!rows.is_empty(), "{event} has purchases");
    // +1 at a start, -1 at a finish; at equal times the finish first.
    let mut changes: BTreeMap<(DateTime<Utc>, i64), i64> = BTreeMap::new();
    for row in rows {
        let started: DateTime<Utc> = row.get(0);
        let finished: DateTime<Utc> = row.get::<_, Option<DateTime<Utc>>>(1).expect("finished");
        *changes.entry((started, 1)).or_default() += 1;
        *changes.entry((finished, 0)).or_default() -= 1;
    }
    let (mut now, mut most) = (0, 0);
    for change in changes.values() {
        now += change;
        most = most.max(now);
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinators_log_never_shows_more_than_max_active_purchases_in_flight() {
    let cli = Cli::start().await;
    let drop = |event: &'static str, extra: &'static [&'static str]| {
        let mut args = vec![
            "drop",
            "--event",
            event,
            "--protocol",
            "saga",
            "--fans",
            "300",
            "--seats",
            "40",
            "--decline-rate",
            "0.2",
            "--json",
        ];
        args.extend_from_slice(extra);
        args
    };
    let report = cli.json(&drop("gated", &["--concurrency", "4"])).await;
    assert_eq!(report["sold"], 40, "{report}");
    assert!(
        report["max_concurrent_purchases"].as_u64().unwrap() <= 4,
        "{report}"
    );
    let most = most_in_flight(&cli, "gated").await;
    assert!(
        (1..=4).contains(&most),
        "at most 4 in flight, the log shows {most}"
    );

    // The control: without the room, the same log shows many more at once, so the check
    // above can fail.
    let report = cli
        .json(&drop("open", &["--no-waiting-room", "--concurrency", "16"]))
        .await;
    assert_eq!(report["waiting_room"], false);
    let most = most_in_flight(&cli, "open").await;
    assert!(most > 4, "without a room the log shows {most} in flight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_commands_open_show_watch_and_leave() {
    let cli = Cli::start().await;
    cli.event("hall", 2, "a small hall").await;
    let opened = cli
        .json(&[
            "room",
            "open",
            "--event",
            "hall",
            "--max-active",
            "1",
            "--admission-ttl",
            "1m",
            "--json",
        ])
        .await;
    assert_eq!(opened["state"], "OPEN");
    assert_eq!(opened["max_active"], 1);
    assert_eq!(opened["admission_ttl_ms"], 60_000.0);

    let ana = cli
        .json(&[
            "room", "watch", "--event", "hall", "--user", "ana", "--json",
        ])
        .await;
    assert_eq!(ana["join_number"], 1);
    let token = ana["outcome"]["admitted"]["token"]
        .as_str()
        .expect("a token");
    assert_eq!(ana["outcome"]["admitted"]["admission_number"], 1);

    // Bob joins behind ana's slot: `room leave` takes him out again.
    let left = cli
        .json(&[
            "room", "leave", "--event", "hall", "--user", "bob", "--json",
        ])
        .await;
    assert_eq!(left["left_from"], "UNSPECIFIED", "bob never joined");

    let bought = cli
        .json(&[
            "purchase",
            "--user",
            "ana",
            "--event",
            "hall",
            "--quantity",
            "1",
            "--protocol",
            "2pc",
            "--admission-token",
            token,
            "--json",
        ])
        .await;
    assert_eq!(bought["seats"].as_array().map(Vec::len), Some(1));
    // Without a token the coordinator refuses, naming the reason.
    let refused = cli
        .run(&[
            "purchase",
            "--user",
            "bob",
            "--event",
            "hall",
            "--quantity",
            "1",
            "--protocol",
            "2pc",
            "--json",
        ])
        .await;
    assert!(!refused.status.success());
    let error = parse(&refused);
    assert_eq!(error["error"]["code"], "PermissionDenied");
    assert_eq!(error["error"]["reason"], "ADMISSION_REQUIRED");
    // `purchase --room` waits in the room and buys the last seat.
    let bob = cli
        .json(&[
            "purchase",
            "--user",
            "bob",
            "--event",
            "hall",
            "--quantity",
            "1",
            "--protocol",
            "lease",
            "--room",
            "--json",
        ])
        .await;
    assert_eq!(bob["seats"].as_array().map(Vec::len), Some(1));

    let cara = cli
        .json(&[
            "room", "watch", "--event", "hall", "--user", "cara", "--json",
        ])
        .await;
    assert_eq!(cara["outcome"]["sold_out"]["capacity"], 2, "{cara}");

    let shown = cli
        .json(&["room", "show", "--event", "hall", "--format", "json"])
        .await;
    let count = |name: &str| shown[name].as_u64().unwrap();
    assert_eq!(shown["state"], "SOLD_OUT");
    assert_eq!(
        (
            count("joined"),
            count("admitted"),
            count("purchased"),
            count("sold_out")
        ),
        (3, 2, 2, 1)
    );
    assert_eq!((count("seats_sold"), count("capacity")), (2, 2));
    let text = cli
        .text(&["room", "show", "--event", "hall", "--once"])
        .await;
    assert!(
        text.contains("SOLD_OUT") && text.contains("seats sold 2 / 2"),
        "{text}"
    );

    let chart = cli
        .text(&["room", "show", "--event", "hall", "--format", "mermaid"])
        .await;
    assert_flowchart(&chart, &shown);
}

/// A Mermaid flowchart whose every edge joins declared nodes, and whose labels carry
/// the room's counts.
fn assert_flowchart(chart: &str, room: &Value) {
    let mut lines = chart.lines();
    assert_eq!(lines.next(), Some("flowchart LR"));
    let mut declared = std::collections::HashSet::new();
    let mut edges = 0;
    for line in lines {
        let line = line.trim();
        let (from, rest) = line.split_once(" -->").expect("every line is an edge");
        // An optional |"label"| before the target node.
        let to = match rest.trim_start().strip_prefix('|') {
            Some(labelled) => labelled.split_once('|').expect("a closed label").1,
            None => rest,
        }
        .trim();
        for node in [from.trim(), to] {
            let id: String = node
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(!id.is_empty(), "{line}");
            if node[id.len()..].starts_with(['[', '(']) {
                declared.insert(id.clone());
            }
            assert!(
                declared.contains(&id),
                "{id} is used before it is declared: {line}"
            );
        }
        edges += 1;
    }
    assert_eq!(edges, 8, "{chart}");
    for (name, label) in [
        ("purchased", "committed"),
        ("sold_out", "sold out"),
        ("joined", "joined"),
    ] {
        let expected = format!("{label} {}", room[name]);
        assert!(chart.contains(&expected), "{expected} in {chart}");
    }
}
