use std::time::{Duration, Instant};

use local_mesh::{MeshOptions, ServiceProcess};
use serde_json::Value;

use crate::common::*;

/// The JSON log lines of `process` whose `trace_id` is `trace_id`.
fn lines_of(process: &ServiceProcess, trace_id: &str) -> Vec<Value> {
    process
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["trace_id"] == trace_id)
        .collect()
}

/// One purchase from the CLI is one trace: the CLI's trace id is the one `txn show`
/// prints, and the JSON logs of the coordinator, the three participants and the notifier
/// (reached later, through the outbox) each have lines carrying it, with the txid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_purchase_is_one_trace_in_the_json_logs_of_every_service() {
    let cli = Cli::start_with(MeshOptions {
        env: vec![
            ("TICKETDROP_LOG_FORMAT", "json"),
            ("RUST_LOG", "info,ticketdrop::calls=debug"),
        ],
        ..MeshOptions::default()
    })
    .await;
    cli.event("traced", 4, "one trace").await;
    let bought = cli
        .json(&[
            "purchase",
            "--user",
            "ana",
            "--event",
            "traced",
            "--quantity",
            "1",
            "--protocol",
            "2pc",
            "--email",
            "ana@example.com",
            "--json",
        ])
        .await;
    let trace_id = bought["trace_id"].as_str().expect("the CLI's trace id");
    assert_eq!(trace_id.len(), 32, "{bought}");
    assert!(
        trace_id.chars().all(|c| c.is_ascii_hexdigit()),
        "{trace_id}"
    );
    let txid = bought["txid"].as_str().expect("txid");

    let shown = cli.json(&["txn", "show", txid, "--format", "json"]).await;
    assert_eq!(shown["trace_id"], trace_id, "txn show prints the trace id");
    let text = cli.run(&["txn", "show", txid]).await;
    assert!(
        String::from_utf8_lossy(&text.stdout).contains(&format!("trace {trace_id}")),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );

    let mesh = &cli.mesh;
    let services = [
        ("coordinator", &mesh.coordinator),
        ("inventory-pg", &mesh.inventory),
        ("orders-dynamo", &mesh.orders),
        ("payments", &mesh.payments),
        ("notifier", &mesh.notifier),
    ];
    // The notifier's line comes when the relay hands the confirmation over.
    let began = Instant::now();
    while lines_of(&mesh.notifier, trace_id).is_empty() && began.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (name, process) in services {
        let lines = lines_of(process, trace_id);
        assert!(
            !lines.is_empty(),
            "{name} logged nothing with trace_id {trace_id}; its log:\n{}",
            process.log()
        );
        assert!(
            lines.iter().any(|line| line["txid"] == txid),
            "{name}'s lines of the trace carry the txid: {lines:?}"
        );
    }
    // The trace is the purchase's alone: no other trace id reached the participants'
    // lines of this txid.
    for (name, process) in &services[1..4] {
        let others: Vec<Value> = process
            .log()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["txid"] == txid && line["trace_id"] != trace_id)
            .collect();
        assert!(others.is_empty(), "{name}: {others:?}");
    }
}
