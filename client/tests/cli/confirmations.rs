use std::time::Duration;

use local_mesh::MeshOptions;

use crate::common::*;

/// A purchase whose email fails past its ceiling (SMTP never answers, 2 attempts): the
/// parent is committed, the confirmation is a failed leaf with its root cause, in text,
/// JSON and Mermaid; the dead letter is listed; failures follow the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_shows_the_committed_purchase_and_its_failed_confirmation_leaf() {
    let cli = Cli::start_with(MeshOptions {
        notifier_args: vec!["--max-attempts", "2"],
        ..Default::default()
    })
    .await;
    cli.event("leaf", 2, "").await;
    let bought = cli
        .json(&[
            "purchase",
            "--user",
            "lea",
            "--event",
            "leaf",
            "--seats",
            "A-1-1",
            "--protocol",
            "saga",
            "--email",
            "lea@example.com",
            "--idempotency-key",
            "leaf-1",
            "--json",
        ])
        .await;
    let txid = bought["txid"].as_str().expect("txid").to_owned();

    let mut dead = serde_json::Value::Null;
    for _ in 0..100 {
        dead = cli
            .json(&["notifications", "list", "--state", "dead", "--json"])
            .await;
        if dead["deliveries"].as_array().is_some_and(|d| d.len() == 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let delivery = &dead["deliveries"][0];
    assert_eq!(delivery["txid"], txid.as_str(), "{dead}");
    assert_eq!(delivery["channel"], "email");
    assert_eq!(delivery["attempts"], 2);
    let delivery_id = delivery["delivery_id"].as_str().expect("an id");

    let diagnosis = cli.json(&["txn", "diagnose", &txid, "--json"]).await;
    assert_eq!(diagnosis["state"], "COMMITTED", "the parent stands");
    assert!(
        diagnosis["first_failure"].is_null(),
        "no step of the purchase failed"
    );
    let child = &diagnosis["confirmation"];
    assert_eq!(child["state"], "FAILED");
    let leaves = child["failed_leaves"].as_array().expect("leaves");
    assert_eq!(leaves.len(), 1);
    assert_eq!(leaves[0]["delivery_id"], delivery_id);
    assert_eq!(leaves[0]["state"], "DEAD_LETTERED");
    let cause = leaves[0]["root_cause"].as_str().expect("a cause");
    assert!(cause.starts_with("smtp:"), "{cause}");

    let text = cli.text(&["txn", "diagnose", &txid]).await;
    assert!(text.contains("is COMMITTED"), "{text}");
    assert!(text.contains("confirmation: FAILED"), "{text}");
    assert!(text.contains(&format!("root cause: {cause}")), "{text}");
    assert!(
        text.contains(&format!("notifications retry {delivery_id}")),
        "{text}"
    );

    let shown = cli.json(&["txn", "show", &txid, "--format", "json"]).await;
    assert_eq!(shown["state"], "COMMITTED");
    let attempts = shown["confirmation"]["attempts"]
        .as_array()
        .expect("attempts");
    assert_eq!(attempts.len(), 2);
    assert!(attempts.iter().all(|a| a["delivered"] == false));
    assert_eq!(attempts[1]["state_after"], "DEAD_LETTERED");
    assert_eq!(shown["confirmation"]["outbox"]["email"], "lea@example.com");

    let diagram = cli
        .text(&["txn", "show", &txid, "--format", "mermaid"])
        .await;
    assert!(diagram.contains("participant N as notifier"), "{diagram}");
    assert!(diagram.contains("participant E as email"), "{diagram}");
    assert_eq!(
        diagram
            .lines()
            .filter(|l| l.trim().starts_with("N->>E: deliver"))
            .count(),
        2,
        "{diagram}"
    );
    assert_eq!(
        diagram
            .lines()
            .filter(|l| l.trim().starts_with("E-->>N: FAILED"))
            .count(),
        2,
        "{diagram}"
    );

    let failures = cli
        .json(&[
            "txn",
            "failures",
            "--since",
            "10m",
            "--group-by",
            "error",
            "--follow-children",
            "--format",
            "json",
        ])
        .await;
    let groups = failures["groups"].as_array().expect("groups");
    let child_group = groups
        .iter()
        .find(|g| {
            g["key"]
                .as_str()
                .is_some_and(|k| k.starts_with("confirmation: smtp:"))
        })
        .unwrap_or_else(|| panic!("a confirmation group: {failures}"));
    assert_eq!(child_group["count"], 2, "both attempts");
    assert_eq!(child_group["example_txids"][0], txid.as_str());
    let without = cli
        .json(&["txn", "failures", "--since", "10m", "--format", "json"])
        .await;
    assert_eq!(
        failures["total"].as_u64(),
        without["total"].as_u64().map(|t| t + 2),
        "the children add their two attempts"
    );

    let watched = cli.text(&["txn", "watch", &txid, "--json"]).await;
    let events: Vec<serde_json::Value> = watched
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds.first(), Some(&"BEGUN"), "{watched}");
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "CONFIRMATION_ATTEMPT")
            .count(),
        2,
        "{watched}"
    );
    let last = events.last().expect("events");
    assert_eq!(last["kind"], "CONFIRMATIONS_SETTLED", "{watched}");
    assert_eq!(
        (last["delivered"].as_u64(), last["dead_lettered"].as_u64()),
        (Some(0), Some(1))
    );
    let later = cli
        .text(&["txn", "watch", "--key", "leaf-1", "--after", "3"])
        .await;
    assert_eq!(later.lines().count(), events.len() - 3, "{later}");

    let redriven = cli.text(&["notifications", "retry", delivery_id]).await;
    assert!(redriven.contains("PENDING"), "{redriven}");
}
