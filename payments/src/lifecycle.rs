//! A payment's life in the card model: authorize (hold funds), then capture, or void
//! before capture and refund after. Each write runs in one transaction with its
//! idempotency key and its ledger entries.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use proto::v1::{Payment, PaymentState};
use server_kit::convert;
use tokio_postgres::Row;

use crate::card_network::{self, Answer, CardNetwork};
use crate::error::{Error, Result};
use crate::ledger::{self, Movement};
use crate::model::NewAuthorization;

const COLUMNS: &str = "payment_id, order_id, state, amount_cents, captured_cents, refunded_cents,
                       currency, card_brand, card_last4, decline_code, txid, created_at,
                       expires_at, updated_at";

/// What the payment operations share.
#[derive(Clone)]
pub struct Payments {
    pub pool: Pool,
    pub network: Arc<CardNetwork>,
    /// How long an authorization lives before the sweeper voids it.
    pub authorization_ttl_secs: i64,
    /// How long idempotency keys are kept.
    pub key_retention_hours: i32,
}

/// The network's verdict on a new authorization, asked before any transaction opens
/// so a slow card never holds a database connection.
pub async fn ask_network(network: &CardNetwork, auth: &NewAuthorization) -> Result<Answer> {
    let card = card_network::card(&auth.card_token)?;
    match network.authorize(&card).await {
        Answer::TimedOut => Err(Error::CardTimeout),
        answer => Ok(answer),
    }
}

/// Inserts the payment the network's answer makes: AUTHORIZED (with its ledger
/// movement) or DECLINED. A decline is returned as the error, after the row is written.
pub async fn insert_payment(
    client: &impl GenericClient,
    payments: &Payments,
    auth: &NewAuthorization,
    answer: &Answer,
    txid: Option<&str>,
) -> Result<Payment> {
    let card = card_network::card(&auth.card_token)?;
    let payment_id = format!("pay_{}", uuid::Uuid::new_v4().simple());
    let (state, decline_code) = match answer {
        Answer::Declined(code) => (PaymentState::Declined, Some(*code)),
        _ => (PaymentState::Authorized, None),
    };
    let statement = client
        .prepare_cached(&format!(
            "INSERT INTO payments (payment_id, order_id, state, amount_cents, currency, card_brand,
                                   card_last4, decline_code, txid, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
                     CASE WHEN $3 = 'AUTHORIZED' THEN now() + $10::bigint * interval '1 second' END)
             RETURNING {COLUMNS}"
        ))
        .await?;
    let row = client
        .query_one(
            &statement,
            &[
                &payment_id,
                &auth.order_id,
                &state_name(state),
                &auth.amount_cents,
                &auth.currency,
                &card.brand,
                &card.last4,
                &decline_code,
                &txid,
                &payments.authorization_ttl_secs,
            ],
        )
        .await?;
    let payment = payment_from_row(&row);
    match decline_code {
        Some(code) => Err(Error::Declined {
            payment_id,
            code: code.to_owned(),
        }),
        None => {
            ledger::record(
                client,
                &payment.payment_id,
                &auth.currency,
                Movement::Authorize {
                    amount: auth.amount_cents,
                },
            )
            .await?;
            Ok(payment)
        }
    }
}

/// Locks and reads a payment.
pub async fn lock_payment(client: &impl GenericClient, payment_id: &str) -> Result<Payment> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM payments WHERE payment_id = $1 FOR UPDATE"
        ))
        .await?;
    client
        .query_opt(&statement, &[&payment_id])
        .await?
        .map(|row| payment_from_row(&row))
        .ok_or_else(|| Error::PaymentNotFound(payment_id.to_owned()))
}

/// AUTHORIZED -> CAPTURED for `amount` (all when None); the rest of the hold is released.
pub async fn capture(
    client: &impl GenericClient,
    payment: &Payment,
    amount: Option<i64>,
) -> Result<Payment> {
    if payment.state() != PaymentState::Authorized {
        return Err(invalid_state(payment, "capture"));
    }
    let captured = amount.unwrap_or(payment.amount_cents);
    if captured > payment.amount_cents {
        return Err(Error::AmountExceeded {
            payment_id: payment.payment_id.clone(),
            action: "capture",
            requested: captured,
            allowed: payment.amount_cents,
        });
    }
    let updated = set_state(
        client,
        &payment.payment_id,
        PaymentState::Captured,
        captured,
        0,
    )
    .await?;
    ledger::record(
        client,
        &payment.payment_id,
        &payment.currency,
        Movement::Capture {
            captured,
            released: payment.amount_cents - captured,
        },
    )
    .await?;
    Ok(updated)
}

/// AUTHORIZED -> VOIDED (or EXPIRED), releasing the hold. Voiding a voided payment is a
/// no-op; voiding a captured one is refused.
pub async fn void(
    client: &impl GenericClient,
    payment: &Payment,
    to: PaymentState,
) -> Result<Payment> {
    match payment.state() {
        PaymentState::Authorized => {}
        PaymentState::Voided | PaymentState::Expired | PaymentState::Declined => {
            return Ok(payment.clone());
        }
        _ => return Err(invalid_state(payment, "void")),
    }
    let updated = set_state(client, &payment.payment_id, to, 0, 0).await?;
    ledger::record(
        client,
        &payment.payment_id,
        &payment.currency,
        Movement::Release {
            amount: payment.amount_cents,
        },
    )
    .await?;
    Ok(updated)
}

/// Refunds `amount` (all that is left when None) of a capture.
pub async fn refund(
    client: &impl GenericClient,
    payment: &Payment,
    amount: Option<i64>,
) -> Result<Payment> {
    if !matches!(
        payment.state(),
        PaymentState::Captured | PaymentState::Refunded
    ) {
        return Err(invalid_state(payment, "refund"));
    }
    let refundable = payment.captured_cents - payment.refunded_cents;
    let refunded = amount.unwrap_or(refundable);
    if refunded > refundable || refunded == 0 {
        return Err(Error::AmountExceeded {
            payment_id: payment.payment_id.clone(),
            action: "refund",
            requested: refunded,
            allowed: refundable,
        });
    }
    let updated = set_state(
        client,
        &payment.payment_id,
        PaymentState::Refunded,
        payment.captured_cents,
        payment.refunded_cents + refunded,
    )
    .await?;
    ledger::record(
        client,
        &payment.payment_id,
        &payment.currency,
        Movement::Refund { amount: refunded },
    )
    .await?;
    Ok(updated)
}

async fn set_state(
    client: &impl GenericClient,
    payment_id: &str,
    state: PaymentState,
    captured: i64,
    refunded: i64,
) -> Result<Payment> {
    let statement = client
        .prepare_cached(&format!(
            "UPDATE payments
                SET state = $2, captured_cents = $3, refunded_cents = $4, updated_at = now()
              WHERE payment_id = $1
          RETURNING {COLUMNS}"
        ))
        .await?;
    let row = client
        .query_one(
            &statement,
            &[&payment_id, &state_name(state), &captured, &refunded],
        )
        .await?;
    Ok(payment_from_row(&row))
}

pub async fn get(pool: &Pool, payment_id: &str) -> Result<Payment> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM payments WHERE payment_id = $1"
        ))
        .await?;
    client
        .query_opt(&statement, &[&payment_id])
        .await?
        .map(|row| payment_from_row(&row))
        .ok_or_else(|| Error::PaymentNotFound(payment_id.to_owned()))
}

pub async fn by_order(pool: &Pool, order_id: &str) -> Result<Vec<Payment>> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM payments WHERE order_id = $1 ORDER BY created_at, payment_id"
        ))
        .await?;
    Ok(client
        .query(&statement, &[&order_id])
        .await?
        .iter()
        .map(payment_from_row)
        .collect())
}

pub async fn by_txid(client: &impl GenericClient, txid: &str) -> Result<Option<Payment>> {
    let statement = client
        .prepare_cached(&format!("SELECT {COLUMNS} FROM payments WHERE txid = $1"))
        .await?;
    Ok(client
        .query_opt(&statement, &[&txid])
        .await?
        .map(|row| payment_from_row(&row)))
}

fn invalid_state(payment: &Payment, action: &'static str) -> Error {
    Error::InvalidState {
        payment_id: payment.payment_id.clone(),
        state: state_name(payment.state()).to_owned(),
        action,
    }
}

pub fn state_name(state: PaymentState) -> &'static str {
    state
        .as_str_name()
        .strip_prefix("PAYMENT_STATE_")
        .expect("every PaymentState starts with PAYMENT_STATE_")
}

fn payment_from_row(row: &Row) -> Payment {
    let state = PaymentState::from_str_name(&format!("PAYMENT_STATE_{}", row.get::<_, &str>(2)))
        .unwrap_or(PaymentState::Unspecified);
    Payment {
        payment_id: row.get(0),
        order_id: row.get(1),
        state: state.into(),
        amount_cents: row.get(3),
        captured_cents: row.get(4),
        refunded_cents: row.get(5),
        currency: row.get(6),
        card_brand: row.get(7),
        card_last4: row.get(8),
        decline_code: row.get::<_, Option<String>>(9).unwrap_or_default(),
        txid: row.get::<_, Option<String>>(10).unwrap_or_default(),
        created_at: Some(convert::timestamp(row.get(11))),
        expires_at: row
            .get::<_, Option<DateTime<Utc>>>(12)
            .map(convert::timestamp),
        updated_at: Some(convert::timestamp(row.get(13))),
    }
}
