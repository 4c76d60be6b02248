//! Saga steps: CreateOrder ↔ CancelOrder, then ConfirmOrder after the pivot. The barrier
//! lives in the table (`SAGA#<id>` items) and is written in the same TransactWriteItems
//! as the step's effect, with the same rules as inventory's: duplicate = replay, a
//! compensation without its step = recorded no-op, a step after its compensation =
//! refused.

use proto::v1::{BarrierOutcome, OrderStatus, Protocol};

use crate::error::{Error, Result};
use crate::items::{self, OrderRecord, s};
use crate::model::NewOrder;
use crate::store::{self, Store};
use crate::write::{Purpose, TxnWrite, WriteError, failed};

const CREATE: &str = "create_order";
const CONFIRM: &str = "confirm_order";
const NOT_EXISTS: &str = "attribute_not_exists(pk)";

fn barrier_item(saga_id: &str, step: &str, operation: &str, outcome: &str) -> items::Item {
    let mut item = items::barrier_key(saga_id, step, operation);
    item.insert("barrier_outcome".into(), s(outcome));
    item.insert("created_at".into(), s(items::now()));
    item
}

/// Refuses a step that its compensation already ran for.
async fn ensure_not_compensated(store: &Store, saga_id: &str, step: &'static str) -> Result<()> {
    let action = store
        .get(items::barrier_key(saga_id, step, "action"))
        .await?;
    let compensation = store
        .get(items::barrier_key(saga_id, step, "compensation"))
        .await?;
    let null = action
        .as_ref()
        .and_then(|a| items::get_s(a, "barrier_outcome"))
        .is_some_and(|o| o == "null_compensation");
    if null || compensation.is_some() {
        return Err(Error::StepCompensated {
            saga_id: saga_id.to_owned(),
            step,
        });
    }
    Ok(())
}

pub async fn create_order(
    store: &Store,
    saga_id: &str,
    order: &NewOrder,
) -> Result<(OrderRecord, BarrierOutcome)> {
    let now = items::now();
    let record = OrderRecord {
        order_id: order.order_id.clone(),
        user_id: order.user_id.clone(),
        event_id: order.event_id.clone(),
        status: OrderStatus::Pending,
        seats: order.seats.clone(),
        currency: order.currency.clone(),
        protocol: Protocol::Saga,
        txid: saga_id.to_owned(),
        payment_id: None,
        idempotency_key: order.idempotency_key.clone(),
        tickets: Vec::new(),
        fencing_token: 0,
        created_at: now.clone(),
        updated_at: now,
    };
    let table = &store.table;
    let txn = TxnWrite::new(table)
        .put(
            barrier_item(saga_id, CREATE, "action", "applied"),
            NOT_EXISTS,
            &[],
            Purpose::Barrier,
        )?
        .put(record.to_item(), NOT_EXISTS, &[], Purpose::Order)?;
    let txn = store::add_idempotency(store::add_claims(txn, order)?, order)?;
    match txn.send(&store.group).await {
        Ok(()) => {
            server_kit::crash_point!("orders::after_write");
            Ok((record, BarrierOutcome::Applied))
        }
        Err(WriteError::Other(error)) => Err(error),
        Err(WriteError::Cancelled(failures)) => {
            if failed(&failures, &Purpose::Barrier).is_some() {
                ensure_not_compensated(store, saga_id, CREATE).await?;
                let existing = store.require_order(&order.order_id).await?;
                return Ok((existing, BarrierOutcome::Duplicate));
            }
            Err(store::refusal(order, &failures))
        }
    }
}

pub async fn cancel_order(
    store: &Store,
    saga_id: &str,
    order_id: &str,
) -> Result<(Option<OrderRecord>, BarrierOutcome)> {
    let table = &store.table;
    // Claim the step's barrier row too: if that works, CreateOrder never ran here.
    let probe = TxnWrite::new(table)
        .put(
            barrier_item(saga_id, CREATE, "compensation", "null_compensation"),
            NOT_EXISTS,
            &[],
            Purpose::Barrier,
        )?
        .put(
            barrier_item(saga_id, CREATE, "action", "null_compensation"),
            NOT_EXISTS,
            &[],
            Purpose::StepMarker,
        )?;
    match probe.send(&store.group).await {
        Ok(()) => return Ok((None, BarrierOutcome::NullCompensation)),
        Err(WriteError::Other(error)) => return Err(error),
        Err(WriteError::Cancelled(failures)) => {
            if failed(&failures, &Purpose::Barrier).is_some() {
                return Ok((store.order(order_id).await?, BarrierOutcome::Duplicate));
            }
        }
    }

    let order = store.require_order(order_id).await?;
    let now = items::now();
    let live = store.live_claims(&order).await?;
    let txn = TxnWrite::new(table)
        .put(
            barrier_item(saga_id, CREATE, "compensation", "applied"),
            NOT_EXISTS,
            &[],
            Purpose::Barrier,
        )?
        .update(
            items::order_key(order_id),
            "SET #s = :cancelled, updated_at = :now",
            "#s = :pending",
            &[("#s", "status")],
            &[
                (":cancelled", s(OrderStatus::Cancelled.as_str_name())),
                (":pending", s(OrderStatus::Pending.as_str_name())),
                (":now", s(&now)),
            ],
            Purpose::Order,
        )?;
    let txn = store::release_claims(txn, &order, &live, None)?;
    match txn.send(&store.group).await {
        Ok(()) => Ok((
            Some(OrderRecord {
                status: OrderStatus::Cancelled,
                updated_at: now,
                ..order
            }),
            BarrierOutcome::Applied,
        )),
        Err(WriteError::Other(error)) => Err(error),
        Err(WriteError::Cancelled(failures)) => {
            if failed(&failures, &Purpose::Barrier).is_some() {
                return Ok((store.order(order_id).await?, BarrierOutcome::Duplicate));
            }
            if failed(&failures, &Purpose::Order).is_some() {
                return Err(Error::InvalidState {
                    order_id: order_id.to_owned(),
                    status: order.status.as_str_name().to_owned(),
                    action: "cancel",
                });
            }
            Err(Error::Conflict)
        }
    }
}

pub async fn confirm_order(
    store: &Store,
    saga_id: &str,
    order_id: &str,
    payment_id: &str,
) -> Result<(OrderRecord, BarrierOutcome)> {
    let order = store.require_order(order_id).await?;
    let now = chrono::Utc::now();
    let tickets = store.tickets_for(&order, now.timestamp());
    let now = items::timestamp_string(now);
    let table = &store.table;
    let txn = TxnWrite::new(table)
        .put(
            barrier_item(saga_id, CONFIRM, "action", "applied"),
            NOT_EXISTS,
            &[],
            Purpose::Barrier,
        )?
        .update(
            items::order_key(order_id),
            "SET #s = :confirmed, tickets = :tickets, payment_id = :payment, updated_at = :now",
            "#s = :pending",
            &[("#s", "status")],
            &[
                (":confirmed", s(OrderStatus::Confirmed.as_str_name())),
                (":pending", s(OrderStatus::Pending.as_str_name())),
                (":tickets", store::tickets_value(&tickets)),
                (":payment", s(payment_id)),
                (":now", s(&now)),
            ],
            Purpose::Order,
        )?;
    match txn.send(&store.group).await {
        Ok(()) => Ok((
            OrderRecord {
                status: OrderStatus::Confirmed,
                tickets,
                payment_id: Some(payment_id.to_owned()),
                updated_at: now,
                ..order
            },
            BarrierOutcome::Applied,
        )),
        Err(WriteError::Other(error)) => Err(error),
        Err(WriteError::Cancelled(failures)) => {
            if failed(&failures, &Purpose::Barrier).is_some() {
                ensure_not_compensated(store, saga_id, CONFIRM).await?;
                return Ok((
                    store.require_order(order_id).await?,
                    BarrierOutcome::Duplicate,
                ));
            }
            Err(Error::InvalidState {
                order_id: order_id.to_owned(),
                status: order.status.as_str_name().to_owned(),
                action: "confirm",
            })
        }
    }
}
