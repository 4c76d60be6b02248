use std::time::{Duration, SystemTime};

use local_mesh::{MeshOptions, PrivateMaildev};
use serde_json::json;

use crate::site::Site;

/// Not a check: `make web-screenshots` runs it to take docs/web.md's pictures of every
/// page at desktop and phone width, on a mesh of its own with a few events in every
/// state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "makes docs/web's screenshots: make web-screenshots"]
async fn screenshots() {
    let dir = std::env::var("TICKETDROP_SCREENSHOTS_DIR").expect("TICKETDROP_SCREENSHOTS_DIR");
    std::fs::create_dir_all(&dir).expect("the screenshots' folder");
    let maildev = PrivateMaildev::start().expect("maildev starts");
    let smtp: &'static str = Box::leak(maildev.smtp_url().into_boxed_str());
    let site = Site::start(MeshOptions {
        notifier_args: vec!["--smtp-url", smtp],
        ..MeshOptions::default()
    })
    .await;
    site.event("lanterns", "Midnight Lanterns", "Harbour Hall", 2, 12)
        .await;
    site.event("strings", "Quiet Strings", "Old Chapel", 1, 8)
        .await;
    site.event("queue", "Encore Night", "Riverside Arena", 1, 8)
        .await;
    site.event("premiere", "Premiere", "Grand Hall", 2, 10)
        .await;
    site.event("tiny", "Secret Show", "Back Room", 1, 1).await;
    // Some seats sold before the rooms open, so that the map shows them.
    for (user, event, seats) in [
        ("early-bird", "lanterns", "A-1-1,A-1-2,A-1-3"),
        ("regular", "lanterns", "A-2-10"),
        ("lucky", "tiny", "A-1-1"),
    ] {
        let output = site
            .ticketdrop(&[
                "purchase",
                "--user",
                user,
                "--event",
                event,
                "--seats",
                seats,
                "--protocol",
                "saga",
            ])
            .output()
            .await
            .expect("ticketdrop runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    site.open_room("lanterns", 10, Duration::from_secs(600), None, 0)
        .await;
    site.open_room("queue", 1, Duration::from_secs(600), None, 0)
        .await;
    site.place("queue", "holder").await;
    site.open_room(
        "premiere",
        10,
        Duration::from_secs(600),
        Some(SystemTime::now() + Duration::from_secs(3600)),
        0,
    )
    .await;
    let seen = site
        .scenario("screenshots", json!({ "dir": dir }))
        .await
        .expect("the scenario ends");
    println!("{seen:#}");
}
