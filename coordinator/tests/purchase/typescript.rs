use std::process::Command;
use std::time::Duration;

use local_mesh::MeshOptions;

use crate::common::*;
use crate::python::{assert_bought, assert_classified, login_command};

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
    // The coordinators as a list whose first one never answers (a port nobody serves):
    // the client moves on to the one that does.
    let (coordinator, room, orders) = (
        format!(
            "127.0.0.1:{},{}",
            local_mesh::free_port().expect("a free port"),
            world.mesh.coordinator.addr()
        ),
        world.mesh.waiting_room.addr().to_string(),
        world.mesh.orders.addr().to_string(),
    );
    let (bought, checked, declined) = tokio::task::spawn_blocking(move || {
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
        let journey = |user: &str, key: &str, card: &str| {
            Command::new("node")
                .current_dir(&dir)
                // The journey logs in through the local stack's login, as a fan would.
                .env("TICKETDROP_LOGIN", login_command())
                .arg("dist/journey.js")
                .args([
                    "--coordinator",
                    &coordinator,
                    "--room",
                    &room,
                    "--orders",
                    &orders,
                ])
                .args(["--event", "typescript", "--user", user, "--key", key])
                .args(["--protocol", "lease", "--card", card])
                .output()
                .expect("node runs the journey")
        };
        let bought = journey("ts-fan", "ts-fan-1", "tok_visa");
        let checked = Command::new("node")
            .current_dir(&dir)
            .arg("dist/outcome.js")
            .output()
            .expect("node runs the classification");
        let declined = journey("ts-declined", "ts-declined-1", "tok_declined");
        (bought, checked, declined)
    })
    .await
    .expect("joins");
    assert_bought(&world, "typescript", 2_500, &bought).await;
    assert_classified(&checked, &declined);
}
