use std::process::Command;

use test_harness::{MeshOptions, stack_dir};

use crate::common::*;

/// A client generated in Python from proto/ (grpcio-tools, pinned in scripts/stack.sh)
/// buys a ticket through the coordinator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_generated_from_the_protos_buys_a_ticket() {
    let world = World::start(MeshOptions::default()).await;
    world.event("python", 1, 4, 1_234).await;

    let python = stack_dir().join("venv/bin/python");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let generated = tempfile::tempdir().expect("temp dir");
    let protos: Vec<_> = std::fs::read_dir(root.join("proto/ticketdrop/v1"))
        .expect("proto dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".proto"))
        // Relative to the include path, as protoc wants them.
        .map(|name| format!("proto/ticketdrop/v1/{name}"))
        .collect();
    let status = Command::new(&python)
        .current_dir(&root)
        .args(["-m", "grpc_tools.protoc", "-I", "proto"])
        .arg(format!("--python_out={}", generated.path().display()))
        .arg(format!("--grpc_python_out={}", generated.path().display()))
        .args(&protos)
        .status()
        .expect("grpc_tools runs (make stack-up installs it)");
    assert!(status.success(), "stubs generated");

    let target = world.mesh.coordinator.addr().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .current_dir(&root)
            .env("PYTHONPATH", generated.path())
            .args([
                "clients/python/buy.py",
                "--target",
                &target,
                "--event",
                "python",
            ])
            .args([
                "--seats",
                "A-1-2",
                "--protocol",
                "2pc",
                "--key",
                "from-python",
            ])
            .output()
            .expect("the python client runs")
    })
    .await
    .expect("joins");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bought: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(bought["seats"], serde_json::json!(["A-1-2"]));
    assert_eq!(bought["amount_cents"], 1_234);
    assert_eq!(bought["tickets"].as_array().map(Vec::len), Some(1));
    let order_id = bought["order_id"].as_str().expect("order id");
    assert_eq!(
        world.seats("python").await["A-1-2"],
        ("SOLD".to_owned(), Some(order_id.to_owned()))
    );
    world.assert_invariants("python", 4).await;
}
