//! Two-phase commit on DynamoDB. Prepare is one TransactWriteItems: the participant item
//! (`TXN#<txid>`, PREPARED), the order as PREPARED, one claim per seat and the
//! idempotency item; a retried Prepare whose first attempt was written finds its own
//! participant item and answers with the order. Commit and Abort are conditional on the
//! participant item's state; an Abort that finds no participant item writes an ABORTED
//! tombstone, and the next Prepare of that txid fails its condition.
//!
//! A prepared branch also has an item in the in-doubt index (`INDOUBT#<shard>`), written
//! by Prepare and deleted by the Commit or Abort that ends the branch, in the same
//! transactions: listing the branches in doubt queries the index's few partitions with
//! consistent reads instead of scanning a table that grows with every sale (a scan that
//! held DynamoDB Local's one writer for hundreds of milliseconds every recovery round).

use aws_sdk_dynamodb::types::AttributeValue;
use proto::v1::{InDoubtTransaction, OrderStatus, ParticipantTxnState, Protocol};

use crate::error::{Error, Result};
use crate::items::{self, OrderRecord, s};
use crate::model::NewOrder;
use crate::store::{self, Store};
use crate::write::{Purpose, TxnWrite, WriteError, failed};

const PREPARED: &str = "PREPARED";
const COMMITTED: &str = "COMMITTED";
const ABORTED: &str = "ABORTED";

/// The participant item of `txid`: its state, its order (absent on a tombstone) and the
/// coordinator log that made it (absent on items from before log ids).
fn participant_item(
    txid: &str,
    state: &str,
    order_id: Option<&str>,
    log_id: Option<&str>,
) -> items::Item {
    let mut item = items::participant_key(txid);
    item.insert("txid".into(), s(txid));
    item.insert("txn_state".into(), s(state));
    item.insert("updated_at".into(), s(items::now()));
    if let Some(order_id) = order_id {
        item.insert("order_id".into(), s(order_id));
    }
    if let Some(log_id) = log_id {
        item.insert("log_id".into(), s(log_id));
    }
    item
}

/// The participant item, decoded.
struct Branch {
    state: String,
    order_id: Option<String>,
    log_id: Option<String>,
}

impl Branch {
    /// Refuses a caller of another log than the branch's (either may predate log ids).
    fn ensure_log(&self, txid: &str, caller: Option<&str>) -> Result<()> {
        match (&self.log_id, caller) {
            (Some(owner), Some(caller)) if owner != caller => Err(Error::BranchOfAnotherLog {
                txid: txid.to_owned(),
                log_id: owner.clone(),
            }),
            _ => Ok(()),
        }
    }
}

/// The participant item, if it exists.
async fn participant(store: &Store, txid: &str) -> Result<Option<Branch>> {
    Ok(store
        .get(items::participant_key(txid))
        .await?
        .map(|item| Branch {
            state: items::get_s(&item, "txn_state").unwrap_or_default(),
            order_id: items::get_s(&item, "order_id"),
            log_id: items::get_s(&item, "log_id"),
        }))
}

pub async fn prepare(
    store: &Store,
    txid: &str,
    order: &NewOrder,
    payment_id: Option<String>,
    log_id: Option<&str>,
) -> Result<OrderRecord> {
    let now = items::now();
    let record = OrderRecord {
        order_id: order.order_id.clone(),
        user_id: order.user_id.clone(),
        event_id: order.event_id.clone(),
        status: OrderStatus::Prepared,
        seats: order.seats.clone(),
        currency: order.currency.clone(),
        protocol: Protocol::TwoPhaseCommit,
        txid: txid.to_owned(),
        payment_id,
        idempotency_key: order.idempotency_key.clone(),
        tickets: Vec::new(),
        fencing_token: 0,
        created_at: now.clone(),
        updated_at: now,
    };
    let table = &store.table;
    let txn = TxnWrite::new(table)
        .put(
            participant_item(txid, PREPARED, Some(&order.order_id), log_id),
            "attribute_not_exists(pk)",
            &[],
            Purpose::Participant,
        )?
        .put(
            record.to_item(),
            "attribute_not_exists(pk)",
            &[],
            Purpose::Order,
        )?
        .put(
            in_doubt_item(txid, &order.order_id, log_id),
            "",
            &[],
            Purpose::InDoubt,
        )?;
    let txn = store::add_idempotency(store::add_claims(txn, order)?, order)?;
    match txn.send(&store.group).await {
        Ok(()) => {
            server_kit::crash_point!("orders::after_write");
            Ok(record)
        }
        Err(WriteError::Cancelled(failures))
            if failed(&failures, &Purpose::Participant).is_none() =>
        {
            Err(store::refusal(order, &failures))
        }
        // The txid has a participant item already (or a retry differed in timestamps).
        Err(WriteError::Cancelled(_)) | Err(WriteError::Other(Error::IdempotencyMismatch)) => {
            match participant(store, txid).await? {
                Some(branch) if branch.state == ABORTED => Err(Error::TxnAborted(txid.to_owned())),
                Some(Branch {
                    order_id: Some(order_id),
                    ..
                }) if order_id == order.order_id => store.require_order(&order_id).await,
                _ => Err(Error::IdempotencyMismatch),
            }
        }
        Err(WriteError::Other(error)) => Err(error),
    }
}

pub async fn commit(
    store: &Store,
    txid: &str,
    payment_id: &str,
    log_id: Option<&str>,
) -> Result<(ParticipantTxnState, bool, OrderRecord)> {
    let branch = participant(store, txid)
        .await?
        .ok_or_else(|| Error::TxnNotFound(txid.to_owned()))?;
    branch.ensure_log(txid, log_id)?;
    let order_id = branch
        .order_id
        .ok_or_else(|| Error::TxnAborted(txid.to_owned()))?;
    match branch.state.as_str() {
        COMMITTED => {
            let order = store.require_order(&order_id).await?;
            return Ok((ParticipantTxnState::Committed, true, order));
        }
        ABORTED => return Err(Error::TxnAborted(txid.to_owned())),
        _ => {}
    }
    let order = store.require_order(&order_id).await?;
    let now = chrono::Utc::now();
    let tickets = store.tickets_for(&order, now.timestamp());
    let now = items::timestamp_string(now);
    let mut update = "SET #s = :confirmed, tickets = :tickets, updated_at = :now".to_owned();
    let mut values: Vec<(&str, AttributeValue)> = vec![
        (":confirmed", s(OrderStatus::Confirmed.as_str_name())),
        (":prepared", s(OrderStatus::Prepared.as_str_name())),
        (":tickets", store::tickets_value(&tickets)),
        (":now", s(&now)),
    ];
    if !payment_id.is_empty() {
        update.push_str(", payment_id = :payment");
        values.push((":payment", s(payment_id)));
    }
    let table = &store.table;
    let txn = TxnWrite::new(table)
        .update(
            items::participant_key(txid),
            "SET txn_state = :committed, updated_at = :now",
            "txn_state = :prepared_state",
            &[],
            &[
                (":committed", s(COMMITTED)),
                (":prepared_state", s(PREPARED)),
                (":now", s(&now)),
            ],
            Purpose::Participant,
        )?
        .update(
            items::order_key(&order_id),
            &update,
            "#s = :prepared",
            &[("#s", "status")],
            &values,
            Purpose::Order,
        )?
        .delete(items::in_doubt_key(txid), Purpose::InDoubt)?;
    match txn.send(&store.group).await {
        Ok(()) => Ok((
            ParticipantTxnState::Committed,
            false,
            OrderRecord {
                status: OrderStatus::Confirmed,
                tickets,
                payment_id: (!payment_id.is_empty())
                    .then(|| payment_id.to_owned())
                    .or(order.payment_id.clone()),
                updated_at: now,
                ..order
            },
        )),
        Err(WriteError::Other(error)) => Err(error),
        // A concurrent Commit or Abort moved the state: answer from what it is now.
        Err(WriteError::Cancelled(_)) => match participant(store, txid).await? {
            Some(branch) if branch.state == COMMITTED => Ok((
                ParticipantTxnState::Committed,
                true,
                store.require_order(&order_id).await?,
            )),
            _ => Err(Error::TxnAborted(txid.to_owned())),
        },
    }
}

/// Returns (already done, tombstone written).
pub async fn abort(store: &Store, txid: &str, log_id: Option<&str>) -> Result<(bool, bool)> {
    let table = &store.table;
    let tombstone = TxnWrite::new(table).put(
        participant_item(txid, ABORTED, None, log_id),
        "attribute_not_exists(pk)",
        &[],
        Purpose::Participant,
    )?;
    match tombstone.send(&store.group).await {
        Ok(()) => return Ok((false, true)),
        Err(WriteError::Other(error)) => return Err(error),
        Err(WriteError::Cancelled(_)) => {}
    }
    let branch = participant(store, txid).await?.ok_or(Error::Conflict)?;
    branch.ensure_log(txid, log_id)?;
    match branch.state.as_str() {
        ABORTED => return Ok((true, false)),
        COMMITTED => return Err(Error::TxnCommitted(txid.to_owned())),
        _ => {}
    }
    let order_id = branch.order_id.ok_or(Error::Conflict)?;
    let order = store.require_order(&order_id).await?;
    let live = store.live_claims(&order).await?;
    let now = items::now();
    let txn = TxnWrite::new(table)
        .update(
            items::participant_key(txid),
            "SET txn_state = :aborted, updated_at = :now",
            "txn_state = :prepared_state",
            &[],
            &[
                (":aborted", s(ABORTED)),
                (":prepared_state", s(PREPARED)),
                (":now", s(&now)),
            ],
            Purpose::Participant,
        )?
        .update(
            items::order_key(&order_id),
            "SET #s = :cancelled, updated_at = :now",
            "#s = :prepared",
            &[("#s", "status")],
            &[
                (":cancelled", s(OrderStatus::Cancelled.as_str_name())),
                (":prepared", s(OrderStatus::Prepared.as_str_name())),
                (":now", s(&now)),
            ],
            Purpose::Order,
        )?
        .delete(items::in_doubt_key(txid), Purpose::InDoubt)?;
    let txn = store::release_claims(txn, &order, &live, None)?;
    match txn.send(&store.group).await {
        Ok(()) => Ok((false, false)),
        Err(WriteError::Other(error)) => Err(error),
        Err(WriteError::Cancelled(_)) => match participant(store, txid).await? {
            Some(branch) if branch.state == ABORTED => Ok((true, false)),
            Some(branch) if branch.state == COMMITTED => Err(Error::TxnCommitted(txid.to_owned())),
            _ => Err(Error::Conflict),
        },
    }
}

/// The branch's item in the in-doubt index.
fn in_doubt_item(txid: &str, order_id: &str, log_id: Option<&str>) -> items::Item {
    let mut item = items::in_doubt_key(txid);
    item.insert("txid".into(), s(txid));
    item.insert("order_id".into(), s(order_id));
    item.insert("prepared_at".into(), s(items::now()));
    if let Some(log_id) = log_id {
        item.insert("log_id".into(), s(log_id));
    }
    item
}

/// The prepared branches of `log_id` (and those that name no log), or every one when
/// None, oldest first, from the in-doubt index.
pub async fn list_in_doubt(
    store: &Store,
    log_id: Option<&str>,
) -> Result<(Vec<InDoubtTransaction>, u32)> {
    let mut found = Vec::new();
    let mut others = 0;
    for shard in 0..items::IN_DOUBT_SHARDS {
        let mut start = None;
        loop {
            let page = store
                .client
                .query()
                .table_name(&store.table)
                .key_condition_expression("pk = :shard")
                .expression_attribute_values(":shard", s(format!("INDOUBT#{shard}")))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            for item in page.items() {
                let branch_log = items::get_s(item, "log_id").unwrap_or_default();
                if log_id.is_some_and(|wanted| !branch_log.is_empty() && branch_log != wanted) {
                    others += 1;
                    continue;
                }
                let prepared_at = items::get_s(item, "prepared_at").unwrap_or_default();
                found.push((
                    prepared_at.clone(),
                    InDoubtTransaction {
                        txid: items::get_s(item, "txid").unwrap_or_default(),
                        prepared_at: chrono::DateTime::parse_from_rfc3339(&prepared_at)
                            .ok()
                            .map(|t| server_kit::convert::timestamp(t.with_timezone(&chrono::Utc))),
                        detail: items::get_s(item, "order_id").unwrap_or_default(),
                        log_id: branch_log,
                    },
                ));
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((found.into_iter().map(|(_, t)| t).collect(), others))
}

/// Gives each branch prepared before the in-doubt index existed its index item, once per
/// table (a `META` item records that it ran): the one scan of the table, at start.
pub async fn index_branches_in_doubt(store: &Store) -> Result<usize> {
    const MIGRATION: &str = "in_doubt_index";
    if store.get(items::meta_key(MIGRATION)).await?.is_some() {
        return Ok(0);
    }
    let mut indexed = 0;
    let mut start = None;
    loop {
        let page = store
            .client
            .scan()
            .table_name(&store.table)
            .filter_expression("begins_with(pk, :txn) AND txn_state = :prepared")
            .expression_attribute_values(":txn", s("TXN#"))
            .expression_attribute_values(":prepared", s(PREPARED))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        for item in page.items() {
            let (Some(txid), Some(order_id)) =
                (items::get_s(item, "txid"), items::get_s(item, "order_id"))
            else {
                continue;
            };
            let mut entry =
                in_doubt_item(&txid, &order_id, items::get_s(item, "log_id").as_deref());
            if let Some(at) = items::get_s(item, "updated_at") {
                entry.insert("prepared_at".into(), s(at));
            }
            store
                .client
                .put_item()
                .table_name(&store.table)
                .set_item(Some(entry))
                .send()
                .await?;
            indexed += 1;
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    let mut done = items::meta_key(MIGRATION);
    done.insert("done_at".into(), s(items::now()));
    store
        .client
        .put_item()
        .table_name(&store.table)
        .set_item(Some(done))
        .send()
        .await?;
    Ok(indexed)
}
