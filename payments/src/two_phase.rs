//! Two-phase commit for money: Prepare = authorize, Commit = capture, Abort = void, each
//! idempotent per txid. `txn_participants` holds the txid's state; an Abort that finds
//! no row writes an ABORTED tombstone and a late Prepare is refused.

use deadpool_postgres::GenericClient;
use proto::v1::{InDoubtTransaction, ParticipantTxnState, Payment, PaymentState};
use server_kit::convert;

use crate::card_network::Answer;
use crate::error::{Error, Result};
use crate::lifecycle::{self, Payments};
use crate::model::NewAuthorization;

/// The txid's participant row: (state, payment id). With `caller` (a coordinator log),
/// a row of another log is refused.
async fn participant(
    client: &impl GenericClient,
    txid: &str,
    lock: bool,
    caller: Option<&str>,
) -> Result<Option<(String, Option<String>)>> {
    let sql = if lock {
        "SELECT state, payment_id, log_id FROM txn_participants WHERE txid = $1 FOR UPDATE"
    } else {
        "SELECT state, payment_id, log_id FROM txn_participants WHERE txid = $1"
    };
    let statement = client.prepare_cached(sql).await?;
    let Some(row) = client.query_opt(&statement, &[&txid]).await? else {
        return Ok(None);
    };
    if let (Some(owner), Some(caller)) = (row.get::<_, Option<String>>("log_id"), caller)
        && owner != caller
    {
        return Err(Error::BranchOfAnotherLog {
            txid: txid.to_owned(),
            log_id: owner,
        });
    }
    Ok(Some((row.get("state"), row.get("payment_id"))))
}

/// The answer an earlier Prepare of `txid` earned, if there was one.
async fn earlier_prepare(client: &impl GenericClient, txid: &str) -> Result<Option<Payment>> {
    match participant(client, txid, false, None).await? {
        Some((state, _)) if state == "ABORTED" => Err(Error::TxnAborted(txid.to_owned())),
        Some((_, Some(payment_id))) => {
            Ok(Some(lifecycle::lock_payment(client, &payment_id).await?))
        }
        _ => match lifecycle::by_txid(client, txid).await? {
            Some(declined) if declined.state() == PaymentState::Declined => Err(Error::Declined {
                payment_id: declined.payment_id,
                code: declined.decline_code,
            }),
            _ => Ok(None),
        },
    }
}

pub async fn prepare(
    payments: &Payments,
    txid: &str,
    auth: &NewAuthorization,
    log_id: Option<&str>,
) -> Result<Payment> {
    {
        let client = payments.pool.get().await?;
        if let Some(payment) = earlier_prepare(&client, txid).await? {
            return Ok(payment);
        }
    }
    let answer = lifecycle::ask_network(&payments.network, auth).await?;
    let mut client = payments.pool.get().await?;
    if let Answer::Declined(_) = answer {
        // A declined prepare leaves the DECLINED payment (keyed by txid) and no branch.
        return lifecycle::insert_payment(&client, payments, auth, &answer, Some(txid)).await;
    }
    let tx = client.transaction().await?;
    let statement = tx
        .prepare_cached(
            "INSERT INTO txn_participants (txid, state, log_id) VALUES ($1, 'PREPARED', $2)
             ON CONFLICT (txid) DO NOTHING",
        )
        .await?;
    if tx.execute(&statement, &[&txid, &log_id]).await? == 0 {
        // A tombstone or a concurrent prepare got there first.
        drop(tx);
        return earlier_prepare(&client, txid)
            .await?
            .ok_or_else(|| Error::TxnAborted(txid.to_owned()));
    }
    let payment = lifecycle::insert_payment(&tx, payments, auth, &answer, Some(txid)).await?;
    let statement = tx
        .prepare_cached(
            "UPDATE txn_participants SET payment_id = $2, updated_at = now() WHERE txid = $1",
        )
        .await?;
    tx.execute(&statement, &[&txid, &payment.payment_id])
        .await?;
    tx.commit().await?;
    Ok(payment)
}

/// Captures the txid's authorization. Returns (already done, payment).
pub async fn commit(
    payments: &Payments,
    txid: &str,
    log_id: Option<&str>,
) -> Result<(bool, Payment)> {
    let mut client = payments.pool.get().await?;
    let tx = client.transaction().await?;
    let (state, payment_id) = participant(&tx, txid, true, log_id)
        .await?
        .ok_or_else(|| Error::TxnNotFound(txid.to_owned()))?;
    let payment_id = payment_id.ok_or_else(|| Error::TxnAborted(txid.to_owned()))?;
    let payment = lifecycle::lock_payment(&tx, &payment_id).await?;
    match state.as_str() {
        "COMMITTED" => return Ok((true, payment)),
        "ABORTED" => return Err(Error::TxnAborted(txid.to_owned())),
        _ => {}
    }
    let captured = lifecycle::capture(&tx, &payment, None).await?;
    set_participant(&tx, txid, "COMMITTED").await?;
    tx.commit().await?;
    Ok((false, captured))
}

/// Voids the txid's authorization, or writes a tombstone. Returns (already done, tombstone).
pub async fn abort(payments: &Payments, txid: &str, log_id: Option<&str>) -> Result<(bool, bool)> {
    let mut client = payments.pool.get().await?;
    let tx = client.transaction().await?;
    let statement = tx
        .prepare_cached(
            "INSERT INTO txn_participants (txid, state, log_id) VALUES ($1, 'ABORTED', $2)
             ON CONFLICT (txid) DO NOTHING",
        )
        .await?;
    if tx.execute(&statement, &[&txid, &log_id]).await? == 1 {
        tx.commit().await?;
        return Ok((false, true));
    }
    let (state, payment_id) = participant(&tx, txid, true, log_id)
        .await?
        .ok_or_else(|| Error::TxnNotFound(txid.to_owned()))?;
    match state.as_str() {
        "ABORTED" => return Ok((true, false)),
        "COMMITTED" => return Err(Error::TxnCommitted(txid.to_owned())),
        _ => {}
    }
    if let Some(payment_id) = payment_id {
        let payment = lifecycle::lock_payment(&tx, &payment_id).await?;
        lifecycle::void(&tx, &payment, PaymentState::Voided).await?;
    }
    set_participant(&tx, txid, "ABORTED").await?;
    tx.commit().await?;
    Ok((false, false))
}

async fn set_participant(client: &impl GenericClient, txid: &str, state: &str) -> Result<()> {
    let statement = client
        .prepare_cached(
            "UPDATE txn_participants SET state = $2, updated_at = now() WHERE txid = $1",
        )
        .await?;
    client.execute(&statement, &[&txid, &state]).await?;
    Ok(())
}

/// The prepared branches of `log_id` (and those that name no log), or every one when
/// None, oldest first.
pub async fn list_in_doubt(
    payments: &Payments,
    log_id: Option<&str>,
) -> Result<(Vec<InDoubtTransaction>, u32)> {
    let client = payments.pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT txid, created_at, coalesce(payment_id, '') AS detail,
                    coalesce(log_id, '') AS log_id
               FROM txn_participants
              WHERE state = 'PREPARED'
                AND ($1::text IS NULL OR log_id IS NULL OR log_id = $1)
              ORDER BY created_at, txid",
        )
        .await?;
    let listed = client
        .query(&statement, &[&log_id])
        .await?
        .iter()
        .map(|row| InDoubtTransaction {
            txid: row.get("txid"),
            prepared_at: Some(convert::timestamp(row.get("created_at"))),
            detail: row.get("detail"),
            log_id: row.get("log_id"),
        })
        .collect();
    let others: i64 = match log_id {
        None => 0,
        Some(log_id) => client
            .query_one(
                "SELECT count(*) FROM txn_participants
                  WHERE state = 'PREPARED' AND log_id IS NOT NULL AND log_id <> $1",
                &[&log_id],
            )
            .await?
            .get(0),
    };
    Ok((listed, u32::try_from(others).unwrap_or(u32::MAX)))
}

/// The participant state a txid ended in, for responses.
pub fn state(committed: bool) -> ParticipantTxnState {
    if committed {
        ParticipantTxnState::Committed
    } else {
        ParticipantTxnState::Aborted
    }
}
