use std::process::Command;

use local_mesh::{MeshOptions, stack_dir};

use crate::common::*;

/// grpcurl, with nothing but the server's reflection, shows a refusal's ErrorInfo
/// decoded (reason, domain, metadata), not as raw bytes: reflection serves the
/// google.rpc error-detail types next to ticketdrop.v1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_shows_a_declined_cards_error_info_decoded() {
    let world = World::start(MeshOptions::default()).await;
    world.event("curl", 1, 4, 1_000).await;
    let target = world.mesh.coordinator.addr().to_string();
    let request = serde_json::json!({
        "user_id": "fan-curl",
        "event_id": "curl",
        "seat_ids": ["A-1-1"],
        "card_token": "tok_declined",
        "idempotency_key": "curl-declined",
        "protocol": "PROTOCOL_SAGA",
    })
    .to_string();
    let authorization = format!(
        "authorization: Bearer {}",
        local_mesh::auth::user_token("fan-curl")
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new(stack_dir().join("venv/bin/grpcurl"))
            .args(["-plaintext", "-H", &authorization, "-d", &request, &target])
            .arg("ticketdrop.v1.CoordinatorService/Purchase")
            .output()
            .expect("grpcurl runs (make stack-up installs it)")
    })
    .await
    .expect("joins");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "a declined card fails: {printed}");
    assert!(printed.contains("Code: FailedPrecondition"), "{printed}");
    // "Details:" then "1){...}": the detail as JSON, decoded through reflection (a type
    // grpcurl cannot resolve comes out as "@value" bytes with an "@error").
    let detail: serde_json::Value = printed
        .lines()
        .find_map(|line| line.trim().strip_prefix("1)"))
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_else(|| panic!("one detail, as JSON: {printed}"));
    assert_eq!(
        detail["@type"], "type.googleapis.com/google.rpc.ErrorInfo",
        "{printed}"
    );
    assert_eq!(detail["reason"], "CARD_DECLINED", "{printed}");
    assert_eq!(detail["domain"], "ticketdrop.v1", "{printed}");
    assert_eq!(
        detail["metadata"]["decline_code"], "card_declined",
        "{printed}"
    );
    assert!(
        detail["metadata"]["txid"]
            .as_str()
            .is_some_and(|t| t.starts_with("tx-")),
        "{printed}"
    );
    assert!(
        detail.get("@value").is_none(),
        "decoded, not raw: {printed}"
    );
    // Nothing was sold.
    assert_eq!(world.seats("curl").await["A-1-1"].0, "AVAILABLE");
}
