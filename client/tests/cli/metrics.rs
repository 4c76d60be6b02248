//! Every service serves Prometheus metrics: scraped while a drop runs and after it,
//! parsed by the official Python client's text parser, and the coordinator's purchase
//! counters equal the drop's own counts.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use local_mesh::{ServiceProcess, stack_dir};
use serde_json::Value;

use crate::common::*;

/// One service's samples, parsed by `scripts/prometheus_samples.py` (prometheus-client).
fn scrape(service: &ServiceProcess) -> Vec<Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/prometheus_samples.py");
    let output = std::process::Command::new(stack_dir().join("venv/bin/python"))
        .arg(script)
        .arg(service.metrics_url())
        .output()
        .expect("python runs (make stack-up installs prometheus-client)");
    assert!(
        output.status.success(),
        "{} metrics parse: {}",
        service.name(),
        String::from_utf8_lossy(&output.stderr)
    );
    let samples: Value = serde_json::from_slice(&output.stdout).expect("JSON samples");
    samples.as_array().expect("a list of samples").clone()
}

/// The sum of the samples named `name` whose labels include every pair of `labels`.
fn sum(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s["name"] == name)
        .filter(|s| labels.iter().all(|(k, v)| s["labels"][k] == *v))
        .map(|s| s["value"].as_f64().expect("a number"))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_serves_prometheus_metrics_and_the_purchase_counters_equal_the_drops_counts()
{
    let cli = Cli::start().await;
    let mesh = &cli.mesh;
    let services: [(&str, &ServiceProcess); 6] = [
        ("coordinator", &mesh.coordinator),
        ("inventory", &mesh.inventory),
        ("orders", &mesh.orders),
        ("payments", &mesh.payments),
        ("waiting-room", &mesh.waiting_room),
        ("notifier", &mesh.notifier),
    ];
    let mut drop = cli
        .command(&[
            "drop",
            "--event",
            "metered",
            "--protocol",
            "all",
            "--fans",
            "600",
            "--seats",
            "30",
            "--decline-rate",
            "0.2",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the drop starts");
    // Scraped again and again while the drop runs: every scrape parses.
    let mut scrapes = 0;
    while drop.try_wait().expect("the drop runs").is_none() {
        for (_, service) in &services {
            assert!(
                !scrape(service).is_empty(),
                "{} has samples",
                service.name()
            );
        }
        scrapes += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let output = drop.wait_with_output().await.expect("the drop ends");
    let reports = parse(&output);
    assert!(scrapes > 0, "scraped while the drop ran");

    let coordinator = scrape(&mesh.coordinator);
    let mut purchase_calls = 0.0;
    for report in reports.as_array().expect("one report per protocol") {
        let protocol = report["protocol"].as_str().expect("a protocol");
        let count = |key: &str| report[key].as_f64().expect("a count");
        assert_eq!(count("unknown"), 0.0, "{protocol}: {report}");
        let purchases = |labels: &[(&str, &str)]| {
            let mut labels = labels.to_vec();
            labels.push(("protocol", protocol));
            sum(&coordinator, "ticketdrop_purchases_total", &labels)
        };
        assert_eq!(
            purchases(&[("outcome", "committed")]),
            count("sold"),
            "{protocol} sold"
        );
        assert_eq!(
            purchases(&[("outcome", "refused"), ("reason", "CARD_DECLINED")]),
            count("declines"),
            "{protocol} declines"
        );
        assert_eq!(
            purchases(&[("outcome", "refused"), ("reason", "SOLD_OUT")]),
            count("sold_out") - count("sold_out_by_room"),
            "{protocol} sold out by a purchase"
        );
        assert_eq!(
            purchases(&[("outcome", "unknown")]),
            0.0,
            "{protocol}: the coordinator's word on each unknown answer:\n{}",
            mesh.coordinator
                .log()
                .lines()
                .filter(|line| line.contains("unknown") || line.contains("ownership"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert_eq!(
            purchases(&[]),
            count("attempts"),
            "{protocol}: every purchase call"
        );
        purchase_calls += count("attempts");
        // Every protocol logged its steps; a declined card was compensated or aborted.
        assert!(
            sum(&coordinator, "ticketdrop_steps_total", &[("outcome", "ok")]) > 0.0,
            "steps counted"
        );
    }
    // The gRPC layer counted the same calls, by code, with their latencies.
    let method = [
        ("grpc_service", "ticketdrop.v1.CoordinatorService"),
        ("grpc_method", "Purchase"),
    ];
    assert_eq!(
        sum(&coordinator, "grpc_server_handled_total", &method),
        purchase_calls,
        "Purchase calls by the gRPC layer"
    );
    assert_eq!(
        sum(&coordinator, "grpc_server_handling_seconds_count", &method),
        purchase_calls,
        "Purchase latencies"
    );
    assert!(
        sum(
            &coordinator,
            "grpc_server_handled_total",
            &[("grpc_method", "Purchase"), ("grpc_code", "Ok")]
        ) > 0.0
    );
    // Each participant served its calls; each PostgreSQL service reports its pool.
    for (name, service) in &services {
        let samples = scrape(service);
        if *name != "notifier" {
            assert!(
                sum(&samples, "grpc_server_handled_total", &[]) > 0.0,
                "{name} counted its gRPC calls"
            );
        }
        if ["coordinator", "inventory", "payments", "notifier"].contains(name) {
            assert!(
                sum(&samples, "ticketdrop_db_pool_max_connections", &[]) > 0.0,
                "{name} reports its pool"
            );
        }
    }
    // The room admitted fans for each protocol's event.
    let room = scrape(&mesh.waiting_room);
    for protocol in ["2pc", "saga", "lease"] {
        let event = format!("metered-{protocol}");
        assert!(
            sum(
                &room,
                "ticketdrop_waiting_room_admitted_total",
                &[("event", event.as_str())]
            ) >= 30.0,
            "{event}: admissions counted"
        );
    }
}
