//! `ticketdrop audit --event E`: checks the invariants of shared/DESIGN.md by reading
//! inventory's, payments' and the coordinator's databases, the orders table and Redis
//! directly — not through the services whose correctness it checks. Every violation
//! names the ids involved; any violation makes the command exit 2.

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;

use crate::json;
use crate::stores::{self, Stores};

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Event to audit.
    #[arg(long)]
    pub event: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub stores: Stores,
}

/// Returned as the error when an audit finds violations (exit code 2).
#[derive(Debug)]
pub struct ViolationsFound(pub usize);

impl std::fmt::Display for ViolationsFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} invariant violation(s)", self.0)
    }
}

impl std::error::Error for ViolationsFound {}

#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// The invariant's number in shared/DESIGN.md.
    pub invariant: u8,
    pub kind: &'static str,
    pub ids: Vec<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub event_id: String,
    pub capacity: i64,
    pub available: i64,
    pub held: i64,
    pub sold: i64,
    pub confirmed_orders: usize,
    pub captured_cents: i64,
    pub confirmed_cents: i64,
    /// Seats sold to more than one confirmed order.
    pub oversold: usize,
    /// Purchases the coordinator has not finished.
    pub unfinished: usize,
    pub violations: Vec<Violation>,
}

pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    let report = audit(&args.stores, &args.event).await?;
    if args.json {
        json::print(&serde_json::to_value(&report)?)?;
    } else {
        println!(
            "audit of {}: capacity {}, available {}, held {}, sold {}; {} confirmed orders; \
             captured {:.2}, confirmed {:.2}",
            report.event_id,
            report.capacity,
            report.available,
            report.held,
            report.sold,
            report.confirmed_orders,
            report.captured_cents as f64 / 100.0,
            report.confirmed_cents as f64 / 100.0
        );
        if report.violations.is_empty() {
            println!("every invariant holds");
        }
        for v in &report.violations {
            println!(
                "VIOLATION {} [{}] {} — {}",
                v.invariant,
                v.kind,
                v.ids.join(", "),
                v.detail
            );
        }
    }
    match report.violations.len() {
        0 => Ok(()),
        n => Err(ViolationsFound(n).into()),
    }
}

pub(crate) struct Order {
    pub status: String,
    pub seats: Vec<String>,
    pub total_cents: i64,
    pub txid: String,
}

pub async fn audit(stores: &Stores, event_id: &str) -> anyhow::Result<Report> {
    let mut violations = Vec::new();
    let mut violation = |invariant, kind, ids: Vec<String>, detail: String| {
        violations.push(Violation {
            invariant,
            kind,
            ids,
            detail,
        });
    };

    // Inventory.
    let inventory = stores::postgres("inventory", &stores.inventory_db).await?;
    let capacity: i64 = inventory
        .query_opt(
            "SELECT capacity FROM events WHERE event_id = $1",
            &[&event_id],
        )
        .await?
        .map(|row| i64::from(row.get::<_, i32>(0)))
        .ok_or_else(|| anyhow::anyhow!("event {event_id} not found in the inventory database"))?;
    let seat_rows = inventory
        .query(
            "SELECT seat_id, status, order_id, holder, hold_expires_at < now() - interval '5 seconds'
               FROM seats WHERE event_id = $1",
            &[&event_id],
        )
        .await?;
    let mut seats: HashMap<String, (String, Option<String>)> = HashMap::new();
    let (mut available, mut held, mut sold) = (0, 0, 0);
    for row in &seat_rows {
        let seat: String = row.get(0);
        let status: String = row.get(1);
        match status.as_str() {
            "AVAILABLE" => available += 1,
            "HELD" => {
                held += 1;
                if row.get::<_, Option<bool>>(4) == Some(true) {
                    violation(
                        6,
                        "expired_hold",
                        vec![
                            seat.clone(),
                            row.get::<_, Option<String>>(3).unwrap_or_default(),
                        ],
                        "a hold past its expiry was not released".into(),
                    );
                }
            }
            _ => sold += 1,
        }
        seats.insert(seat, (status, row.get(2)));
    }
    if available + held + sold != capacity {
        violation(
            5,
            "capacity_mismatch",
            vec![event_id.to_owned()],
            format!("available {available} + held {held} + sold {sold} != capacity {capacity}"),
        );
    }

    // Orders.
    let orders = scan_orders(stores, event_id).await?;
    let mut confirmed_by_seat: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (order_id, order) in &orders {
        if order.status == "ORDER_STATUS_CONFIRMED" {
            for seat in &order.seats {
                confirmed_by_seat.entry(seat).or_default().push(order_id);
            }
        }
        if order.status == "ORDER_STATUS_PREPARED" {
            violation(
                6,
                "prepared_order",
                vec![order_id.clone(), order.txid.clone()],
                "an order is left PREPARED".into(),
            );
        }
    }
    let mut oversold = 0;
    for (seat, owners) in &confirmed_by_seat {
        if owners.len() > 1 {
            oversold += 1;
            let mut ids = vec![(*seat).to_owned()];
            ids.extend(owners.iter().map(|o| (*o).to_owned()));
            violation(
                1,
                "seat_sold_twice",
                ids,
                format!("seat {seat} belongs to {} confirmed orders", owners.len()),
            );
        }
    }
    for (seat, (status, order_id)) in &seats {
        let owners = confirmed_by_seat.get(seat.as_str());
        match status.as_str() {
            "SOLD" => {
                let order_id = order_id.clone().unwrap_or_default();
                if !owners.is_some_and(|o| o.contains(&order_id.as_str())) {
                    violation(
                        1,
                        "sold_without_confirmed_order",
                        vec![seat.clone(), order_id],
                        "a SOLD seat has no CONFIRMED order holding it".into(),
                    );
                }
            }
            _ => {
                if let Some(owners) = owners {
                    let mut ids = vec![seat.clone()];
                    ids.extend(owners.iter().map(|o| (*o).to_owned()));
                    violation(
                        1,
                        "confirmed_order_seat_not_sold",
                        ids,
                        format!("a CONFIRMED order's seat is {status}"),
                    );
                }
            }
        }
    }

    // Payments: every payment of this event's orders, and every capture anywhere.
    let payments_db = stores::postgres("payments", &stores.payments_db).await?;
    let order_ids: Vec<&str> = orders.keys().map(String::as_str).collect();
    let payment_rows = payments_db
        .query(
            "SELECT payment_id, order_id, state, captured_cents - refunded_cents,
                    state = 'AUTHORIZED' AND expires_at < now()
               FROM payments
              WHERE order_id = ANY($1) OR (captured_cents > refunded_cents)",
            &[&order_ids],
        )
        .await?;
    // Captures of orders outside this event: their existence is checked in one batch.
    let foreign: Vec<String> = payment_rows
        .iter()
        .filter(|row| row.get::<_, i64>(3) > 0)
        .map(|row| row.get::<_, String>(1))
        .filter(|order_id| !orders.contains_key(order_id))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let known = existing_orders(stores, &foreign).await?;
    let mut captured_by_order: HashMap<String, Vec<(String, i64)>> = HashMap::new();
    let mut captured_cents = 0;
    for row in &payment_rows {
        let (payment_id, order_id): (String, String) = (row.get(0), row.get(1));
        let net: i64 = row.get(3);
        if row.get::<_, bool>(4) {
            violation(
                6,
                "expired_authorization",
                vec![payment_id.clone(), order_id.clone()],
                "an authorization past its deadline was not voided".into(),
            );
        }
        if net > 0 {
            match orders.get(&order_id) {
                Some(order) if order.status == "ORDER_STATUS_CONFIRMED" => {}
                Some(order) => violation(
                    2,
                    "capture_without_confirmed_order",
                    vec![payment_id.clone(), order_id.clone()],
                    format!("money captured for an order that is {}", order.status),
                ),
                // Another event's order is that event's audit; no order at all is a violation.
                None => {
                    if !known.contains(&order_id) {
                        violation(
                            2,
                            "capture_without_order",
                            vec![payment_id.clone(), order_id.clone()],
                            "money captured for an order that does not exist".into(),
                        );
                    }
                }
            }
            if orders.contains_key(&order_id) {
                captured_cents += net;
                captured_by_order
                    .entry(order_id)
                    .or_default()
                    .push((payment_id, net));
            }
        }
    }
    let mut confirmed_cents = 0;
    let mut confirmed_orders = 0;
    for (order_id, order) in &orders {
        if order.status != "ORDER_STATUS_CONFIRMED" {
            continue;
        }
        confirmed_orders += 1;
        confirmed_cents += order.total_cents;
        let captures = captured_by_order
            .get(order_id)
            .map_or(&[][..], Vec::as_slice);
        match captures {
            [(_, amount)] if *amount == order.total_cents => {}
            [] => violation(
                1,
                "confirmed_without_capture",
                vec![order_id.clone()],
                "a CONFIRMED order has no captured payment".into(),
            ),
            [_] => violation(
                2,
                "capture_amount_mismatch",
                vec![order_id.clone(), captures[0].0.clone()],
                format!(
                    "captured {} for an order of {}",
                    captures[0].1, order.total_cents
                ),
            ),
            many => {
                let mut ids = vec![order_id.clone()];
                ids.extend(many.iter().map(|(p, _)| p.clone()));
                violation(
                    7,
                    "charged_twice",
                    ids,
                    format!("{} captures for one order", many.len()),
                );
            }
        }
    }
    if captured_cents != confirmed_cents {
        violation(
            2,
            "money_mismatch",
            vec![event_id.to_owned()],
            format!("captured − refunded {captured_cents} != confirmed orders {confirmed_cents}"),
        );
    }

    // Coordinator log and participants' leftovers.
    let log = stores::postgres("coordinator", &stores.coordinator_db).await?;
    let txns = log
        .query(
            "SELECT txid, state, order_id FROM transactions WHERE event_id = $1",
            &[&event_id],
        )
        .await?;
    let mut unfinished = 0;
    let mut txids = HashSet::new();
    for row in &txns {
        let (txid, state, order_id): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        txids.insert(format!("td-{txid}"));
        let order = orders.get(&order_id);
        match state.as_str() {
            "COMMITTED" if order.is_none_or(|o| o.status != "ORDER_STATUS_CONFIRMED") => {
                violation(
                    4,
                    "committed_without_confirmed_order",
                    vec![txid, order_id],
                    "the log says COMMITTED, orders disagree".into(),
                );
            }
            "ABORTED" if order.is_some_and(|o| o.status == "ORDER_STATUS_CONFIRMED") => {
                violation(
                    4,
                    "aborted_but_confirmed",
                    vec![txid, order_id],
                    "the log says ABORTED, the order is CONFIRMED".into(),
                );
            }
            "ABORTED" if order.is_some_and(|o| o.status == "ORDER_STATUS_PENDING") => {
                violation(
                    6,
                    "pending_order",
                    vec![txid, order_id],
                    "the purchase ended, its order is left PENDING".into(),
                );
            }
            "COMMITTED" | "ABORTED" => {}
            other => {
                unfinished += 1;
                violation(
                    3,
                    "outcome_unknown",
                    vec![txid, order_id],
                    format!("the purchase is still {other}"),
                );
            }
        }
    }
    for row in inventory
        .query(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()",
            &[],
        )
        .await?
    {
        let gid: String = row.get(0);
        if txids.contains(&gid) {
            violation(
                6,
                "prepared_transaction_left",
                vec![gid],
                "a prepared transaction is still in doubt".into(),
            );
        }
    }
    if unfinished == 0 {
        // Generous timeouts: the audit may run on a loaded machine, and the answer
        // matters more than its speed.
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(5)))
            .set_response_timeout(Some(std::time::Duration::from_secs(30)));
        let mut redis = redis::Client::open(stores.redis_url.as_str())?
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach Redis at {}: {e}", stores.redis_url))?;
        // SCAN, not KEYS: Redis keeps serving while the keyspace is walked.
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("lock:seat:{{{event_id}}}:*"))
                .arg("COUNT")
                .arg(10_000)
                .query_async(&mut redis)
                .await?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        keys.sort();
        keys.dedup();
        for key in keys {
            violation(
                6,
                "orphan_lease",
                vec![key],
                "a lease key outlived every purchase".into(),
            );
        }
    }

    Ok(Report {
        event_id: event_id.to_owned(),
        capacity,
        available,
        held,
        sold,
        confirmed_orders,
        captured_cents,
        confirmed_cents,
        oversold,
        unfinished,
        violations,
    })
}

/// Which of `order_ids` exist in the orders table, read in batches of 100 keys.
async fn existing_orders(stores: &Stores, order_ids: &[String]) -> anyhow::Result<HashSet<String>> {
    use aws_sdk_dynamodb::types::KeysAndAttributes;
    let client = stores::dynamodb(&stores.dynamodb_endpoint);
    let mut found = HashSet::new();
    for chunk in order_ids.chunks(100) {
        let mut keys = KeysAndAttributes::builder()
            .consistent_read(true)
            .projection_expression("order_id");
        for order_id in chunk {
            keys = keys.keys(HashMap::from([
                (
                    "pk".to_owned(),
                    AttributeValue::S(format!("ORDER#{order_id}")),
                ),
                ("sk".to_owned(), AttributeValue::S("ORDER".into())),
            ]));
        }
        let mut request = Some(HashMap::from([(
            stores.orders_table.clone(),
            keys.build()?,
        )]));
        // DynamoDB may answer part of a batch; ask again for the rest, a bounded number
        // of times.
        for _ in 0..10 {
            let Some(items) = request.take().filter(|r| !r.is_empty()) else {
                break;
            };
            let answer = client
                .batch_get_item()
                .set_request_items(Some(items))
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "reading the orders table: {}",
                        aws_sdk_dynamodb::error::DisplayErrorContext(e)
                    )
                })?;
            for item in answer
                .responses()
                .and_then(|r| r.get(&stores.orders_table))
                .into_iter()
                .flatten()
            {
                if let Some(order_id) = item.get("order_id").and_then(|v| v.as_s().ok()) {
                    found.insert(order_id.clone());
                }
            }
            request = answer.unprocessed_keys;
        }
        if request.is_some_and(|r| !r.is_empty()) {
            anyhow::bail!("the orders table kept keys unprocessed; run the audit again");
        }
    }
    Ok(found)
}

pub(crate) async fn scan_orders(
    stores: &Stores,
    event_id: &str,
) -> anyhow::Result<HashMap<String, Order>> {
    let client = stores::dynamodb(&stores.dynamodb_endpoint);
    let mut orders = HashMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(&stores.orders_table)
            .filter_expression("sk = :order AND event_id = :event")
            .expression_attribute_values(":order", AttributeValue::S("ORDER".into()))
            .expression_attribute_values(":event", AttributeValue::S(event_id.into()))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot read the orders table {} at {}: {}",
                    stores.orders_table,
                    stores.dynamodb_endpoint,
                    aws_sdk_dynamodb::error::DisplayErrorContext(e)
                )
            })?;
        for item in page.items() {
            let text = |name: &str| {
                item.get(name)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            let seats = item
                .get("seats")
                .and_then(|v| v.as_l().ok())
                .map(|l| {
                    l.iter()
                        .filter_map(|s| s.as_m().ok()?.get("seat_id")?.as_s().ok().cloned())
                        .collect()
                })
                .unwrap_or_default();
            orders.insert(
                text("order_id"),
                Order {
                    status: text("status"),
                    seats,
                    total_cents: item
                        .get("total_cents")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                    txid: text("txid"),
                },
            );
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(orders);
        }
    }
}
