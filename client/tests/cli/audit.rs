use aws_sdk_dynamodb::types::AttributeValue;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_fails_on_a_corrupted_database_and_names_the_ids() {
    let cli = Cli::start().await;
    cli.event("corrupt", 4, "").await;
    let bought = cli
        .json(&[
            "purchase",
            "--user",
            "u",
            "--event",
            "corrupt",
            "--seats",
            "A-1-1",
            "--protocol",
            "2pc",
            "--json",
        ])
        .await;
    let order_id = bought["order_id"].as_str().unwrap().to_owned();
    assert_eq!(
        cli.run(&["audit", "--event", "corrupt"])
            .await
            .status
            .code(),
        Some(0)
    );

    // A second confirmed order for the same seat, written behind the services' back.
    let dynamodb = test_harness::dynamodb_client(&test_harness::dynamodb_endpoint());
    let seat = AttributeValue::M(
        [
            ("seat_id".to_owned(), AttributeValue::S("A-1-1".into())),
            ("price_cents".to_owned(), AttributeValue::N("5000".into())),
        ]
        .into(),
    );
    dynamodb
        .put_item()
        .table_name(&cli.mesh.orders_table)
        .item("pk", AttributeValue::S("ORDER#ord-intruder".into()))
        .item("sk", AttributeValue::S("ORDER".into()))
        .item("order_id", AttributeValue::S("ord-intruder".into()))
        .item("event_id", AttributeValue::S("corrupt".into()))
        .item("status", AttributeValue::S("ORDER_STATUS_CONFIRMED".into()))
        .item("seats", AttributeValue::L(vec![seat]))
        .item("total_cents", AttributeValue::N("5000".into()))
        .send()
        .await
        .expect("corrupted orders");
    // A capture for an order that does not exist.
    cli.mesh
        .payments_db
        .connect()
        .await
        .expect("connects")
        .execute(
            "INSERT INTO payments (payment_id, order_id, state, amount_cents, captured_cents, currency,
                                   card_brand, card_last4)
             VALUES ('pay_ghost', 'ord-ghost', 'CAPTURED', 5000, 5000, 'EUR', 'visa', '4242')",
            &[],
        )
        .await
        .expect("corrupted payments");

    let output = cli.run(&["audit", "--event", "corrupt", "--json"]).await;
    assert_eq!(output.status.code(), Some(2), "violations exit 2");
    let report = parse(&output);
    let violations = report["violations"].as_array().expect("violations");
    let find = |kind: &str| {
        violations
            .iter()
            .find(|v| v["kind"] == kind)
            .unwrap_or_else(|| panic!("{kind} in {violations:?}"))
    };
    let twice = find("seat_sold_twice");
    let ids: Vec<&str> = twice["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"A-1-1") && ids.contains(&"ord-intruder") && ids.contains(&order_id.as_str()),
        "{ids:?}"
    );
    assert_eq!(twice["invariant"], 1);
    let ghost = find("capture_without_order");
    assert_eq!(ghost["ids"], serde_json::json!(["pay_ghost", "ord-ghost"]));
    assert_eq!(report["oversold"], 1);

    let text = cli.run(&["audit", "--event", "corrupt"]).await;
    assert_eq!(text.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("VIOLATION 1 [seat_sold_twice] A-1-1")
            && stdout.contains("pay_ghost, ord-ghost"),
        "{stdout}"
    );
}
