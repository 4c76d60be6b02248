use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_of_2000_fans_on_100_seats_sells_exactly_100_under_each_protocol() {
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
        assert_eq!(report["sold"], 100, "{protocol}: {report}");
        assert_eq!(report["oversold"], 0, "{protocol}");
        assert_eq!(report["audit_violations"], 0, "{protocol}");
        assert_eq!(report["attempts"], 2000);
        assert_eq!(report["errors"], 0, "{protocol}: {report}");
        assert_eq!(report["unknown"], 0, "{protocol}");
        let answered = ["sold", "sold_out", "conflicts", "declines"]
            .iter()
            .map(|k| report[k].as_u64().unwrap())
            .sum::<u64>();
        assert_eq!(
            answered, 2000,
            "{protocol}: every fan got a definite answer"
        );
        assert!(report["p99_ms"].as_f64().unwrap() >= report["p50_ms"].as_f64().unwrap());
    }
}
