use std::process::Command;
use std::time::Duration;

use test_harness::MeshOptions;

use crate::common::*;

/// The TypeScript client (clients/typescript: messages and service descriptors generated
/// from proto/ by the local protoc-gen-es, gRPC through Connect's Node.js transport)
/// walks one fan through the waiting room, buys a seat with the admission and verifies
/// the ticket with orders-dynamo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typescript_client_generated_from_the_protos_waits_buys_and_verifies_its_ticket() {
    let world = World::start(MeshOptions::default()).await;
    world.event("typescript", 1, 4, 2_500).await;
    world
        .open_room("typescript", 1, Duration::from_secs(30))
        .await;

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/typescript");
    let (coordinator, room, orders) = (
        world.mesh.coordinator.addr().to_string(),
        world.mesh.waiting_room.addr().to_string(),
        world.mesh.orders.addr().to_string(),
    );
    let output = tokio::task::spawn_blocking(move || {
        // Generates from proto/ (buf + protoc-gen-es, no remote plugin) and compiles.
        let built = Command::new("npm")
            .current_dir(&dir)
            .args(["run", "--silent", "build"])
            .output()
            .expect("npm runs (make stack-up installs the client's packages)");
        assert!(
            built.status.success(),
            "npm run build: {}{}",
            String::from_utf8_lossy(&built.stdout),
            String::from_utf8_lossy(&built.stderr)
        );
        Command::new("node")
            .current_dir(&dir)
            .arg("dist/journey.js")
            .args([
                "--coordinator",
                &coordinator,
                "--room",
                &room,
                "--orders",
                &orders,
            ])
            .args([
                "--event",
                "typescript",
                "--user",
                "ts-fan",
                "--key",
                "ts-fan-1",
            ])
            .args(["--protocol", "lease"])
            .output()
            .expect("node runs the journey")
    })
    .await
    .expect("joins");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let journey: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(journey["outcome"], "bought", "{journey}");
    assert_eq!(journey["join_number"], 1, "{journey}");
    assert_eq!(journey["amount_cents"], 2_500, "{journey}");
    assert_eq!(journey["currency"], "EUR", "{journey}");
    assert_eq!(journey["ticket_valid"], true, "{journey}");
    let seats = journey["seats"].as_array().expect("seats");
    assert_eq!(seats.len(), 1, "{journey}");
    let seat = seats[0].as_str().expect("a seat id");
    assert_eq!(journey["ticket_seat"], seat, "{journey}");
    let order_id = journey["order_id"].as_str().expect("order id");
    assert_eq!(
        world.seats("typescript").await[seat],
        ("SOLD".to_owned(), Some(order_id.to_owned()))
    );
    world.assert_invariants("typescript", 4).await;
}
