//! The single-table layout: item keys and the order item's attributes.
//!
//! | item | pk | sk |
//! | --- | --- | --- |
//! | order | `ORDER#<order_id>` | `ORDER` |
//! | seat claim | `CLAIM#<event_id>#<seat_id>` | `CLAIM` |
//! | 2PC participant | `TXN#<txid>` | `PARTICIPANT` |
//! | purchase idempotency key | `IDEM#<key>` | `IDEM` |
//! | saga barrier | `SAGA#<saga_id>` | `<step>#<action or compensation>` |
//! | 2PC branch in doubt | `INDOUBT#<shard>` | `<txid>` |
//! | what this table has been migrated to | `META` | `<migration>` |
//!
//! Orders also carry `gsi1pk = USER#<user_id>`, `gsi1sk = <created_at>#<order_id>` for the
//! user index.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};
use proto::v1::{Order, OrderStatus, PricedSeat, Protocol, Ticket};
use server_kit::convert;

pub type Item = HashMap<String, AttributeValue>;

pub fn key(pk: String, sk: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

pub fn order_key(order_id: &str) -> Item {
    key(format!("ORDER#{order_id}"), "ORDER")
}

pub fn claim_key(event_id: &str, seat_id: &str) -> Item {
    key(format!("CLAIM#{event_id}#{seat_id}"), "CLAIM")
}

pub fn participant_key(txid: &str) -> Item {
    key(format!("TXN#{txid}"), "PARTICIPANT")
}

/// Shards of the in-doubt index: a prepared branch's index item lives in one of them, so
/// listing the branches in doubt reads a few small partitions, never the table.
pub const IN_DOUBT_SHARDS: u32 = 8;

pub fn in_doubt_key(txid: &str) -> Item {
    let shard = txid
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    key(format!("INDOUBT#{}", shard % IN_DOUBT_SHARDS), txid)
}

pub fn meta_key(migration: &str) -> Item {
    key("META".to_owned(), migration)
}

pub fn idempotency_key(idempotency_key: &str) -> Item {
    key(format!("IDEM#{idempotency_key}"), "IDEM")
}

pub fn barrier_key(saga_id: &str, step: &str, operation: &str) -> Item {
    key(format!("SAGA#{saga_id}"), &format!("{step}#{operation}"))
}

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn get_s(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

pub fn get_n(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

pub fn now() -> String {
    timestamp_string(Utc::now())
}

pub fn timestamp_string(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_time(value: Option<String>) -> Option<prost_types::Timestamp> {
    value
        .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
        .map(|t| convert::timestamp(t.with_timezone(&Utc)))
}

/// An order as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRecord {
    pub order_id: String,
    pub user_id: String,
    pub event_id: String,
    pub status: OrderStatus,
    pub seats: Vec<PricedSeat>,
    pub currency: String,
    pub protocol: Protocol,
    pub txid: String,
    pub payment_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub tickets: Vec<Ticket>,
    pub fencing_token: u64,
    pub created_at: String,
    pub updated_at: String,
}

impl OrderRecord {
    pub fn total_cents(&self) -> i64 {
        self.seats.iter().map(|s| s.price_cents).sum()
    }

    pub fn seat_ids(&self) -> Vec<String> {
        self.seats.iter().map(|s| s.seat_id.clone()).collect()
    }

    pub fn to_item(&self) -> Item {
        let mut item = order_key(&self.order_id);
        item.insert("order_id".into(), s(&self.order_id));
        item.insert("user_id".into(), s(&self.user_id));
        item.insert("event_id".into(), s(&self.event_id));
        item.insert("status".into(), s(self.status.as_str_name()));
        item.insert(
            "seats".into(),
            AttributeValue::L(self.seats.iter().map(seat_value).collect()),
        );
        item.insert("total_cents".into(), n(self.total_cents()));
        item.insert("currency".into(), s(&self.currency));
        item.insert("protocol".into(), s(self.protocol.as_str_name()));
        item.insert("txid".into(), s(&self.txid));
        if let Some(payment_id) = &self.payment_id {
            item.insert("payment_id".into(), s(payment_id));
        }
        if let Some(key) = &self.idempotency_key {
            item.insert("idempotency_key".into(), s(key));
        }
        item.insert("tickets".into(), tickets_value(&self.tickets));
        item.insert("fencing_token".into(), n(self.fencing_token));
        item.insert("created_at".into(), s(&self.created_at));
        item.insert("updated_at".into(), s(&self.updated_at));
        item.insert("gsi1pk".into(), s(format!("USER#{}", self.user_id)));
        item.insert(
            "gsi1sk".into(),
            s(format!("{}#{}", self.created_at, self.order_id)),
        );
        item
    }

    pub fn from_item(item: &Item) -> Option<Self> {
        let seats = item
            .get("seats")?
            .as_l()
            .ok()?
            .iter()
            .filter_map(|v| {
                let m = v.as_m().ok()?;
                Some(PricedSeat {
                    seat_id: get_s(m, "seat_id")?,
                    price_cents: get_n(m, "price_cents")?,
                })
            })
            .collect();
        let tickets = item
            .get("tickets")
            .and_then(|v| v.as_l().ok())
            .map(|list| list.iter().filter_map(ticket_from_value).collect())
            .unwrap_or_default();
        Some(Self {
            order_id: get_s(item, "order_id")?,
            user_id: get_s(item, "user_id")?,
            event_id: get_s(item, "event_id")?,
            status: OrderStatus::from_str_name(&get_s(item, "status")?)?,
            seats,
            currency: get_s(item, "currency")?,
            protocol: Protocol::from_str_name(&get_s(item, "protocol")?)
                .unwrap_or(Protocol::Unspecified),
            txid: get_s(item, "txid").unwrap_or_default(),
            payment_id: get_s(item, "payment_id"),
            idempotency_key: get_s(item, "idempotency_key"),
            tickets,
            fencing_token: get_n(item, "fencing_token")
                .and_then(|t| u64::try_from(t).ok())
                .unwrap_or(0),
            created_at: get_s(item, "created_at").unwrap_or_default(),
            updated_at: get_s(item, "updated_at").unwrap_or_default(),
        })
    }

    pub fn to_proto(&self) -> Order {
        Order {
            order_id: self.order_id.clone(),
            user_id: self.user_id.clone(),
            event_id: self.event_id.clone(),
            status: self.status.into(),
            seats: self.seats.clone(),
            total_cents: self.total_cents(),
            currency: self.currency.clone(),
            protocol: self.protocol.into(),
            txid: self.txid.clone(),
            payment_id: self.payment_id.clone().unwrap_or_default(),
            idempotency_key: self.idempotency_key.clone().unwrap_or_default(),
            tickets: self.tickets.clone(),
            fencing_token: self.fencing_token,
            created_at: parse_time(Some(self.created_at.clone())),
            updated_at: parse_time(Some(self.updated_at.clone())),
        }
    }
}

fn seat_value(seat: &PricedSeat) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("seat_id".to_owned(), s(&seat.seat_id)),
        ("price_cents".to_owned(), n(seat.price_cents)),
    ]))
}

pub fn tickets_value(tickets: &[Ticket]) -> AttributeValue {
    AttributeValue::L(
        tickets
            .iter()
            .map(|t| {
                AttributeValue::M(HashMap::from([
                    ("ticket_id".to_owned(), s(&t.ticket_id)),
                    ("seat_id".to_owned(), s(&t.seat_id)),
                    ("token".to_owned(), s(&t.token)),
                    (
                        "issued_at".to_owned(),
                        n(t.issued_at.as_ref().map_or(0, |ts| ts.seconds)),
                    ),
                ]))
            })
            .collect(),
    )
}

fn ticket_from_value(value: &AttributeValue) -> Option<Ticket> {
    let m = value.as_m().ok()?;
    let token = get_s(m, "token")?;
    let claims = tickets::decode_unverified(&token)?;
    Some(Ticket {
        ticket_id: get_s(m, "ticket_id")?,
        event_id: claims.event_id,
        seat_id: get_s(m, "seat_id")?,
        order_id: claims.order_id,
        user_id: claims.user_id,
        token,
        issued_at: Some(prost_types::Timestamp {
            seconds: get_n(m, "issued_at")?,
            nanos: 0,
        }),
    })
}
