//! SMS through a provider's HTTP API, in the shape of Twilio's Messages resource:
//! `POST {base}/2010-04-01/Accounts/{account}/Messages.json` with the form fields `To`,
//! `From` and `Body`, authenticated by HTTP basic auth (account, token), answered 201.
//! The local stack's provider (scripts/sms-provider.mjs) speaks exactly this and records
//! what it receives; pointing --sms-url at https://api.twilio.com with a real account and
//! token sends real messages. SMS has no idempotency key: a retry after a lost answer can
//! send a second SMS.

use crate::shows::Show;
use crate::store::Claimed;

pub struct Sms {
    http: reqwest::Client,
    url: String,
    account: String,
    token: String,
    from: String,
}

impl Sms {
    pub fn new(http: reqwest::Client, base: &str, account: &str, token: &str, from: &str) -> Self {
        Self {
            http,
            url: format!(
                "{}/2010-04-01/Accounts/{account}/Messages.json",
                base.trim_end_matches('/')
            ),
            account: account.to_owned(),
            token: token.to_owned(),
            from: from.to_owned(),
        }
    }

    pub async fn send(&self, claimed: &Claimed, show: &Show) -> Result<(), String> {
        let confirmation = &claimed.confirmation;
        let body = format!(
            "TicketDrop: {}. {}. Tickets and QR codes are in your email (order {}).",
            super::summary(confirmation, show),
            super::seats(confirmation),
            confirmation.order_id
        );
        let response = self
            .http
            .post(&self.url)
            .basic_auth(&self.account, Some(&self.token))
            .form(&[
                ("To", claimed.target.as_str()),
                ("From", self.from.as_str()),
                ("Body", body.as_str()),
            ])
            .send()
            .await
            .map_err(|e| format!("sms provider: {}", super::describe(&e)))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            let text = response.text().await.unwrap_or_default();
            Err(format!(
                "sms provider answered {status}: {}",
                text.chars().take(200).collect::<String>()
            ))
        }
    }
}
