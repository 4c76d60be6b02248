use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_through_the_waiting_room_sells_every_seat_fairly_despite_declined_cards() {
    let cli = Cli::start().await;
    let reports = cli
        .json(&[
            "drop",
            "--event",
            "rush",
            "--protocol",
            "all",
            "--fans",
            "2000",
            "--seats",
            "100",
            "--decline-rate",
            "0.2",
            "--json",
        ])
        .await;
    let reports = reports.as_array().expect("an array for --protocol all");
    let protocols: Vec<&str> = reports
        .iter()
        .map(|r| r["protocol"].as_str().unwrap())
        .collect();
    assert_eq!(protocols, ["2pc", "saga", "lease"]);
    for report in reports {
        let protocol = &report["protocol"];
        assert_eq!(report["waiting_room"], true);
        assert_eq!(report["sold"], 100, "{protocol}: {report}");
        assert_eq!(report["oversold"], 0, "{protocol}: {report}");
        assert_eq!(report["audit_violations"], 0, "{protocol}: {report}");
        assert_eq!(
            report["audit_error"],
            serde_json::Value::Null,
            "{protocol}: {report}"
        );
        assert_eq!(
            report["seats_unsold_while_turned_away"], 0,
            "{protocol}: {report}"
        );
        assert_eq!(report["fairness_violations"], 0, "{protocol}: {report}");
        assert_eq!(report["errors"], 0, "{protocol}: {report}");
        // An answer lost to a slow machine is looked up by its key once the drop settles.
        assert_eq!(report["unknown"], 0, "{protocol}: {report}");
        assert_eq!(report["expired"], 0, "{protocol}: {report}");
        let answered = ["sold", "sold_out", "conflicts", "declines", "aborted"]
            .iter()
            .map(|k| report[k].as_u64().unwrap())
            .sum::<u64>();
        assert_eq!(
            answered, 2000,
            "{protocol}: every fan got a definite answer"
        );
        // Declines gave seats back; they went to the next fans in line.
        assert!(
            report["declines"].as_u64().unwrap() > 0,
            "{protocol}: {report}"
        );
        // Only admitted fans reached the coordinator; the room told the rest.
        let calls = report["attempts"].as_u64().unwrap();
        assert!(calls < 2000, "{protocol}: {calls} purchase calls");
        assert_eq!(
            report["sold_out"], report["sold_out_by_room"],
            "{protocol}: {report}"
        );
        assert!(report["max_concurrent_purchases"].as_u64().unwrap() <= 64);
        // The coordinator's failures by cause count what the drop counted for the
        // purchases that reached it: declines, conflicts, sold out by a participant.
        let event = report["event_id"].as_str().expect("event");
        let failures = cli
            .json(&[
                "txn",
                "failures",
                "--since",
                "1h",
                "--group-by",
                "error",
                "--event",
                event,
                "--format",
                "json",
            ])
            .await;
        assert_eq!(failures["counted"], "purchases", "{failures}");
        let mut by_reason = std::collections::BTreeMap::<String, u64>::new();
        for group in failures["groups"].as_array().expect("groups") {
            let key = group["key"].as_str().expect("key");
            let label = group["label"].as_str().expect("label");
            assert!(!label.is_empty() && label != key, "in words: {group}");
            let reason = key.split(':').next().expect("a reason");
            *by_reason.entry(reason.to_owned()).or_default() += group["count"].as_u64().unwrap();
        }
        let counted: std::collections::BTreeMap<String, u64> =
            serde_json::from_value(report["refusals"].clone()).expect("refusals by reason");
        assert_eq!(by_reason, counted, "{protocol}: {failures} vs {report}");
        assert!(
            counted.get("CARD_DECLINED").copied().unwrap_or(0)
                >= report["declines"].as_u64().unwrap(),
            "{protocol}: every declined fan's purchase is among the failures"
        );
        assert!(report["wait_p99_ms"].as_f64().unwrap() >= report["wait_p50_ms"].as_f64().unwrap());
        assert!(report["p99_ms"].as_f64().unwrap() >= report["p50_ms"].as_f64().unwrap());
    }
}

/// The coordinator is SIGKILLed while purchases of a drop are in flight and restarted a
/// second later: fans
/// whose answers were lost retry with the same key, the drop looks every still-unknown
/// outcome up once the coordinator has recovered, and the report is complete and true.
async fn a_drop_survives_a_killed_coordinator(protocol: &str) {
    let mut cli = Cli::start().await;
    let event = format!("killed-{protocol}");
    let mut drop = cli
        .command(&[
            "drop",
            "--event",
            &event,
            "--protocol",
            protocol,
            "--fans",
            "600",
            "--seats",
            "40",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ticketdrop starts");
    // Killed once purchases are in flight: some logged, none of the event's seats all sold.
    let log = cli.mesh.coordinator_db.connect().await.expect("the log");
    local_mesh::eventually(
        "purchases of the drop in flight",
        std::time::Duration::from_secs(60),
        || async {
            log.query_one(
                "SELECT count(*) FILTER (WHERE state NOT IN ('COMMITTED', 'ABORTED')) FROM transactions WHERE event_id = $1",
                &[&event],
            )
            .await
            .map(|row| row.get::<_, i64>(0) > 0)
            .unwrap_or(false)
        },
    )
    .await;
    assert!(
        drop.try_wait().expect("the drop's status").is_none(),
        "the drop was still running when the coordinator was killed"
    );
    cli.mesh.coordinator.kill().await.expect("SIGKILL");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    cli.mesh.coordinator.restart().await.expect("restarted");
    let output = drop.wait_with_output().await.expect("the drop ends");
    assert!(
        output.status.success(),
        "{protocol}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report = parse(&output);
    assert_eq!(report["settle_error"], serde_json::Value::Null, "{report}");
    assert_eq!(report["audit_error"], serde_json::Value::Null, "{report}");
    assert_eq!(report["errors"], 0, "{protocol}: {report}");
    assert_eq!(
        report["unknown"], 0,
        "{protocol}: every outcome resolved: {report}"
    );
    assert_eq!(report["sold"], 40, "{protocol}: {report}");
    assert_eq!(report["oversold"], 0, "{protocol}: {report}");
    assert_eq!(report["audit_violations"], 0, "{protocol}: {report}");
    assert_eq!(
        report["seats_unsold_while_turned_away"], 0,
        "{protocol}: {report}"
    );
    let answered = [
        "sold",
        "sold_out",
        "conflicts",
        "declines",
        "aborted",
        "expired",
    ]
    .iter()
    .map(|k| report[k].as_u64().expect("a count"))
    .sum::<u64>();
    assert_eq!(
        answered, 600,
        "{protocol}: every fan accounted for: {report}"
    );
    // The audit agrees with what the fans were told.
    let audit = cli.json(&["audit", "--event", &event, "--json"]).await;
    assert_eq!(audit["sold"], 40, "{audit}");
    assert_eq!(audit["oversold"], 0, "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2pc_drop_survives_a_killed_coordinator() {
    a_drop_survives_a_killed_coordinator("2pc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_drop_survives_a_killed_coordinator() {
    a_drop_survives_a_killed_coordinator("saga").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_drop_survives_a_killed_coordinator() {
    a_drop_survives_a_killed_coordinator("lease").await;
}
