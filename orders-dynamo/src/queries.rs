//! Reads: GetOrder (by id or idempotency key), ListOrders (the user index, newest
//! first, with a page token) and VerifyTicket.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proto::error::FieldError;
use proto::v1::{OrderStatus, VerifyTicketResponse};

use crate::error::{Error, Result};
use crate::items::{self, OrderRecord, s};
use crate::store::Store;
use crate::table::USER_INDEX;

pub async fn order_by_idempotency_key(store: &Store, key: &str) -> Result<OrderRecord> {
    let order_id = store
        .get(items::idempotency_key(key))
        .await?
        .and_then(|item| items::get_s(&item, "order_id"))
        .ok_or_else(|| Error::OrderNotFound(format!("with idempotency key {key}")))?;
    store.require_order(&order_id).await
}

pub async fn list_orders(
    store: &Store,
    user_id: &str,
    page_size: i32,
    page_token: &str,
) -> Result<(Vec<OrderRecord>, String)> {
    let start = decode_token(page_token)?;
    let page = store
        .client
        .query()
        .table_name(&store.table)
        .index_name(USER_INDEX)
        .key_condition_expression("gsi1pk = :user")
        .expression_attribute_values(":user", s(format!("USER#{user_id}")))
        .scan_index_forward(false)
        .limit(page_size)
        .set_exclusive_start_key(start)
        .send()
        .await?;
    let orders = page
        .items()
        .iter()
        .filter_map(OrderRecord::from_item)
        .collect();
    let next = page
        .last_evaluated_key
        .map(|key| encode_token(&key))
        .unwrap_or_default();
    Ok((orders, next))
}

pub async fn verify_ticket(store: &Store, token: &str) -> Result<VerifyTicketResponse> {
    let claims = match store.signer.verify(token) {
        Ok(claims) => claims,
        Err(invalid) => {
            return Ok(VerifyTicketResponse {
                valid: false,
                ticket: None,
                reason: invalid.reason().to_owned(),
            });
        }
    };
    let order = store.order(&claims.order_id).await?;
    let ticket = order.as_ref().and_then(|o| {
        o.tickets
            .iter()
            .find(|t| t.ticket_id == claims.ticket_id)
            .cloned()
    });
    let reason = match &order {
        None => "order_not_found",
        Some(o) if o.status != OrderStatus::Confirmed => "order_cancelled",
        Some(_) if ticket.is_none() => "ticket_not_issued",
        Some(_) => "",
    };
    Ok(VerifyTicketResponse {
        valid: reason.is_empty(),
        ticket,
        reason: reason.to_owned(),
    })
}

fn encode_token(key: &HashMap<String, AttributeValue>) -> String {
    let mut parts: Vec<String> = key
        .iter()
        .filter_map(|(name, value)| value.as_s().ok().map(|v| format!("{name}={v}")))
        .collect();
    parts.sort();
    URL_SAFE_NO_PAD.encode(parts.join("\n"))
}

fn decode_token(token: &str) -> Result<Option<HashMap<String, AttributeValue>>> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || FieldError::new("page_token", "is not a token this service issued");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let key = text
        .lines()
        .map(|line| {
            line.split_once('=')
                .map(|(k, v)| (k.to_owned(), s(v)))
                .ok_or_else(invalid)
        })
        .collect::<Result<HashMap<_, _>, FieldError>>()?;
    Ok(Some(key))
}
