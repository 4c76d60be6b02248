use std::process::Command;
use std::time::Duration;

use local_mesh::{MeshOptions, stack_dir};

use crate::common::*;

/// The Python client (clients/python: stubs generated from proto/ by generate.py with
/// grpcio-tools) walks one fan through the waiting room, buys a seat with the admission
/// and verifies the ticket with orders-dynamo: the TypeScript client's journey.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_generated_from_the_protos_waits_buys_and_verifies_its_ticket() {
    let world = World::start(MeshOptions::default()).await;
    world.event("python", 1, 4, 1_234).await;
    world.open_room("python", 1, Duration::from_secs(30)).await;

    let python = stack_dir().join("venv/bin/python");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let generated = tempfile::tempdir().expect("temp dir");
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
        let status = Command::new(&python)
            .current_dir(&root)
            .arg("clients/python/generate.py")
            .arg(generated.path())
            .status()
            .expect("grpc_tools runs (make stack-up installs it)");
        assert!(status.success(), "stubs generated");
        let journey = |user: &str, key: &str, card: &str| {
            Command::new(&python)
                .current_dir(&root)
                .env("PYTHONPATH", generated.path())
                // The journey logs in through the local stack's login, as a fan would.
                .env("TICKETDROP_LOGIN", login_command())
                .arg("clients/python/journey.py")
                .args([
                    "--coordinator",
                    &coordinator,
                    "--room",
                    &room,
                    "--orders",
                    &orders,
                ])
                .args(["--event", "python", "--user", user, "--key", key])
                .args(["--protocol", "2pc", "--card", card])
                .output()
                .expect("the python client runs")
        };
        let bought = journey("py-fan", "py-fan-1", "tok_visa");
        let checked = Command::new(&python)
            .current_dir(&root)
            .env("PYTHONPATH", generated.path())
            .arg("clients/python/outcome.py")
            .output()
            .expect("the classification runs");
        let declined = journey("py-declined", "py-declined-1", "tok_declined");
        (bought, checked, declined)
    })
    .await
    .expect("joins");
    assert_bought(&world, "python", 1_234, &bought).await;
    assert_classified(&checked, &declined);
}

/// A client's check of the table's cases found none wrong, and the refusal of a declined
/// card reached it as its ErrorInfo reason, classified as a refusal.
pub fn assert_classified(checked: &std::process::Output, declined: &std::process::Output) {
    let table: serde_json::Value =
        serde_json::from_str(include_str!("../../../proto/ticketdrop/v1/outcomes.json"))
            .expect("the table");
    let cases = table["cases"].as_array().expect("cases").len();
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&checked.stdout).expect("one JSON object");
    assert_eq!(summary, serde_json::json!({"cases": cases, "wrong": 0}));
    assert_eq!(
        declined.status.code(),
        Some(1),
        "a declined card ends the journey"
    );
    let refusal: serde_json::Value = serde_json::from_slice(&declined.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&declined.stdout),
            String::from_utf8_lossy(&declined.stderr)
        )
    });
    assert_eq!(refusal["reason"], "CARD_DECLINED", "{refusal}");
    assert_eq!(refusal["outcome"], "refused", "{refusal}");
}

/// `ticketdrop login` of this build, with the keys the mesh under test verifies with.
pub fn login_command() -> String {
    format!(
        "{} --auth-dir {} login",
        local_mesh::service_binary("ticketdrop").display(),
        local_mesh::auth::auth_dir().display()
    )
}

/// A client's journey printed one JSON object: bought one seat of `event` (4 seats) at
/// `price` EUR cents, with a valid ticket for that seat, sold to its order.
pub async fn assert_bought(world: &World, event: &str, price: i64, output: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let journey: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(journey["outcome"], "bought", "{journey}");
    assert_eq!(journey["join_number"], 1, "{journey}");
    assert_eq!(journey["amount_cents"], price, "{journey}");
    assert_eq!(journey["currency"], "EUR", "{journey}");
    assert_eq!(journey["ticket_valid"], true, "{journey}");
    let seats = journey["seats"].as_array().expect("seats");
    assert_eq!(seats.len(), 1, "{journey}");
    let seat = seats[0].as_str().expect("a seat id");
    assert_eq!(journey["ticket_seat"], seat, "{journey}");
    let order_id = journey["order_id"].as_str().expect("order id");
    assert_eq!(
        world.seats(event).await[seat],
        ("SOLD".to_owned(), Some(order_id.to_owned()))
    );
    world.assert_invariants(event, 4).await;
}
