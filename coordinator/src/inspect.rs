//! Reading the log for people: one transaction's timeline, filtered lists, what is
//! pending, and failures grouped by error, protocol, step or participant.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use proto::error::FieldError;
use proto::v1::*;
use server_kit::convert;
use tokio_postgres::Row;

use crate::error::{Error, Result};
use crate::log::{self, Log, State, TxnRecord};
use crate::model::protocol_name;

pub fn transaction(txn: &TxnRecord, steps: Vec<Step>) -> Transaction {
    Transaction {
        txid: txn.txid.clone(),
        protocol: txn.protocol.into(),
        state: state(txn.state).into(),
        decision: match txn.decision {
            Some(log::Decision::Commit) => Decision::Commit,
            Some(log::Decision::Abort) => Decision::Abort,
            None => Decision::Unspecified,
        }
        .into(),
        user_id: txn.purchase.user_id.clone(),
        event_id: txn.purchase.event_id.clone(),
        seat_ids: txn.purchase.seat_ids.clone(),
        quantity: txn.purchase.quantity,
        idempotency_key: txn.purchase.idempotency_key.clone(),
        order_id: txn.order_id.clone(),
        payment_id: txn.payment_id.clone().unwrap_or_default(),
        error: txn.error.clone().unwrap_or_default(),
        started_at: Some(convert::timestamp(txn.started_at)),
        decided_at: txn.decided_at.map(convert::timestamp),
        finished_at: txn.finished_at.map(convert::timestamp),
        steps,
        outbox: None,
        trace_id: txn.trace_id().unwrap_or_default().to_owned(),
        began_by: txn.began_by.clone().unwrap_or_default(),
        owner: txn.owner.clone().unwrap_or_default(),
        owner_epoch: u64::try_from(txn.owner_epoch).unwrap_or(0),
        ownership: Vec::new(),
    }
}

fn state(state: State) -> TransactionState {
    match state {
        State::Running => TransactionState::Running,
        State::Committing => TransactionState::Committing,
        State::Aborting => TransactionState::Aborting,
        State::Committed => TransactionState::Committed,
        State::Aborted => TransactionState::Aborted,
        State::NeedsAttention => TransactionState::NeedsAttention,
    }
}

fn state_filter(state: TransactionState) -> Option<&'static str> {
    Some(match state {
        TransactionState::Unspecified => return None,
        TransactionState::Running => "RUNNING",
        TransactionState::Committing => "COMMITTING",
        TransactionState::Aborting => "ABORTING",
        TransactionState::Committed => "COMMITTED",
        TransactionState::Aborted => "ABORTED",
        TransactionState::NeedsAttention => "NEEDS_ATTENTION",
    })
}

pub async fn get(log: &Log, txid: &str) -> Result<Transaction> {
    let txn = log.load(txid).await?;
    let steps = steps(log.pool(), txid).await?;
    let outbox = log.outbox(txid).await?.map(|row| Outbox {
        created_at: Some(convert::timestamp(row.created_at)),
        relayed_at: row.relayed_at.map(convert::timestamp),
        attempts: u32::try_from(row.attempts).unwrap_or(0),
        last_error: row.last_error.unwrap_or_default(),
        contact: Some(Contact {
            email: txn.purchase.email.clone().unwrap_or_default(),
            phone: txn.purchase.phone.clone().unwrap_or_default(),
        }),
    });
    Ok(Transaction {
        outbox,
        ownership: ownership(log.pool(), txid).await?,
        ..transaction(&txn, steps)
    })
}

async fn ownership(pool: &Pool, txid: &str) -> Result<Vec<OwnershipEvent>> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT at, event, instance_id, epoch, coalesce(detail, '') AS detail
               FROM ownership_events WHERE txid = $1 ORDER BY at, id",
        )
        .await?;
    Ok(client
        .query(&statement, &[&txid])
        .await?
        .iter()
        .map(|row| OwnershipEvent {
            at: Some(convert::timestamp(row.get("at"))),
            event: row.get("event"),
            instance_id: row.get("instance_id"),
            epoch: u64::try_from(row.get::<_, i64>("epoch")).unwrap_or(0),
            detail: row.get("detail"),
        })
        .collect())
}

/// The log's coordinators and what each did, for the event's purchases or all.
pub async fn coordinators(log: &Log, event_id: &str) -> Result<ListCoordinatorsResponse> {
    let client = log.pool().get().await?;
    let statement = client
        .prepare_cached(
            "WITH txns AS (
                 SELECT txid, began_by, finished_by FROM transactions
                  WHERE $1 = '' OR event_id = $1),
             takeovers AS (
                 SELECT DISTINCT e.txid, e.instance_id, t.began_by
                   FROM ownership_events e JOIN txns t USING (txid)
                  WHERE e.event = 'takeover' AND e.instance_id <> t.began_by)
             SELECT c.instance_id, c.listen, c.started_at,
                    (SELECT count(*) FROM txns WHERE began_by = c.instance_id) AS began,
                    (SELECT count(*) FROM txns WHERE finished_by = c.instance_id) AS finished,
                    (SELECT count(DISTINCT txid) FROM takeovers
                      WHERE began_by = c.instance_id) AS taken_over_from,
                    (SELECT count(DISTINCT txid) FROM takeovers
                      WHERE instance_id = c.instance_id) AS took_over
               FROM coordinators c ORDER BY c.started_at, c.instance_id",
        )
        .await?;
    let count = |row: &Row, name: &str| u64::try_from(row.get::<_, i64>(name)).unwrap_or(0);
    Ok(ListCoordinatorsResponse {
        log_id: log.log_id().to_owned(),
        instance_id: log.me().to_owned(),
        coordinators: client
            .query(&statement, &[&event_id])
            .await?
            .iter()
            .map(|row| CoordinatorInstance {
                instance_id: row.get("instance_id"),
                listen: row.get("listen"),
                started_at: Some(convert::timestamp(row.get("started_at"))),
                began: count(row, "began"),
                finished: count(row, "finished"),
                taken_over_from: count(row, "taken_over_from"),
                took_over: count(row, "took_over"),
            })
            .collect(),
    })
}

async fn steps(pool: &Pool, txid: &str) -> Result<Vec<Step>> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT sequence, participant, operation, attempt, started_at, finished_at, outcome,
                    coalesce(error, ''), compensation
               FROM steps WHERE txid = $1 ORDER BY sequence",
        )
        .await?;
    Ok(client
        .query(&statement, &[&txid])
        .await?
        .iter()
        .map(step)
        .collect())
}

fn step(row: &Row) -> Step {
    Step {
        sequence: u32::try_from(row.get::<_, i32>(0)).unwrap_or(0),
        participant: log::participant_from_name(row.get(1)).into(),
        operation: row.get(2),
        attempt: u32::try_from(row.get::<_, i32>(3)).unwrap_or(0),
        started_at: Some(convert::timestamp(row.get(4))),
        finished_at: row
            .get::<_, Option<DateTime<Utc>>>(5)
            .map(convert::timestamp),
        outcome: match row.get::<_, &str>(6) {
            "OK" => StepOutcome::Ok,
            "FAILED" => StepOutcome::Failed,
            "UNKNOWN" => StepOutcome::Unknown,
            _ => StepOutcome::InFlight,
        }
        .into(),
        error: row.get(7),
        compensation: row.get(8),
    }
}

pub async fn list(
    log: &Log,
    request: &ListTransactionsRequest,
) -> Result<(Vec<Transaction>, String)> {
    let page_size = server_kit::validate::page_size("page_size", request.page_size, 50, 500)?;
    let offset: i64 =
        match request.page_token.as_str() {
            "" => 0,
            token => token.parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
                FieldError::new("page_token", "is not a token this service issued")
            })?,
        };
    let since = request
        .since
        .as_ref()
        .map(|ts| convert::from_timestamp("since", ts))
        .transpose()?;
    let protocol = match Protocol::try_from(request.protocol).unwrap_or(Protocol::Unspecified) {
        Protocol::Unspecified => None,
        p => Some(protocol_name(p)),
    };
    let state = state_filter(TransactionState::try_from(request.state).unwrap_or_default());
    let event = (!request.event_id.is_empty()).then_some(request.event_id.as_str());
    let error =
        (!request.error_contains.is_empty()).then(|| format!("%{}%", request.error_contains));
    let key = (!request.idempotency_key.is_empty()).then_some(request.idempotency_key.as_str());
    let user = (!request.user_id.is_empty()).then_some(request.user_id.as_str());
    let client = log.pool().get().await?;
    let rows = client
        .query(
            "SELECT txid FROM transactions t
              WHERE ($1::text IS NULL OR state = $1)
                AND ($2::text IS NULL OR protocol = $2)
                AND ($3::text IS NULL OR event_id = $3)
                AND ($4::timestamptz IS NULL OR started_at >= $4)
                AND ($5::text IS NULL OR error ILIKE $5
                     OR EXISTS (SELECT 1 FROM steps s WHERE s.txid = t.txid AND s.error ILIKE $5))
                AND ($8::text IS NULL OR idempotency_key = $8)
                AND ($9::text IS NULL OR user_id = $9)
              ORDER BY started_at DESC, txid
              LIMIT $6 OFFSET $7",
            &[
                &state,
                &protocol,
                &event,
                &since,
                &error,
                &(page_size + 1),
                &offset,
                &key,
                &user,
            ],
        )
        .await?;
    let mut txids: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    let next = if txids.len() as i64 > page_size {
        txids.truncate(page_size as usize);
        (offset + page_size).to_string()
    } else {
        String::new()
    };
    let transactions = log
        .load_many(&txids)
        .await?
        .iter()
        .map(|txn| transaction(txn, Vec::new()))
        .collect();
    Ok((transactions, next))
}

pub async fn pending(log: &Log) -> Result<Vec<PendingTransaction>> {
    let unfinished = log.unfinished().await?;
    let client = log.pool().get().await?;
    let statement = client
        .prepare_cached(
            "SELECT participant, operation, count(*), max(started_at),
                    (array_agg(coalesce(error, '') ORDER BY sequence DESC))[1],
                    bool_or(outcome = 'OK')
               FROM steps WHERE txid = $1
              GROUP BY participant, operation
              ORDER BY min(sequence)",
        )
        .await?;
    let mut pending = Vec::with_capacity(unfinished.len());
    for txn in unfinished {
        let steps = client
            .query(&statement, &[&txn.txid])
            .await?
            .iter()
            .filter(|row| !row.get::<_, bool>(5))
            .map(|row| PendingStep {
                participant: log::participant_from_name(row.get(0)).into(),
                operation: row.get(1),
                attempts: u32::try_from(row.get::<_, i64>(2)).unwrap_or(u32::MAX),
                last_attempt_at: Some(convert::timestamp(row.get(3))),
                last_error: row.get(4),
            })
            .collect();
        pending.push(PendingTransaction {
            needs_attention: txn.state == State::NeedsAttention,
            in_doubt: txn.protocol == Protocol::TwoPhaseCommit && txn.state != State::Aborting,
            transaction: Some(transaction(&txn, Vec::new())),
            steps,
        });
    }
    Ok(pending)
}

pub async fn failures(
    log: &Log,
    request: &FailureSummaryRequest,
) -> Result<FailureSummaryResponse> {
    let since = match &request.since {
        Some(ts) => convert::from_timestamp("since", ts)?,
        None => Utc::now() - chrono::Duration::hours(1),
    };
    let event = match request.event_id.as_str() {
        "" => None,
        event => Some(server_kit::validate::id("event_id", event)?),
    };
    let group = match FailureGroupBy::try_from(request.group_by).unwrap_or_default() {
        FailureGroupBy::Unspecified | FailureGroupBy::Error => {
            let groups = crate::causes::group(log, since, event.as_deref()).await?;
            return Ok(FailureSummaryResponse {
                total: groups.iter().map(|g| g.count).sum(),
                groups,
                counted: "purchases".to_owned(),
            });
        }
        // Ids differ per purchase; group by the error with long ids masked.
        FailureGroupBy::Message => {
            "regexp_replace(coalesce(s.error, ''), '[0-9a-f]{16,}|(tx|ord|pay)[-_][0-9a-zA-Z-]+', '…', 'g')"
        }
        FailureGroupBy::Protocol => "t.protocol",
        FailureGroupBy::Step => "s.operation",
        FailureGroupBy::Participant => "s.participant",
    };
    let client = log.pool().get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {group} AS key, count(*), (array_agg(DISTINCT s.txid))[1:5]
                   FROM steps s JOIN transactions t USING (txid)
                  WHERE s.outcome IN ('FAILED', 'UNKNOWN') AND s.started_at >= $1
                    AND ($2::text IS NULL OR t.event_id = $2)
                  GROUP BY key ORDER BY count(*) DESC, key"
            ),
            &[&since, &event],
        )
        .await
        .map_err(Error::from)?;
    let groups: Vec<FailureGroup> = rows
        .iter()
        .map(|row| FailureGroup {
            label: row.get(0),
            key: row.get(0),
            count: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
            example_txids: row.get(2),
        })
        .collect();
    Ok(FailureSummaryResponse {
        total: groups.iter().map(|g| g.count).sum(),
        groups,
        counted: "steps".to_owned(),
    })
}
