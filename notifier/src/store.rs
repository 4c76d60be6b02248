//! The notifier's database: confirmations, their deliveries and the attempts that ended,
//! and the buyers' webhook endpoints. Every state change of a delivery is one statement
//! or one transaction, so a notifier killed at any point leaves either the old state or
//! the new one.

use base64::Engine;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use prost::Message;
use proto::v1::*;
use server_kit::convert::timestamp;
use tokio_postgres::Row;

use crate::error::{Error, Result};

/// The deliveries of `txid`, read on a connection the caller holds.
async fn deliveries_on(client: &tokio_postgres::Client, txid: &str) -> Result<Vec<Delivery>> {
    let rows = client
        .query(
            &format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE txid = $1
                  ORDER BY channel, target"
            ),
            &[&txid],
        )
        .await?;
    Ok(rows.iter().map(delivery).collect())
}

/// One delivery claimed for one attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery_id: String,
    pub txid: String,
    pub channel: Channel,
    pub target: String,
    /// This attempt's number, from 1.
    pub attempt: i32,
    pub max_attempts: i32,
    pub started_at: DateTime<Utc>,
    /// When the delivery was planned: the webhook body's timestamp, the same on every
    /// attempt.
    pub created_at: DateTime<Utc>,
    /// The webhook endpoint's signing secret.
    pub secret: Option<String>,
    pub confirmation: EnqueueRequest,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Ended {
    Delivered,
    Failed {
        error: String,
        retry_in: std::time::Duration,
    },
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

const DELIVERY_COLUMNS: &str = "delivery_id, txid, channel, target, state, attempts, \
     last_error, next_attempt_at, delivered_at, created_at";

impl Store {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Records a confirmation and plans one delivery per channel: email and SMS when the
    /// contact has them, a webhook per endpoint the buyer registered. A repeat of the txid
    /// changes nothing. Answers whether it was new, and the deliveries.
    pub async fn enqueue(
        &self,
        request: &EnqueueRequest,
        email: Option<&str>,
        phone: Option<&str>,
        max_attempts: i32,
    ) -> Result<(bool, Vec<Delivery>)> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let created = tx
            .execute(
                "INSERT INTO confirmations (txid, user_id, event_id, order_id, request)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (txid) DO NOTHING",
                &[
                    &request.txid,
                    &request.user_id,
                    &request.event_id,
                    &request.order_id,
                    &request.encode_to_vec(),
                ],
            )
            .await?
            == 1;
        if created {
            for (channel, target) in [("email", email), ("sms", phone)] {
                if let Some(target) = target {
                    tx.execute(
                        "INSERT INTO deliveries (delivery_id, txid, channel, target, max_attempts)
                         VALUES ($1, $2, $3, $4, $5)",
                        &[
                            &new_delivery_id(),
                            &request.txid,
                            &channel,
                            &target,
                            &max_attempts,
                        ],
                    )
                    .await?;
                }
            }
            tx.execute(
                "INSERT INTO deliveries (delivery_id, txid, channel, target, endpoint_id,
                                         max_attempts)
                 SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), $1, 'webhook',
                        url, endpoint_id, $3
                   FROM webhook_endpoints WHERE user_id = $2",
                &[&request.txid, &request.user_id, &max_attempts],
            )
            .await?;
        }
        tx.commit().await?;
        // On the connection already held: taking a second one while holding this one
        // deadlocks the pool once every connection's holder waits for another.
        Ok((created, deliveries_on(&client, &request.txid).await?))
    }

    /// The endpoint of `user_id` at `url`, created with a fresh secret when new.
    pub async fn register_webhook(&self, user_id: &str, url: &str) -> Result<(String, String)> {
        let client = self.pool.get().await?;
        let key: [u8; 24] = std::array::from_fn(|_| fastrand::u8(..));
        let secret = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        );
        let row = client
            .query_one(
                "INSERT INTO webhook_endpoints (endpoint_id, user_id, url, secret)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id, url) DO UPDATE SET url = EXCLUDED.url
                 RETURNING endpoint_id, secret",
                &[
                    &format!("ep_{}", uuid::Uuid::now_v7().simple()),
                    &user_id,
                    &url,
                    &secret,
                ],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    pub async fn deliveries_of(&self, txid: &str) -> Result<Vec<Delivery>> {
        let client = self.pool.get().await?;
        deliveries_on(&client, txid).await
    }

    /// The confirmation of `txid` with its deliveries and every ended attempt in order.
    pub async fn confirmation(&self, txid: &str) -> Result<Confirmation> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT txid, user_id, event_id, order_id, received_at FROM confirmations
                  WHERE txid = $1",
                &[&txid],
            )
            .await?
            .ok_or_else(|| Error::ConfirmationNotFound(txid.to_owned()))?;
        drop(client);
        // Deliveries before attempts: an attempt and its delivery's new state commit
        // together, so every attempt that settled a delivery read here is in the later
        // read of the attempts (what WatchPurchase's order relies on).
        let deliveries = self.deliveries_of(txid).await?;
        let client = self.pool.get().await?;
        let attempts = client
            .query(
                "SELECT a.sequence, a.delivery_id, d.channel, a.attempt, a.started_at,
                        a.finished_at, a.delivered, a.error, a.state_after
                   FROM attempts a JOIN deliveries d USING (delivery_id)
                  WHERE a.txid = $1 ORDER BY a.sequence",
                &[&txid],
            )
            .await?;
        Ok(Confirmation {
            txid: row.get(0),
            user_id: row.get(1),
            event_id: row.get(2),
            order_id: row.get(3),
            received_at: Some(timestamp(row.get(4))),
            settled: deliveries
                .iter()
                .all(|d| d.state() != DeliveryState::Pending),
            deliveries,
            attempts: attempts
                .iter()
                .map(|a| DeliveryAttempt {
                    sequence: u32::try_from(a.get::<_, i32>(0)).unwrap_or(0),
                    delivery_id: a.get(1),
                    channel: channel(a.get(2)).into(),
                    attempt: u32::try_from(a.get::<_, i32>(3)).unwrap_or(0),
                    started_at: Some(timestamp(a.get(4))),
                    finished_at: Some(timestamp(a.get(5))),
                    delivered: a.get(6),
                    error: a.get::<_, Option<String>>(7).unwrap_or_default(),
                    state_after: state(a.get(8)).into(),
                })
                .collect(),
        })
    }

    /// Claims up to `limit` due deliveries for one attempt each, for `claim_ms`.
    /// Deliveries whose last attempt never ended (a notifier killed mid-delivery) are due
    /// again once their claim has passed.
    pub async fn claim_due(&self, limit: i64, claim_ms: i64) -> Result<Vec<Claimed>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "WITH due AS (
                     SELECT delivery_id FROM deliveries
                      WHERE state = 'PENDING' AND next_attempt_at <= now()
                        AND (claimed_until IS NULL OR claimed_until < now())
                        AND attempts < max_attempts
                      ORDER BY next_attempt_at
                      LIMIT $1
                        FOR UPDATE SKIP LOCKED)
                 UPDATE deliveries d
                    SET attempts = d.attempts + 1,
                        claimed_until = now() + $2 * interval '1 millisecond'
                   FROM due
                  WHERE d.delivery_id = due.delivery_id
              RETURNING d.delivery_id, d.txid, d.channel, d.target, d.attempts, d.max_attempts,
                        now(), d.created_at,
                        (SELECT secret FROM webhook_endpoints e
                          WHERE e.endpoint_id = d.endpoint_id),
                        (SELECT request FROM confirmations c WHERE c.txid = d.txid)",
                &[&limit, &(claim_ms as f64)],
            )
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let request: Vec<u8> = row.get(9);
            let confirmation = EnqueueRequest::decode(request.as_slice()).map_err(|e| {
                Error::Corrupt(format!("confirmation {}: {e}", row.get::<_, String>(1)))
            })?;
            claimed.push(Claimed {
                delivery_id: row.get(0),
                txid: row.get(1),
                channel: channel(row.get(2)),
                target: row.get(3),
                attempt: row.get(4),
                max_attempts: row.get(5),
                started_at: row.get(6),
                created_at: row.get(7),
                secret: row.get(8),
                confirmation,
            });
        }
        Ok(claimed)
    }

    /// Dead-letters deliveries whose last allowed attempt never ended (the notifier was
    /// killed during it) once its claim has passed. Returns how many.
    pub async fn dead_letter_abandoned(&self) -> Result<u64> {
        let client = self.pool.get().await?;
        Ok(client
            .execute(
                "UPDATE deliveries
                    SET state = 'DEAD_LETTERED', claimed_until = NULL,
                        last_error = coalesce(last_error || '; ', '')
                                     || 'the last attempt never ended (the notifier stopped during it)'
                  WHERE state = 'PENDING' AND attempts >= max_attempts
                    AND claimed_until < now()",
                &[],
            )
            .await?)
    }

    /// Records how an attempt ended: the attempt row (numbered in the confirmation's
    /// order under its row lock) and the delivery's new state, in one transaction. A
    /// result that arrives after the claim passed and another attempt began is kept as
    /// an attempt but moves nothing.
    pub async fn record(&self, claimed: &Claimed, ended: Ended) -> Result<DeliveryState> {
        let (delivered, error, next) = match &ended {
            Ended::Delivered => (true, None, None),
            Ended::Failed { error, retry_in } => (false, Some(error.as_str()), Some(*retry_in)),
        };
        let state_after = if delivered {
            "DELIVERED"
        } else if claimed.attempt >= claimed.max_attempts {
            "DEAD_LETTERED"
        } else {
            "PENDING"
        };
        let retry_ms = next.map_or(0.0, |d| d.as_secs_f64() * 1_000.0);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let sequence: i32 = tx
            .query_one(
                "UPDATE confirmations SET attempts_ended = attempts_ended + 1
                  WHERE txid = $1 RETURNING attempts_ended",
                &[&claimed.txid],
            )
            .await?
            .get(0);
        tx.execute(
            "UPDATE deliveries
                SET state = $3, last_error = coalesce($4, last_error),
                    delivered_at = CASE WHEN $3 = 'DELIVERED' THEN now() END,
                    next_attempt_at = now() + $5 * interval '1 millisecond',
                    claimed_until = NULL
              WHERE delivery_id = $1 AND attempts = $2 AND state = 'PENDING'",
            &[
                &claimed.delivery_id,
                &claimed.attempt,
                &state_after,
                &error,
                &retry_ms,
            ],
        )
        .await?;
        tx.execute(
            "INSERT INTO attempts (delivery_id, attempt, txid, sequence, started_at, delivered,
                                   error, state_after)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (delivery_id, attempt) DO NOTHING",
            &[
                &claimed.delivery_id,
                &claimed.attempt,
                &claimed.txid,
                &sequence,
                &claimed.started_at,
                &delivered,
                &error,
                &state_after,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(state(state_after))
    }

    /// Deliveries, newest first, one page. The page token is the last row's position.
    pub async fn list(
        &self,
        state: Option<&'static str>,
        channel: Option<&'static str>,
        txid: Option<&str>,
        limit: i64,
        after: Option<(DateTime<Utc>, String)>,
    ) -> Result<(Vec<Delivery>, Option<(DateTime<Utc>, String)>)> {
        let client = self.pool.get().await?;
        let (after_at, after_id) = after.unzip();
        let rows = client
            .query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM deliveries
                      WHERE ($1::text IS NULL OR state = $1)
                        AND ($2::text IS NULL OR channel = $2)
                        AND ($3::text IS NULL OR txid = $3)
                        AND ($4::timestamptz IS NULL OR (created_at, delivery_id) < ($4, $5))
                      ORDER BY created_at DESC, delivery_id DESC
                      LIMIT $6"
                ),
                &[&state, &channel, &txid, &after_at, &after_id, &(limit + 1)],
            )
            .await?;
        let more = rows.len() as i64 > limit;
        let page: Vec<&Row> = rows.iter().take(limit as usize).collect();
        let next = if more {
            page.last().map(|row| (row.get(9), row.get(0)))
        } else {
            None
        };
        Ok((page.into_iter().map(delivery).collect(), next))
    }

    /// Makes a dead-lettered or pending delivery due now with `max_attempts` more
    /// attempts.
    pub async fn retry(&self, delivery_id: &str, max_attempts: i32) -> Result<Delivery> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE deliveries
                        SET state = 'PENDING', next_attempt_at = now(), claimed_until = NULL,
                            max_attempts = attempts + $2
                      WHERE delivery_id = $1 AND state <> 'DELIVERED'
                  RETURNING {DELIVERY_COLUMNS}"
                ),
                &[&delivery_id, &max_attempts],
            )
            .await?;
        if let Some(row) = row {
            return Ok(delivery(&row));
        }
        let exists = client
            .query_opt(
                "SELECT 1 FROM deliveries WHERE delivery_id = $1",
                &[&delivery_id],
            )
            .await?
            .is_some();
        Err(if exists {
            Error::AlreadyDelivered(delivery_id.to_owned())
        } else {
            Error::DeliveryNotFound(delivery_id.to_owned())
        })
    }

    /// Failed attempts since `since`, grouped by `group` ("error", "channel", "state").
    pub async fn failures(
        &self,
        since: DateTime<Utc>,
        group: &str,
    ) -> Result<Vec<DeliveryFailureGroup>> {
        let key = match group {
            "channel" => "d.channel",
            "state" => "a.state_after",
            _ => "coalesce(a.error, '')",
        };
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {key} AS key, count(*), (array_agg(DISTINCT a.txid))[1:5]
                       FROM attempts a JOIN deliveries d USING (delivery_id)
                      WHERE NOT a.delivered AND a.finished_at >= $1
                      GROUP BY 1 ORDER BY count(*) DESC, 1"
                ),
                &[&since],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| DeliveryFailureGroup {
                key: row.get(0),
                count: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
                example_txids: row.get(2),
            })
            .collect())
    }
}

fn new_delivery_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

fn delivery(row: &Row) -> Delivery {
    Delivery {
        delivery_id: row.get(0),
        txid: row.get(1),
        channel: channel(row.get(2)).into(),
        target: row.get(3),
        state: state(row.get(4)).into(),
        attempts: u32::try_from(row.get::<_, i32>(5)).unwrap_or(0),
        last_error: row.get::<_, Option<String>>(6).unwrap_or_default(),
        next_attempt_at: (row.get::<_, &str>(4) == "PENDING").then(|| timestamp(row.get(7))),
        delivered_at: row.get::<_, Option<DateTime<Utc>>>(8).map(timestamp),
        created_at: Some(timestamp(row.get(9))),
    }
}

pub fn channel_name(channel: Channel) -> Option<&'static str> {
    match channel {
        Channel::Unspecified => None,
        Channel::Email => Some("email"),
        Channel::Sms => Some("sms"),
        Channel::Webhook => Some("webhook"),
    }
}

fn channel(name: &str) -> Channel {
    match name {
        "email" => Channel::Email,
        "sms" => Channel::Sms,
        "webhook" => Channel::Webhook,
        _ => Channel::Unspecified,
    }
}

pub fn state_name(state: DeliveryState) -> Option<&'static str> {
    match state {
        DeliveryState::Unspecified => None,
        DeliveryState::Pending => Some("PENDING"),
        DeliveryState::Delivered => Some("DELIVERED"),
        DeliveryState::DeadLettered => Some("DEAD_LETTERED"),
    }
}

fn state(name: &str) -> DeliveryState {
    match name {
        "PENDING" => DeliveryState::Pending,
        "DELIVERED" => DeliveryState::Delivered,
        "DEAD_LETTERED" => DeliveryState::DeadLettered,
        _ => DeliveryState::Unspecified,
    }
}
