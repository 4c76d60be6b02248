//! The chaos lab, run as a person runs it: every scenario under every protocol it applies
//! to, on the lab's own mesh, and the negative control that proves the checker can fail.

use std::process::Output;

use serde_json::Value;

/// `ticketdrop chaos …` (the lab starts its own stores and services).
async fn chaos(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_ticketdrop"))
        .arg("chaos")
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("ticketdrop chaos runs")
}

fn report(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "not JSON ({error}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn rows(report: &Value) -> &Vec<Value> {
    report["rows"].as_array().expect("rows")
}

/// Every scenario, every protocol it applies to: no violation, every fault really
/// injected, every `ok` present, every `info` resolved, nothing stuck; and the negative
/// control shows the double sale it exists to show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_under_every_protocol_keeps_every_invariant() {
    let output = chaos(&[
        "--protocol",
        "all",
        "--scenario",
        "all",
        "--fans",
        "60",
        "--seats",
        "20",
        "--seed",
        "42",
        "--json",
    ])
    .await;
    let report = report(&output);
    assert!(
        output.status.success(),
        "the lab failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report["seed"], 42);
    let rows = rows(&report);
    let ran: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["protocol"].as_str().unwrap().to_owned(),
                r["scenario"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // The catalog (`ticketdrop chaos --list`) under each protocol it applies to, each
    // protocol's fault-free baseline first.
    let list = tokio::process::Command::new(env!("CARGO_BIN_EXE_ticketdrop"))
        .args(["chaos", "--list"])
        .output()
        .await
        .expect("--list");
    let catalog = String::from_utf8(list.stdout).expect("utf-8");
    let mut expected = Vec::new();
    for protocol in ["2pc", "saga", "lease"] {
        expected.push((protocol.to_owned(), "baseline".to_owned()));
        for line in catalog.lines().filter(|l| !l.starts_with(' ')) {
            let (name, protocols) = line.split_once(' ').expect("name [protocols]");
            if protocols.contains(protocol) {
                expected.push((protocol.to_owned(), name.to_owned()));
            }
        }
    }
    assert_eq!(ran, expected);
    for scenario in [
        "kill-inventory-during-prepare",
        "kill-orders-after-write-before-reply",
        "payments-lose-response-after-capture",
        "kill-coordinator-after-prepare-before-decision",
        "kill-coordinator-after-decision",
        "kill-coordinator-during-compensation",
        "kill-postgres-with-prepared-transactions",
        "kill-dynamodb",
        "kill-redis-with-leases-held",
        "restart-redis-losing-last-second",
        "pause-lease-holder-past-lease",
        "pause-lease-holder-past-lease-no-fencing",
        "blackhole-participant",
        "kill-one-of-three-coordinators",
        "pause-coordinator-past-ownership",
        "second-coordinator-on-the-same-log",
        "second-log-shares-participants",
        "random",
    ] {
        assert!(
            ran.iter().any(|(_, s)| s == scenario),
            "{scenario} is in the lab"
        );
    }
    for row in rows {
        let at = format!("{} / {}", row["protocol"], row["scenario"]);
        assert_eq!(row["fault_injected"], true, "{at}: {row}");
        let ops = row["ops"].as_u64().unwrap();
        // One operation per fan; in the pause scenarios also the rival's sale of each
        // seat the paused holder leased, and in the Redis restart the nemesis's own
        // purchases after it.
        let scenario = row["scenario"].as_str().unwrap();
        if scenario.starts_with("pause-lease-holder")
            || scenario == "restart-redis-losing-last-second"
        {
            assert!(ops > 60, "{at}: the rival's sale is in the history: {row}");
        } else {
            assert_eq!(ops, 60, "{at}: one operation per fan");
        }
        assert_eq!(
            row["ok"].as_u64().unwrap()
                + row["fail"].as_u64().unwrap()
                + row["info"].as_u64().unwrap(),
            ops,
            "{at}"
        );
        assert_eq!(
            row["info_resolved"], row["info"],
            "{at}: every info resolved: {row}"
        );
        assert_eq!(row["stuck_at_end"], 0, "{at}: {row}");
        assert!(
            row["heal_to_ok_ms"].is_number() || row["negative_control"] == true,
            "{at}: {row}"
        );
        if row["negative_control"] == true {
            assert_eq!(
                row["violations_by_check"]["invariant-1"]
                    .as_u64()
                    .map(|n| n > 0),
                Some(true),
                "{at}: {row}"
            );
        } else {
            assert_eq!(row["violations"], Value::Array(Vec::new()), "{at}: {row}");
            assert_eq!(row["money_delta_cents"], 0, "{at}: {row}");
        }
    }
    // The lab's telling figures show up where the protocol has them.
    let sum = |protocol: &str, field: &str| -> u64 {
        rows.iter()
            .filter(|r| r["protocol"] == protocol)
            .map(|r| r[field].as_u64().unwrap())
            .sum()
    };
    assert!(sum("saga", "compensations") > 0, "sagas compensate");
    assert!(
        sum("lease", "stale_fence_rejections") > 0,
        "fencing refuses a paused holder"
    );
    let faulted_info: u64 = rows.iter().map(|r| r["info"].as_u64().unwrap()).sum();
    assert!(
        faulted_info > 0,
        "some faults cost unknown outcomes, all resolved"
    );
}

/// The negative control, under several seeds: without fencing a lease holder paused past
/// its lease sells a seat a second time, and the checker names the seat and both orders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_negative_control_shows_a_double_sale_every_time() {
    for seed in ["1", "7", "1234"] {
        let output = chaos(&[
            "--protocol",
            "lease",
            "--scenario",
            "pause-lease-holder-past-lease",
            "--unsafe-no-fencing",
            "--fans",
            "40",
            "--seats",
            "10",
            "--seed",
            seed,
            "--json",
        ])
        .await;
        let report = report(&output);
        // The negative control passes by failing the invariant: the lab exits 0.
        assert!(
            output.status.success(),
            "seed {seed}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let row = rows(&report)
            .iter()
            .find(|r| r["negative_control"] == true)
            .expect("the negative control ran");
        let sold_twice: Vec<&Value> = row["violations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["check"] == "invariant-1" && v["kind"] == "seat_sold_twice")
            .collect();
        assert!(!sold_twice.is_empty(), "seed {seed}: {row}");
        for violation in sold_twice {
            let ids: Vec<&str> = violation["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_str().unwrap())
                .collect();
            assert_eq!(
                ids.len(),
                3,
                "seed {seed}: the seat and both orders: {violation}"
            );
            assert!(
                ids[0].starts_with("A-"),
                "seed {seed}: a seat first: {violation}"
            );
            assert!(
                ids[1].starts_with("ord-") && ids[2].starts_with("ord-") && ids[1] != ids[2],
                "seed {seed}: two orders: {violation}"
            );
        }
    }
}
