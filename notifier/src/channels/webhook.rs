//! Webhooks per Standard Webhooks (standardwebhooks.com): a JSON POST with the headers
//! `webhook-id` (the delivery id, the same on every attempt, so a receiver drops
//! repeats), `webhook-timestamp` (seconds, this attempt) and `webhook-signature`
//! (`v1,` + base64 of HMAC-SHA256 over `id.timestamp.body`, keyed with the endpoint's
//! secret). Any 2xx is delivered; anything else is retried.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::store::Claimed;

pub struct Webhook {
    http: reqwest::Client,
}

impl Webhook {
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }

    pub async fn send(&self, claimed: &Claimed) -> Result<(), String> {
        let secret = claimed
            .secret
            .as_deref()
            .ok_or("the webhook endpoint has no secret")?;
        let body = body(claimed);
        let timestamp = chrono::Utc::now().timestamp();
        let signature = sign(secret, &claimed.delivery_id, timestamp, &body)?;
        let response = self
            .http
            .post(&claimed.target)
            .header("content-type", "application/json")
            .header("webhook-id", &claimed.delivery_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("webhook: {}", super::describe(&e)))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("webhook answered {status}"))
        }
    }
}

/// The event, the same bytes on every attempt.
pub fn body(claimed: &Claimed) -> String {
    let c = &claimed.confirmation;
    json!({
        "type": "purchase.confirmed",
        "timestamp": claimed.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": {
            "txid": c.txid,
            "order_id": c.order_id,
            "event_id": c.event_id,
            "user_id": c.user_id,
            "amount_cents": c.amount_cents,
            "currency": c.currency,
            "seats": c.seats.iter().map(|s| json!({
                "seat_id": s.seat_id, "price_cents": s.price_cents,
            })).collect::<Vec<_>>(),
            "tickets": c.tickets.iter().map(|t| json!({
                "ticket_id": t.ticket_id, "seat_id": t.seat_id, "token": t.token,
            })).collect::<Vec<_>>(),
        },
    })
    .to_string()
}

/// `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), the key being the
/// base64 after `whsec_`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Result<String, String> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|e| format!("the webhook secret is not base64: {e}"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let signature = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(
            signature.as_deref(),
            Ok("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }
}
