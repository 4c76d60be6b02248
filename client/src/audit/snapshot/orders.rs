//! The orders table as the audit reads it: every order of the event (a scan, or by key
//! for the orders the logs name), and the branches orders holds in doubt.
use super::Order;
use crate::stores::{self, Stores};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::{BTreeMap, HashMap};

pub(super) fn order_from_item(item: &HashMap<String, AttributeValue>) -> (String, Order) {
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let seat_ids = |name: &str| -> Vec<String> {
        item.get(name)
            .and_then(|v| v.as_l().ok())
            .map(|l| {
                l.iter()
                    .filter_map(|s| s.as_m().ok()?.get("seat_id")?.as_s().ok().cloned())
                    .collect()
            })
            .unwrap_or_default()
    };
    (
        text("order_id"),
        Order {
            status: text("status"),
            seats: seat_ids("seats"),
            total_cents: item
                .get("total_cents")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            txid: text("txid"),
            idempotency_key: item
                .get("idempotency_key")
                .and_then(|v| v.as_s().ok())
                .cloned(),
            ticket_seats: seat_ids("tickets"),
        },
    )
}

pub(super) fn dynamodb_error(
    stores: &Stores,
    e: impl std::error::Error + 'static,
) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot read the orders table {} at {}: {}",
        stores.orders_table,
        stores.dynamodb_endpoint,
        aws_sdk_dynamodb::error::DisplayErrorContext(e)
    )
}

/// Every order of `event_id` (a consistent scan of the orders table).
pub async fn scan_orders(
    stores: &Stores,
    event_id: &str,
) -> anyhow::Result<BTreeMap<String, Order>> {
    let client = stores::dynamodb(&stores.dynamodb_endpoint);
    let mut orders = BTreeMap::new();
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
            .map_err(|e| dynamodb_error(stores, e))?;
        orders.extend(page.items().iter().map(order_from_item));
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(orders);
        }
    }
}

/// The orders among `order_ids` that exist, whatever their event, read in batches of
/// 100 keys.
pub async fn get_orders(
    stores: &Stores,
    order_ids: &[String],
) -> anyhow::Result<BTreeMap<String, Order>> {
    use aws_sdk_dynamodb::types::KeysAndAttributes;
    let client = stores::dynamodb(&stores.dynamodb_endpoint);
    let mut found = BTreeMap::new();
    for chunk in order_ids.chunks(100) {
        let mut keys = KeysAndAttributes::builder().consistent_read(true);
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
                .map_err(|e| dynamodb_error(stores, e))?;
            found.extend(
                answer
                    .responses()
                    .and_then(|r| r.get(&stores.orders_table))
                    .into_iter()
                    .flatten()
                    .map(order_from_item),
            );
            request = answer.unprocessed_keys;
        }
        if request.is_some_and(|r| !r.is_empty()) {
            anyhow::bail!("the orders table kept keys unprocessed; run the audit again");
        }
    }
    Ok(found)
}

/// The order each purchase key wrote, for the keys that wrote one: the orders table's
/// idempotency items name them (read in batches of 100 keys).
pub async fn orders_by_keys(
    stores: &Stores,
    keys: &[String],
) -> anyhow::Result<HashMap<String, String>> {
    use aws_sdk_dynamodb::types::KeysAndAttributes;
    let client = stores::dynamodb(&stores.dynamodb_endpoint);
    let mut found = HashMap::new();
    for chunk in keys.chunks(100) {
        let mut batch = KeysAndAttributes::builder().consistent_read(true);
        for key in chunk {
            batch = batch.keys(HashMap::from([
                ("pk".to_owned(), AttributeValue::S(format!("IDEM#{key}"))),
                ("sk".to_owned(), AttributeValue::S("IDEM".into())),
            ]));
        }
        let mut request = Some(HashMap::from([(
            stores.orders_table.clone(),
            batch.build()?,
        )]));
        for _ in 0..10 {
            let Some(items) = request.take().filter(|r| !r.is_empty()) else {
                break;
            };
            let answer = client
                .batch_get_item()
                .set_request_items(Some(items))
                .send()
                .await
                .map_err(|e| dynamodb_error(stores, e))?;
            for item in answer
                .responses()
                .and_then(|r| r.get(&stores.orders_table))
                .into_iter()
                .flatten()
            {
                let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
                if let (Some(pk), Some(order_id)) = (text("pk"), text("order_id")) {
                    found.insert(pk.trim_start_matches("IDEM#").to_owned(), order_id);
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

/// The txids of the 2PC branches orders-dynamo lists as in doubt (its sharded index).
pub(super) async fn orders_in_doubt(stores: &Stores) -> anyhow::Result<Vec<String>> {
    let client = stores::dynamodb(&stores.dynamodb_endpoint);
    let mut txids = Vec::new();
    for shard in 0..orders_dynamo::items::IN_DOUBT_SHARDS {
        let mut start = None;
        loop {
            let page = client
                .query()
                .table_name(&stores.orders_table)
                .key_condition_expression("pk = :shard")
                .expression_attribute_values(
                    ":shard",
                    AttributeValue::S(format!("INDOUBT#{shard}")),
                )
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| dynamodb_error(stores, e))?;
            txids.extend(
                page.items()
                    .iter()
                    .filter_map(|item| item.get("sk")?.as_s().ok().cloned()),
            );
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
    }
    Ok(txids)
}
