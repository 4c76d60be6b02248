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
        assert_eq!(report["oversold"], 0, "{protocol}");
        assert_eq!(report["audit_violations"], 0, "{protocol}");
        assert_eq!(
            report["seats_unsold_while_turned_away"], 0,
            "{protocol}: {report}"
        );
        assert_eq!(report["fairness_violations"], 0, "{protocol}: {report}");
        assert_eq!(report["errors"], 0, "{protocol}: {report}");
        assert_eq!(report["unknown"], 0, "{protocol}");
        assert_eq!(report["expired"], 0, "{protocol}");
        let answered = ["sold", "sold_out", "conflicts", "declines"]
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
        assert!(report["wait_p99_ms"].as_f64().unwrap() >= report["wait_p50_ms"].as_f64().unwrap());
        assert!(report["p99_ms"].as_f64().unwrap() >= report["p50_ms"].as_f64().unwrap());
    }
}
