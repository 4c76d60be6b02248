//! The audit against stores corrupted on purpose: every kind of violation it can name is
//! provoked by corrupting the stores in exactly that way, after a clean audit of the
//! same event; the audit must name it with its ids.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;
use ticketdrop::audit::{self, Kind};

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
    let clean = cli.run(&["audit", "--event", "corrupt"]).await;
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );

    // A second confirmed order for the same seat, written behind the services' back.
    put_order(&cli, "corrupt", "ord-intruder", &["A-1-1"]).await;
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

/// One event of the test: a committed purchase of A-1-1 and a declined one (2pc), and
/// the ids a corruption needs.
struct Case {
    kind: Kind,
    event: String,
    /// The committed purchase: txid, order, payment, idempotency key.
    txid: String,
    order: String,
    payment: String,
    key: String,
    /// The declined purchase (ABORTED, its order CANCELLED).
    aborted_txid: String,
    aborted_order: String,
}

/// Every kind of violation the audit names, each provoked by its own corruption of the
/// stores (`corrupt` matches on every kind: a new kind does not compile without one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_violation_is_named_with_its_ids() {
    let mut cli = Cli::start().await;
    let stores = cli.stores();
    let cases: Vec<Case> = futures::stream::iter(Kind::ALL.iter().copied())
        .map(|kind| Case::prepare(&cli, kind))
        .buffered(4)
        .collect()
        .await;
    for case in &cases {
        let report = audit::audit(&stores, &case.event).await.expect("audits");
        assert!(
            report.violations.is_empty(),
            "{}: the audit before the corruption: {:?}",
            case.event,
            report.violations
        );
    }
    // Nothing sweeps, recovers or relays what is corrupted below.
    for service in [
        &mut cli.mesh.coordinator,
        &mut cli.mesh.waiting_room,
        &mut cli.mesh.inventory,
        &mut cli.mesh.orders,
        &mut cli.mesh.payments,
        &mut cli.mesh.notifier,
    ] {
        service.kill().await.expect("stops");
    }
    let stores_now = Corrupter::connect(&cli).await;
    let mut expected = Vec::new();
    for case in &cases {
        expected.push(stores_now.corrupt(case).await);
    }
    let mut missed = Vec::new();
    for (case, ids) in cases.iter().zip(&expected) {
        let report = audit::audit(&stores, &case.event).await.expect("audits");
        let named = report
            .of(case.kind)
            .any(|v| ids.iter().all(|id| v.ids.contains(id)));
        if !named {
            missed.push(format!(
                "{} with ids {ids:?} not named; the audit said {:?}",
                case.kind, report.violations
            ));
        }
    }
    stores_now.clean_up(&cases).await;
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

impl Case {
    async fn prepare(cli: &Cli, kind: Kind) -> Case {
        let event = format!("k-{}", kind.name().replace('_', "-"));
        cli.event(&event, 4, "").await;
        let bought = cli
            .json(&[
                "purchase",
                "--user",
                "fan",
                "--event",
                &event,
                "--seats",
                "A-1-1",
                "--protocol",
                "2pc",
                "--json",
            ])
            .await;
        let declined = cli
            .run(&[
                "purchase",
                "--user",
                "fan",
                "--event",
                &event,
                "--seats",
                "A-1-2",
                "--protocol",
                "2pc",
                "--card",
                "tok_declined",
            ])
            .await;
        assert!(!declined.status.success(), "a declined card is refused");
        let log = cli.mesh.coordinator_db.connect().await.expect("connects");
        let row = |state: &'static str| {
            let log = &log;
            let event = event.clone();
            async move {
                log.query_one(
                    "SELECT txid, order_id, idempotency_key FROM transactions
                      WHERE event_id = $1 AND state = $2",
                    &[&event, &state],
                )
                .await
                .unwrap_or_else(|e| panic!("one {state} purchase of {event}: {e}"))
            }
        };
        let (committed, aborted) = (row("COMMITTED").await, row("ABORTED").await);
        let order: String = committed.get(1);
        assert_eq!(bought["order_id"].as_str(), Some(order.as_str()));
        let payment: String = cli
            .mesh
            .payments_db
            .connect()
            .await
            .expect("connects")
            .query_one(
                "SELECT payment_id FROM payments WHERE order_id = $1",
                &[&order],
            )
            .await
            .expect("the purchase's payment")
            .get(0);
        Case {
            kind,
            event,
            txid: committed.get(0),
            order,
            payment,
            key: committed.get(2),
            aborted_txid: aborted.get(0),
            aborted_order: aborted.get(1),
        }
    }
}

/// Direct connections to the mesh's stores, to corrupt them.
struct Corrupter {
    inventory: tokio_postgres::Client,
    payments: tokio_postgres::Client,
    log: tokio_postgres::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    redis: redis::aio::MultiplexedConnection,
    room_prefix: String,
}

impl Corrupter {
    async fn connect(cli: &Cli) -> Self {
        let mesh = &cli.mesh;
        Self {
            inventory: mesh.inventory_db.connect().await.expect("connects"),
            payments: mesh.payments_db.connect().await.expect("connects"),
            log: mesh.coordinator_db.connect().await.expect("connects"),
            dynamodb: local_mesh::dynamodb_client(&local_mesh::dynamodb_endpoint()),
            table: mesh.orders_table.clone(),
            redis: redis::Client::open(local_mesh::redis_url())
                .expect("redis url")
                .get_multiplexed_async_connection()
                .await
                .expect("connects to redis"),
            room_prefix: mesh.room_prefix.clone(),
        }
    }

    async fn inventory(&self, sql: &str, case: &Case) {
        self.inventory
            .execute(sql, &[&case.event])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn payments(&self, sql: &str, order: &str) {
        self.payments
            .execute(sql, &[&order])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn log(&self, sql: &str, txid: &str) {
        self.log
            .execute(sql, &[&txid])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn order(&self, order: &str, field: &str, value: AttributeValue) {
        self.dynamodb
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("ORDER#{order}")))
            .key("sk", AttributeValue::S("ORDER".into()))
            .update_expression("SET #field = :value")
            .expression_attribute_names("#field", field)
            .expression_attribute_values(":value", value)
            .send()
            .await
            .unwrap_or_else(|e| panic!("updating {order}: {e:?}"));
    }

    async fn room(&self, case: &Case, fields: &[(&str, &str)]) {
        let mut redis = self.redis.clone();
        let mut all = vec![("state", "OPEN"), ("max_active", "10")];
        all.extend_from_slice(fields);
        let _: () = redis::cmd("HSET")
            .arg(format!("{}:{{{}}}", self.room_prefix, case.event))
            .arg(&all)
            .query_async(&mut redis)
            .await
            .expect("writes the room");
    }

    async fn fan(&self, case: &Case, user: &str, fields: &[(&str, String)]) {
        let mut redis = self.redis.clone();
        let _: () = redis::cmd("HSET")
            .arg(format!(
                "{}:{{{}}}:fan:{user}",
                self.room_prefix, case.event
            ))
            .arg(fields)
            .query_async(&mut redis)
            .await
            .expect("writes the fan");
    }

    /// Corrupts the stores of `case` so as to break exactly its kind's rule; returns the
    /// ids the violation must name.
    async fn corrupt(&self, case: &Case) -> Vec<String> {
        let (event, txid, order) = (case.event.clone(), case.txid.clone(), case.order.clone());
        let intruder = format!("ord-intruder-{}", case.event);
        let ghost = format!("ord-ghost-{}", case.event);
        let extra_payment = format!("pay-extra-{}", case.event);
        match case.kind {
            Kind::SeatSoldTwice => {
                put_order_in(&self.dynamodb, &self.table, &event, &intruder, &["A-1-1"]).await;
                vec!["A-1-1".into(), order, intruder]
            }
            Kind::SoldWithoutConfirmedOrder => {
                self.inventory(
                    "UPDATE seats SET status = 'SOLD', order_id = 'ord-nobody'
                      WHERE event_id = $1 AND seat_id = 'A-1-3'",
                    case,
                )
                .await;
                vec!["A-1-3".into(), "ord-nobody".into()]
            }
            Kind::ConfirmedOrderSeatNotSold => {
                self.inventory(
                    "UPDATE seats SET status = 'AVAILABLE', order_id = NULL, holder = NULL,
                            hold_expires_at = NULL
                      WHERE event_id = $1 AND seat_id = 'A-1-1'",
                    case,
                )
                .await;
                vec!["A-1-1".into(), order]
            }
            Kind::ConfirmedWithoutCapture => {
                self.payments(
                    "UPDATE payments SET state = 'VOIDED', captured_cents = 0 WHERE order_id = $1",
                    &order,
                )
                .await;
                vec![order]
            }
            Kind::ConfirmedWithoutSeats => {
                self.order(&order, "seats", AttributeValue::L(Vec::new()))
                    .await;
                vec![order]
            }
            Kind::TicketsMissing => {
                self.order(&order, "tickets", AttributeValue::L(Vec::new()))
                    .await;
                vec![order]
            }
            Kind::MoneyForUnconfirmedOrder => {
                // An authorization of the declined purchase's order, valid for a week.
                self.payments(
                    &format!(
                        "INSERT INTO payments (payment_id, order_id, state, amount_cents, currency,
                                               card_brand, card_last4, expires_at)
                         VALUES ('{extra_payment}', $1, 'AUTHORIZED', 5000, 'EUR', 'visa', '4242',
                                 now() + interval '7 days')"
                    ),
                    &case.aborted_order,
                )
                .await;
                vec![extra_payment, case.aborted_order.clone()]
            }
            Kind::CaptureWithoutOrder => {
                self.payments(
                    &format!(
                        "INSERT INTO payments (payment_id, order_id, state, amount_cents,
                                               captured_cents, currency, card_brand, card_last4)
                         VALUES ('{extra_payment}', $1, 'CAPTURED', 5000, 5000, 'EUR', 'visa',
                                 '4242')"
                    ),
                    &ghost,
                )
                .await;
                vec![extra_payment, ghost]
            }
            Kind::CaptureAmountMismatch => {
                self.inventory(
                    "UPDATE seats SET price_cents = 7000 WHERE event_id = $1 AND seat_id = 'A-1-1'",
                    case,
                )
                .await;
                vec![order, case.payment.clone()]
            }
            Kind::MoneyMismatch => {
                self.payments(
                    "UPDATE payments SET refunded_cents = 1000 WHERE order_id = $1",
                    &order,
                )
                .await;
                vec![event]
            }
            Kind::UnfinishedPurchase => {
                self.log(
                    "UPDATE transactions SET state = 'RUNNING', finished_at = NULL WHERE txid = $1",
                    &txid,
                )
                .await;
                vec![txid, order]
            }
            Kind::CommittedNotInStores => {
                self.log(
                    "UPDATE transactions SET state = 'COMMITTED' WHERE txid = $1",
                    &case.aborted_txid,
                )
                .await;
                vec![case.aborted_txid.clone(), case.aborted_order.clone()]
            }
            Kind::AbortedLeftTrace => {
                self.log(
                    "UPDATE transactions SET state = 'ABORTED' WHERE txid = $1",
                    &txid,
                )
                .await;
                vec![txid, order]
            }
            Kind::CapacityMismatch => {
                self.inventory(
                    "UPDATE events SET capacity = capacity + 1 WHERE event_id = $1",
                    case,
                )
                .await;
                vec![event]
            }
            Kind::ExpiredHold => {
                self.inventory(
                    "UPDATE seats SET status = 'HELD', holder = 'tx-stale',
                            hold_expires_at = now() - interval '1 minute'
                      WHERE event_id = $1 AND seat_id = 'A-1-3'",
                    case,
                )
                .await;
                vec!["A-1-3".into(), "tx-stale".into()]
            }
            Kind::PreparedOrderLeft => {
                self.order(
                    &order,
                    "status",
                    AttributeValue::S("ORDER_STATUS_PREPARED".into()),
                )
                .await;
                vec![order]
            }
            Kind::PreparedSaleLeft => {
                self.inventory
                    .batch_execute(&format!("BEGIN; SELECT 1; PREPARE TRANSACTION 'td-{txid}'"))
                    .await
                    .expect("prepares");
                vec![txid]
            }
            Kind::PreparedPaymentLeft => {
                self.payments(
                    "UPDATE txn_participants SET state = 'PREPARED' WHERE txid = $1",
                    &txid,
                )
                .await;
                vec![txid]
            }
            Kind::OrphanLease => {
                let key = format!("lock:seat:{{{event}}}:A-1-1");
                let mut redis = self.redis.clone();
                let _: () = redis::cmd("SET")
                    .arg(&key)
                    .arg(&txid)
                    .arg("PX")
                    .arg(600_000)
                    .query_async(&mut redis)
                    .await
                    .expect("sets a lease");
                vec![key, txid]
            }
            Kind::ChargedTwice => {
                self.payments(
                    &format!(
                        "INSERT INTO payments (payment_id, order_id, state, amount_cents,
                                               captured_cents, currency, card_brand, card_last4)
                         VALUES ('{extra_payment}', $1, 'CAPTURED', 5000, 5000, 'EUR', 'visa',
                                 '4242')"
                    ),
                    &order,
                )
                .await;
                vec![order, case.payment.clone(), extra_payment]
            }
            Kind::SoldOutWhileAvailable => {
                self.room(case, &[("state", "SOLD_OUT"), ("sold_out", "3")])
                    .await;
                vec!["A-1-2".into()]
            }
            Kind::ConfirmationForUncommitted => {
                self.log("INSERT INTO outbox (txid) VALUES ($1)", &case.aborted_txid)
                    .await;
                vec![case.aborted_txid.clone()]
            }
            Kind::ConfirmationMissing => {
                self.log("DELETE FROM outbox WHERE txid = $1", &txid).await;
                vec![txid]
            }
            Kind::RoomOverMaxActive => {
                self.room(case, &[("max_active", "2"), ("max_purchasing_seen", "3")])
                    .await;
                vec![event]
            }
            Kind::RoomOutOfOrder => {
                self.room(case, &[]).await;
                // fan-b joined second and was admitted first.
                for (user, seq, number) in [("fan-a", 1, 2), ("fan-b", 2, 1)] {
                    self.fan(
                        case,
                        user,
                        &[
                            ("state", "ADMITTED".to_owned()),
                            ("seq", seq.to_string()),
                            ("admission_number", number.to_string()),
                        ],
                    )
                    .await;
                }
                vec!["fan-a".into(), "fan-b".into()]
            }
            Kind::SlotFreedWhileUnfinished => {
                self.room(case, &[]).await;
                let finished_ms: i64 = self
                    .log
                    .query_one(
                        "SELECT (extract(epoch FROM finished_at) * 1000)::bigint
                           FROM transactions WHERE txid = $1",
                        &[&txid],
                    )
                    .await
                    .expect("the purchase's end")
                    .get(0);
                // The room says it gave the slot back a minute before the log ended it.
                self.fan(
                    case,
                    "fan-early",
                    &[
                        ("state", "FINISHED".to_owned()),
                        ("seq", "1".to_owned()),
                        ("key", case.key.clone()),
                        ("ended_at", (finished_ms - 60_000).to_string()),
                    ],
                )
                .await;
                vec!["fan-early".into(), case.key.clone()]
            }
        }
    }

    /// What must not outlive the test: prepared transactions (they block dropping the
    /// database) and keys in the shared Redis.
    async fn clean_up(&self, cases: &[Case]) {
        let mut redis = self.redis.clone();
        for case in cases {
            match case.kind {
                Kind::PreparedSaleLeft => {
                    self.inventory
                        .batch_execute(&format!("ROLLBACK PREPARED 'td-{}'", case.txid))
                        .await
                        .expect("rolls back");
                }
                Kind::OrphanLease => {
                    let _: () = redis::cmd("DEL")
                        .arg(format!("lock:seat:{{{}}}:A-1-1", case.event))
                        .query_async(&mut redis)
                        .await
                        .expect("deletes the lease");
                }
                _ => {}
            }
        }
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.room_prefix))
            .query_async(&mut redis)
            .await
            .expect("lists the rooms");
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut redis)
                .await
                .expect("deletes the rooms");
        }
    }
}

async fn put_order(cli: &Cli, event: &str, order: &str, seats: &[&str]) {
    let dynamodb = local_mesh::dynamodb_client(&local_mesh::dynamodb_endpoint());
    put_order_in(&dynamodb, &cli.mesh.orders_table, event, order, seats).await;
}

/// A CONFIRMED order of `seats` at 50.00, written behind the services' back.
async fn put_order_in(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    event: &str,
    order: &str,
    seats: &[&str],
) {
    let seat = |id: &str| {
        AttributeValue::M(HashMap::from([
            ("seat_id".to_owned(), AttributeValue::S(id.into())),
            ("price_cents".to_owned(), AttributeValue::N("5000".into())),
        ]))
    };
    dynamodb
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S(format!("ORDER#{order}")))
        .item("sk", AttributeValue::S("ORDER".into()))
        .item("order_id", AttributeValue::S(order.into()))
        .item("event_id", AttributeValue::S(event.into()))
        .item("status", AttributeValue::S("ORDER_STATUS_CONFIRMED".into()))
        .item(
            "seats",
            AttributeValue::L(seats.iter().map(|s| seat(s)).collect()),
        )
        .item("total_cents", AttributeValue::N("5000".into()))
        .send()
        .await
        .expect("writes the order");
}
