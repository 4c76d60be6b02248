//! The table and what every path shares: consistent reads, claim and barrier items.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use proto::v1::Ticket;

use crate::error::{Error, Result};
use crate::group::GroupCommit;
use crate::items::{self, Item, OrderRecord, n, s};
use crate::model::NewOrder;
use crate::write::{Purpose, TxnWrite};
use tickets::TicketSigner;

pub const LIVE: &str = "LIVE";
pub const RELEASED: &str = "RELEASED";

/// Claim condition: the seat is unclaimed or its claim was released.
pub const CLAIM_FREE: &str = "attribute_not_exists(pk) OR claim_status = :released";

/// The DynamoDB table, its group committer and the ticket key.
#[derive(Clone)]
pub struct Store {
    pub client: Client,
    pub table: String,
    pub group: GroupCommit,
    pub signer: TicketSigner,
}

impl Store {
    /// A strongly consistent read of one item.
    pub async fn get(&self, key: Item) -> Result<Option<Item>> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await?
            .item)
    }

    pub async fn order(&self, order_id: &str) -> Result<Option<OrderRecord>> {
        Ok(self
            .get(items::order_key(order_id))
            .await?
            .as_ref()
            .and_then(OrderRecord::from_item))
    }

    pub async fn require_order(&self, order_id: &str) -> Result<OrderRecord> {
        self.order(order_id)
            .await?
            .ok_or_else(|| Error::OrderNotFound(order_id.to_owned()))
    }

    /// One ticket per seat of `order`.
    pub fn tickets_for(&self, order: &OrderRecord, issued_at: i64) -> Vec<Ticket> {
        order
            .seats
            .iter()
            .map(|seat| {
                self.signer.issue(
                    &order.order_id,
                    &order.event_id,
                    &seat.seat_id,
                    &order.user_id,
                    issued_at,
                )
            })
            .collect()
    }

    /// The seats of `order` whose claims it still holds.
    pub async fn live_claims(&self, order: &OrderRecord) -> Result<Vec<String>> {
        let mut keys = KeysAndAttributes::builder().consistent_read(true);
        for seat in &order.seats {
            keys = keys.keys(items::claim_key(&order.event_id, &seat.seat_id));
        }
        let response = self
            .client
            .batch_get_item()
            .request_items(&self.table, keys.build()?)
            .send()
            .await?;
        let claims = response
            .responses
            .and_then(|mut r| r.remove(&self.table))
            .unwrap_or_default();
        let mut seats: Vec<String> = claims
            .iter()
            .filter(|c| {
                items::get_s(c, "order_id").as_deref() == Some(order.order_id.as_str())
                    && items::get_s(c, "claim_status").as_deref() == Some(LIVE)
            })
            .filter_map(|c| items::get_s(c, "seat_id"))
            .collect();
        seats.sort();
        Ok(seats)
    }
}

/// A live claim item for one seat.
pub fn claim_item(
    event_id: &str,
    seat_id: &str,
    order_id: &str,
    fencing_token: Option<u64>,
) -> Item {
    let mut item = items::claim_key(event_id, seat_id);
    item.insert("event_id".into(), s(event_id));
    item.insert("seat_id".into(), s(seat_id));
    item.insert("order_id".into(), s(order_id));
    item.insert("claim_status".into(), s(LIVE));
    item.insert("updated_at".into(), s(items::now()));
    if let Some(token) = fencing_token {
        item.insert("fencing_token".into(), n(token));
    }
    item
}

/// Adds one claim per seat of `order`, each conditional on the seat being free.
pub fn add_claims(mut txn: TxnWrite, order: &NewOrder) -> Result<TxnWrite> {
    for seat in &order.seats {
        txn = txn.put(
            claim_item(&order.event_id, &seat.seat_id, &order.order_id, None),
            CLAIM_FREE,
            &[(":released", s(RELEASED))],
            Purpose::Claim(seat.seat_id.clone()),
        )?;
    }
    Ok(txn)
}

/// Adds the purchase's idempotency item, if it has a key: the key may name only this order.
pub fn add_idempotency(txn: TxnWrite, order: &NewOrder) -> Result<TxnWrite> {
    let Some(key) = &order.idempotency_key else {
        return Ok(txn);
    };
    let mut item = items::idempotency_key(key);
    item.insert("order_id".into(), s(&order.order_id));
    txn.put(
        item,
        "attribute_not_exists(pk) OR order_id = :order",
        &[(":order", s(&order.order_id))],
        Purpose::Idempotency,
    )
}

/// Adds an update releasing each claim `order` holds.
pub fn release_claims(
    mut txn: TxnWrite,
    order: &OrderRecord,
    seats: &[String],
    fencing_token: Option<u64>,
) -> Result<TxnWrite> {
    for seat in seats {
        let (update, condition) = match fencing_token {
            None => (
                "SET claim_status = :released, updated_at = :now",
                "order_id = :order AND claim_status = :live",
            ),
            Some(_) => (
                "SET claim_status = :released, updated_at = :now, fencing_token = :token",
                "order_id = :order AND claim_status = :live \
                 AND (attribute_not_exists(fencing_token) OR fencing_token <= :token)",
            ),
        };
        let mut values = vec![
            (":released", s(RELEASED)),
            (":live", s(LIVE)),
            (":order", s(&order.order_id)),
            (":now", s(items::now())),
        ];
        if let Some(token) = fencing_token {
            values.push((":token", n(token)));
        }
        txn = txn.update(
            items::claim_key(&order.event_id, seat),
            update,
            condition,
            &[],
            &values,
            Purpose::Claim(seat.clone()),
        )?;
    }
    Ok(txn)
}

/// The refusal a failed create/prepare/place earned: a taken seat names its order.
pub fn refusal(order: &NewOrder, failures: &[crate::write::Failed]) -> Error {
    let claims = crate::write::failed_claims(failures);
    if !claims.is_empty() {
        return Error::SeatsTaken {
            seats: claims.iter().map(|(seat, _)| (*seat).to_owned()).collect(),
            order_id: claims
                .iter()
                .find_map(|(_, old)| old.and_then(|o| items::get_s(o, "order_id"))),
        };
    }
    if let Some(failure) = crate::write::failed(failures, &Purpose::Idempotency) {
        return Error::IdempotencyKeyReused {
            key: order.idempotency_key.clone().unwrap_or_default(),
            order_id: failure
                .old
                .as_ref()
                .and_then(|o| items::get_s(o, "order_id"))
                .unwrap_or_default(),
        };
    }
    Error::OrderExists(order.order_id.clone())
}

/// An attribute-value list of the order's tickets.
pub fn tickets_value(tickets: &[Ticket]) -> AttributeValue {
    items::tickets_value(tickets)
}
