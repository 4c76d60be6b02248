use std::process::Output;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_answers_in_json() {
    let cli = Cli::start().await;

    let health = cli.json(&["health", "--json"]).await;
    assert_eq!(health.as_array().map(Vec::len), Some(6));
    assert!(
        health
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["service"] == "notifier"),
        "{health}"
    );
    assert!(
        health
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "SERVING")
    );

    let created = cli.event("jazz", 4, "smooth saxophone by the lake").await;
    assert_eq!(
        (created["event_id"].as_str(), created["capacity"].as_u64()),
        (Some("jazz"), Some(4))
    );
    cli.event("rock", 4, "loud guitars").await;
    let listed = cli.json(&["events", "list", "--json"]).await;
    assert_eq!(listed["events"].as_array().map(Vec::len), Some(2));
    let found = cli.json(&["events", "search", "saxophone", "--json"]).await;
    assert_eq!(found["results"][0]["event"]["event_id"], "jazz");
    assert_eq!(found["results"].as_array().map(Vec::len), Some(1));

    let qr = tempfile::tempdir().expect("temp dir");
    let qr_path = qr.path().join("codes/ticket.png");
    let bought = cli
        .json(&[
            "purchase",
            "--user",
            "ana",
            "--event",
            "jazz",
            "--seats",
            "A-1-1,A-1-2",
            "--protocol",
            "saga",
            "--idempotency-key",
            "ana-1",
            "--qr-out",
            qr_path.to_str().unwrap(),
            "--json",
        ])
        .await;
    assert_eq!(bought["protocol"], "saga");
    assert_eq!(bought["amount_cents"], 10_000);
    let tickets = bought["tickets"].as_array().expect("tickets");
    assert_eq!(tickets.len(), 2);
    let files = bought["qr_files"].as_array().expect("qr files");
    assert_eq!(files.len(), 2);
    for file in files {
        let bytes = std::fs::read(file.as_str().unwrap()).expect("QR file written");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    }
    let svg = qr.path().join("one.svg");
    let single = cli
        .json(&[
            "purchase",
            "--user",
            "bo",
            "--event",
            "jazz",
            "--quantity",
            "1",
            "--protocol",
            "lease",
            "--qr-out",
            svg.to_str().unwrap(),
            "--json",
        ])
        .await;
    assert_eq!(single["tickets"].as_array().map(Vec::len), Some(1));
    assert!(std::fs::read_to_string(&svg).expect("svg").contains("<svg"));

    let shown = cli.json(&["events", "show", "jazz", "--json"]).await;
    assert_eq!(
        (
            shown["total"]["sold"].as_u64(),
            shown["total"]["available"].as_u64()
        ),
        (Some(3), Some(1))
    );
    assert_eq!(shown["seats"].as_array().map(Vec::len), Some(4));

    let token = tickets[0]["token"].as_str().unwrap();
    let verified = cli.json(&["ticket", "verify", token, "--json"]).await;
    assert_eq!(
        (
            verified["valid"].as_bool(),
            verified["ticket"]["seat_id"].as_str()
        ),
        (Some(true), Some("A-1-1"))
    );
    let last = if token.ends_with('A') { 'B' } else { 'A' };
    let forged = format!("{}{last}", &token[..token.len() - 1]);
    let output = cli.run(&["ticket", "verify", &forged, "--json"]).await;
    assert_eq!(
        output.status.code(),
        Some(1),
        "an invalid ticket fails the command"
    );
    assert_eq!(parse(&output)["valid"], false);

    let declined = cli
        .run(&[
            "purchase",
            "--user",
            "cy",
            "--event",
            "jazz",
            "--seats",
            "A-1-4",
            "--protocol",
            "2pc",
            "--card",
            "tok_declined",
            "--json",
        ])
        .await;
    assert_eq!(declined.status.code(), Some(1));
    let error = parse(&declined)["error"].clone();
    assert_eq!(error["reason"], "CARD_DECLINED");
    assert_eq!(error["metadata"]["decline_code"], "card_declined");
    let declined_txid = error["metadata"]["txid"].as_str().expect("txid").to_owned();

    let txid = bought["txid"].as_str().unwrap();
    let shown = cli.json(&["txn", "show", txid, "--format", "json"]).await;
    assert_eq!(
        (shown["state"].as_str(), shown["protocol"].as_str()),
        (Some("COMMITTED"), Some("saga"))
    );
    let operations: Vec<&str> = shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        operations,
        [
            "hold_seats",
            "create_order",
            "authorize",
            "confirm_seats",
            "capture",
            "confirm_order"
        ]
    );
    assert!(
        cli.text(&["txn", "show", txid])
            .await
            .contains("confirm_order")
    );
    // --compact: the purchase, then exactly one line per step, in order.
    let compact = cli.text(&["txn", "show", txid, "--compact"]).await;
    let lines: Vec<&str> = compact.lines().collect();
    assert_eq!(lines.len(), 1 + operations.len(), "{compact}");
    assert!(
        lines[0].starts_with(&format!("{txid} saga COMMITTED ")),
        "{compact}"
    );
    for (line, operation) in lines[1..].iter().zip(&operations) {
        assert!(line.starts_with('+'), "{line}");
        assert!(line.contains(&format!(".{operation} #1 OK ")), "{line}");
    }

    let listed = cli
        .json(&["txn", "list", "--protocol", "saga", "--format", "json"])
        .await;
    assert_eq!(listed["transactions"].as_array().map(Vec::len), Some(1));
    let aborted = cli
        .json(&[
            "txn", "list", "--state", "aborted", "--since", "5m", "--format", "json",
        ])
        .await;
    assert_eq!(aborted["transactions"][0]["txid"], declined_txid.as_str());
    let pending = cli.json(&["txn", "pending", "--format", "json"]).await;
    assert_eq!(pending["pending"].as_array().map(Vec::len), Some(0));
    let failures = cli
        .json(&[
            "txn",
            "failures",
            "--since",
            "5m",
            "--group-by",
            "step",
            "--format",
            "json",
        ])
        .await;
    assert_eq!(failures["total"], 1);
    assert_eq!(failures["groups"][0]["key"], "prepare");
    let diagnosis = cli
        .json(&["txn", "diagnose", &declined_txid, "--json"])
        .await;
    assert_eq!(diagnosis["state"], "ABORTED");
    assert_eq!(
        (
            diagnosis["first_failure"]["participant"].as_str(),
            diagnosis["first_failure"]["operation"].as_str()
        ),
        (Some("payments"), Some("prepare"))
    );
    let compensated: Vec<&str> = diagnosis["compensated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["participant"].as_str().unwrap())
        .collect();
    assert!(
        compensated.is_empty(),
        "2pc aborts; it does not compensate: {compensated:?}"
    );

    let audit = cli.json(&["audit", "--event", "jazz", "--json"]).await;
    assert_eq!(
        audit["violations"].as_array().map(Vec::len),
        Some(0),
        "{audit}"
    );
    assert_eq!(
        (audit["sold"].as_i64(), audit["confirmed_orders"].as_i64()),
        (Some(3), Some(2))
    );
    assert_eq!(audit["captured_cents"], 15_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_is_down_gets_a_clear_message() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ticketdrop"))
        .args(["--coordinator", "http://127.0.0.1:9", "txn", "pending"])
        .output()
        .await
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("coordinator is not reachable at http://127.0.0.1:9"),
        "{stderr}"
    );
}

/// `ticketdrop login` prints a fan's token: with it (`--token`) the fan buys for
/// themself, is refused buying for another fan and creating an event, and the refusals
/// print their code and reason; `--admin` prints an operator's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_prints_a_token_that_buys_only_for_its_user() {
    let cli = Cli::start().await;
    cli.event("login", 4, "tokens").await;
    let printed = |output: &Output| String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let login = cli.run(&["login", "--user", "ana"]).await;
    assert!(login.status.success());
    let ana = printed(&login);
    assert_eq!(ana.split('.').count(), 3, "a JWT: {ana}");

    let buy = |user: &'static str, key: &'static str| {
        [
            "--token",
            &ana,
            "purchase",
            "--user",
            user,
            "--event",
            "login",
            "--quantity",
            "1",
            "--protocol",
            "saga",
            "--idempotency-key",
            key,
            "--json",
        ]
        .map(str::to_owned)
    };
    let as_bob = buy("bob", "bob-1");
    let refused = cli
        .run(&as_bob.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("PermissionDenied (OTHER_USER)"), "{stderr}");
    let created = cli
        .run(&[
            "--token",
            &ana,
            "events",
            "create",
            "--event-id",
            "ana-show",
            "--name",
            "Ana's",
            "--section",
            "A:1x4:5000",
        ])
        .await;
    assert_eq!(created.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(
        stderr.contains("PermissionDenied (SCOPE_REQUIRED)"),
        "{stderr}"
    );

    let as_ana = buy("ana", "ana-1");
    let bought = cli
        .json(&as_ana.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert_eq!(
        bought["seats"].as_array().map(Vec::len),
        Some(1),
        "{bought}"
    );

    let admin = printed(&cli.run(&["login", "--user", "ops", "--admin"]).await);
    let listed = cli
        .run(&["--token", &admin, "txn", "list", "--event", "login"])
        .await;
    assert!(listed.status.success(), "an operator reads the log");
    assert!(
        printed(&listed).contains("COMMITTED"),
        "{}",
        printed(&listed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_set_one_field_at_a_time_refused_out_of_range_and_cleared() {
    let cli = Cli::start().await;
    let quiet = serde_json::json!({
        "decline_rate": 0.0, "decline_every": 0, "latency_min_ms": 0.0, "latency_max_ms": 0.0,
        "timeout_probability": 0.0, "lose_response_probability": 0.0,
    });
    assert_eq!(cli.json(&["faults", "show", "--json"]).await, quiet);

    let set = cli
        .json(&[
            "faults",
            "set",
            "--decline-rate",
            "0.25",
            "--latency",
            "10ms..30ms",
            "--json",
        ])
        .await;
    let expected = serde_json::json!({
        "decline_rate": 0.25, "decline_every": 0, "latency_min_ms": 10.0, "latency_max_ms": 30.0,
        "timeout_probability": 0.0, "lose_response_probability": 0.0,
    });
    assert_eq!(set, expected);
    // A second set changes only the field it names.
    let mut expected = expected;
    expected["lose_response_probability"] = 0.5.into();
    cli.json(&[
        "faults",
        "set",
        "--lose-response-probability",
        "0.5",
        "--json",
    ])
    .await;
    assert_eq!(cli.json(&["faults", "show", "--json"]).await, expected);
    expected["decline_every"] = 5.into();
    cli.json(&["faults", "set", "--decline-every", "5", "--json"])
        .await;
    assert_eq!(cli.json(&["faults", "show", "--json"]).await, expected);

    // Out of range, or a range that ends before it starts: refused, naming the flag;
    // the settings in force do not change.
    for (flag, value, why) in [
        ("--decline-rate", "1.5", "must be between 0 and 1"),
        ("--timeout-probability", "-0.1", "must be between 0 and 1"),
        ("--latency", "30ms..10ms", "ends before it starts"),
    ] {
        let output = cli.run(&["faults", "set", flag, value]).await;
        assert_eq!(output.status.code(), Some(2), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(flag) && stderr.contains(why),
            "{flag} {value}: {stderr}"
        );
    }
    assert_eq!(cli.json(&["faults", "show", "--json"]).await, expected);

    assert_eq!(cli.json(&["faults", "clear", "--json"]).await, quiet);
    assert_eq!(cli.json(&["faults", "show", "--json"]).await, quiet);
}
