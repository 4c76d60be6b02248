//! The three ways a confirmation reaches the buyer. Each channel sends one delivery
//! once; retries, backoff and the ceiling are the dispatcher's.

pub mod email;
pub mod sms;
pub mod webhook;

use std::time::Duration;

use proto::v1::Channel;

use crate::config::Config;
use crate::shows::Show;
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

    /// One attempt of one delivery of a confirmation for `show`: Ok once the channel
    /// accepted it, or why not.
    pub async fn send(&self, claimed: &Claimed, show: &Show) -> Result<(), String> {
        let attempt = async {
            match claimed.channel {
                Channel::Email => self.email.send(claimed, show).await,
                Channel::Sms => self.sms.send(claimed, show).await,
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

/// "2 tickets for Midnight Lanterns, Sun 17 Mar 2030, 17:46 UTC, at Harbour Hall", the
/// line every channel starts with: the event as the fan knows it (ids stay in the
/// details).
pub fn summary(confirmation: &proto::v1::EnqueueRequest, show: &Show) -> String {
    let count = confirmation.tickets.len().max(confirmation.seats.len());
    format!(
        "{count} ticket{} for {}, at {}",
        if count == 1 { "" } else { "s" },
        show.title(),
        show.venue
    )
}

/// "Section A, row 1, seat 3; Section A, row 1, seat 4".
pub fn seats(confirmation: &proto::v1::EnqueueRequest) -> String {
    confirmation
        .seats
        .iter()
        .map(|s| proto::seat_label(&s.seat_id))
        .collect::<Vec<_>>()
        .join("; ")
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
