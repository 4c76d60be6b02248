//! The three ways a confirmation reaches the buyer. Each channel sends one delivery
//! once; retries, backoff and the ceiling are the dispatcher's.

pub mod email;
pub mod sms;
pub mod webhook;

use std::time::Duration;

use proto::v1::Channel;

use crate::config::Config;
use crate::store::Claimed;

/// Every channel, configured.
pub struct Channels {
    email: email::Email,
    sms: sms::Sms,
    webhook: webhook::Webhook,
    timeout: Duration,
}

impl Channels {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let timeout = Duration::from_millis(config.send_timeout_ms.max(1));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("ticketdrop-notifier/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            email: email::Email::new(&config.smtp_url, &config.email_from, timeout)?,
            sms: sms::Sms::new(
                http.clone(),
                &config.sms_url,
                &config.sms_account,
                &config.sms_token,
                &config.sms_from,
            ),
            webhook: webhook::Webhook::new(http),
            timeout,
        })
    }

    /// One attempt of one delivery: Ok once the channel accepted it, or why not.
    pub async fn send(&self, claimed: &Claimed) -> Result<(), String> {
        let attempt = async {
            match claimed.channel {
                Channel::Email => self.email.send(claimed).await,
                Channel::Sms => self.sms.send(claimed).await,
                Channel::Webhook => self.webhook.send(claimed).await,
                Channel::Unspecified => Err("delivery has no channel".to_owned()),
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
        }
    }
}

/// "2 tickets for show-1 (order ord-…): A-1-1, A-1-2", the line every channel starts with.
pub fn summary(confirmation: &proto::v1::EnqueueRequest) -> String {
    let seats: Vec<&str> = confirmation
        .seats
        .iter()
        .map(|s| s.seat_id.as_str())
        .collect();
    let count = confirmation.tickets.len().max(seats.len());
    format!(
        "{count} ticket{} for {} (order {}): {}",
        if count == 1 { "" } else { "s" },
        confirmation.event_id,
        confirmation.order_id,
        seats.join(", ")
    )
}

/// "123.00 EUR".
pub fn money(cents: i64, currency: &str) -> String {
    format!("{}.{:02} {currency}", cents / 100, (cents % 100).abs())
}

/// reqwest's error with its causes ("error sending request: connection refused").
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
