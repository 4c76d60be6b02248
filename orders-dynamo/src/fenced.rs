//! Lease-protocol orders: created CONFIRMED with tickets in one TransactWriteItems whose
//! claims carry the fencing token, refused when a seat's claim has seen a newer token.

use proto::v1::{OrderStatus, Protocol};

use crate::error::{Error, Result};
use crate::items::{self, OrderRecord, n, s};
use crate::model::NewOrder;
use crate::store::{self, RELEASED, Store};
use crate::write::{Failed, Purpose, TxnWrite, WriteError, failed_claims};

/// Claim condition under fencing: free (or already ours) and no newer token seen.
const FENCED_CLAIM: &str = "(attribute_not_exists(pk) OR claim_status = :released OR order_id = :order) \
     AND (attribute_not_exists(fencing_token) OR fencing_token <= :token)";
/// An unfenced write (token 0, the lab's negative control, `--unsafe-no-fencing`) trusts
/// the lease alone, as a store that relies on the lock would: the claim is written
/// whatever it held. A paused lease holder's late write then overwrites a newer holder's
/// claim — the double sale fencing exists to prevent.
const UNFENCED_CLAIM: &str = "";

pub async fn place(
    store: &Store,
    txid: &str,
    order: &NewOrder,
    payment_id: &str,
    fencing_token: u64,
) -> Result<OrderRecord> {
    if let Some(existing) = store.order(&order.order_id).await? {
        return retry_of(existing, txid);
    }
    let now = chrono::Utc::now();
    let mut record = OrderRecord {
        order_id: order.order_id.clone(),
        user_id: order.user_id.clone(),
        event_id: order.event_id.clone(),
        status: OrderStatus::Confirmed,
        seats: order.seats.clone(),
        currency: order.currency.clone(),
        protocol: Protocol::Lease,
        txid: txid.to_owned(),
        payment_id: (!payment_id.is_empty()).then(|| payment_id.to_owned()),
        idempotency_key: order.idempotency_key.clone(),
        tickets: Vec::new(),
        fencing_token,
        created_at: items::timestamp_string(now),
        updated_at: items::timestamp_string(now),
    };
    record.tickets = store.tickets_for(&record, now.timestamp());

    let table = &store.table;
    let mut txn = TxnWrite::new(table).put(
        record.to_item(),
        "attribute_not_exists(pk)",
        &[],
        Purpose::Order,
    )?;
    let fenced = fencing_token > 0;
    for seat in &order.seats {
        let values = if fenced {
            vec![
                (":released", s(RELEASED)),
                (":order", s(&order.order_id)),
                (":token", n(fencing_token)),
            ]
        } else {
            Vec::new()
        };
        txn = txn.put(
            store::claim_item(
                &order.event_id,
                &seat.seat_id,
                &order.order_id,
                fenced.then_some(fencing_token),
            ),
            if fenced { FENCED_CLAIM } else { UNFENCED_CLAIM },
            &values,
            Purpose::Claim(seat.seat_id.clone()),
        )?;
    }
    let txn = store::add_idempotency(txn, order)?;
    match txn.send(&store.group).await {
        Ok(()) => {
            server_kit::crash_point!("orders::after_write");
            Ok(record)
        }
        Err(WriteError::Other(error)) => Err(error),
        Err(WriteError::Cancelled(failures)) => {
            if let Some(stale) = stale(&failures, fencing_token) {
                return Err(stale);
            }
            if crate::write::failed(&failures, &Purpose::Order).is_some() {
                return retry_of(store.require_order(&order.order_id).await?, txid);
            }
            Err(store::refusal(order, &failures))
        }
    }
}

pub async fn cancel(
    store: &Store,
    txid: &str,
    order_id: &str,
    fencing_token: u64,
) -> Result<OrderRecord> {
    let order = store.require_order(order_id).await?;
    if order.status == OrderStatus::Cancelled {
        return Ok(order);
    }
    let now = items::now();
    let table = &store.table;
    let txn = TxnWrite::new(table).update(
        items::order_key(order_id),
        "SET #s = :cancelled, updated_at = :now",
        "#s = :confirmed",
        &[("#s", "status")],
        &[
            (":cancelled", s(OrderStatus::Cancelled.as_str_name())),
            (":confirmed", s(OrderStatus::Confirmed.as_str_name())),
            (":now", s(&now)),
        ],
        Purpose::Order,
    )?;
    let live = store.live_claims(&order).await?;
    let token = (fencing_token > 0).then_some(fencing_token);
    let txn = store::release_claims(txn, &order, &live, token)?;
    match txn.send(&store.group).await {
        Ok(()) => {
            tracing::info!(txid, order_id, "fenced order cancelled");
            Ok(OrderRecord {
                status: OrderStatus::Cancelled,
                updated_at: now,
                ..order
            })
        }
        Err(WriteError::Other(error)) => Err(error),
        Err(WriteError::Cancelled(failures)) => Err(stale(&failures, fencing_token).unwrap_or(
            Error::InvalidState {
                order_id: order_id.to_owned(),
                status: order.status.as_str_name().to_owned(),
                action: "cancel",
            },
        )),
    }
}

/// A stored order answers a retried PlaceOrderFenced only if the same txid wrote it.
fn retry_of(existing: OrderRecord, txid: &str) -> Result<OrderRecord> {
    if existing.txid == txid && existing.status == OrderStatus::Confirmed {
        Ok(existing)
    } else {
        Err(Error::OrderExists(existing.order_id))
    }
}

/// STALE_FENCING_TOKEN naming the seats whose claims saw a newer token, if any did.
fn stale(failures: &[Failed], token: u64) -> Option<Error> {
    let newer: Vec<(String, u64)> = failed_claims(failures)
        .into_iter()
        .filter_map(|(seat, old)| {
            let seen = old
                .and_then(|o| items::get_n(o, "fencing_token"))
                .and_then(|t| u64::try_from(t).ok())?;
            (seen > token).then(|| (seat.to_owned(), seen))
        })
        .collect();
    let seen = newer.iter().map(|(_, t)| *t).max()?;
    Some(Error::StaleFencingToken {
        seats: newer.into_iter().map(|(s, _)| s).collect(),
        token,
        seen,
    })
}
