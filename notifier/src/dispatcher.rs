//! The dispatcher: claims due deliveries, sends each once through its channel, and
//! records how the attempt ended. A failed attempt is retried after an exponential
//! backoff with jitter; at the ceiling of attempts the delivery is dead-lettered. A
//! notifier killed mid-attempt leaves the claim behind: the delivery is due again once
//! the claim passes, with the same delivery id, so receivers can drop the repeat.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use proto::v1::DeliveryState;
use tokio::sync::Notify;

use crate::channels::Channels;
use crate::shows::Shows;
use crate::store::{Claimed, Ended, Store};

/// When a failed delivery is tried again, and how often at most.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: i32,
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (from 1): the mesh's backoff.
    pub fn delay(&self, attempt: i32) -> Duration {
        server_kit::retry::backoff(self.base, self.max, u32::try_from(attempt).unwrap_or(1))
    }
}

pub struct Dispatcher {
    pub store: Store,
    pub channels: Arc<Channels>,
    /// The events as fans know them, for the confirmations' text.
    pub shows: Arc<Shows>,
    pub policy: RetryPolicy,
    pub poll: Duration,
    pub claim_ms: i64,
    pub concurrency: usize,
    /// Woken by Enqueue and RetryDelivery, so new work does not wait for the poll.
    pub wake: Arc<Notify>,
}

/// Attempts at recording one attempt's end before leaving it to the claim's expiry.
const RECORD_ATTEMPTS: u32 = 5;

impl Dispatcher {
    pub async fn run(self) {
        let mut idle_errors = 0u32;
        loop {
            if let Err(error) = self.store.dead_letter_abandoned().await.map(|n| {
                if n > 0 {
                    tracing::error!(
                        deliveries = n,
                        "dead-lettered deliveries whose last attempt never ended"
                    );
                }
            }) {
                tracing::warn!(%error, "checking for abandoned deliveries failed");
            }
            let claimed = match self
                .store
                .claim_due(self.concurrency as i64, self.claim_ms)
                .await
            {
                Ok(claimed) => {
                    idle_errors = 0;
                    claimed
                }
                Err(error) => {
                    // The database is away: back off (at most 5 s) and look again.
                    idle_errors += 1;
                    let wait = (self.poll * 2u32.saturating_pow(idle_errors.min(5)))
                        .min(Duration::from_secs(5));
                    tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "claiming deliveries failed");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            if claimed.is_empty() {
                let _ = tokio::time::timeout(self.poll, self.wake.notified()).await;
                continue;
            }
            join_all(claimed.into_iter().map(|c| self.attempt(c))).await;
        }
    }

    async fn attempt(&self, claimed: Claimed) {
        let result = match self.shows.get(&claimed.confirmation.event_id).await {
            Ok(show) => self.channels.send(&claimed, &show).await,
            Err(error) => Err(error),
        };
        let ended = match &result {
            Ok(()) => Ended::Delivered,
            Err(error) => Ended::Failed {
                error: error.clone(),
                retry_in: self.policy.delay(claimed.attempt),
            },
        };
        let retry_in = match &ended {
            Ended::Failed { retry_in, .. } => retry_in.as_millis() as u64,
            Ended::Delivered => 0,
        };
        for tries in 1..=RECORD_ATTEMPTS {
            match self.store.record(&claimed, ended.clone()).await {
                Ok(state) => {
                    log(&claimed, state, result.as_ref().err(), retry_in);
                    return;
                }
                Err(error) if tries < RECORD_ATTEMPTS => {
                    tracing::warn!(delivery = %claimed.delivery_id, %error, tries, "recording an attempt failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 << tries)).await;
                }
                Err(error) => {
                    tracing::error!(
                        delivery = %claimed.delivery_id, %error,
                        "recording an attempt failed; the delivery is due again when its claim passes"
                    );
                }
            }
        }
    }
}

fn log(claimed: &Claimed, state: DeliveryState, error: Option<&String>, retry_in_ms: u64) {
    let outcome = match (state, error) {
        (DeliveryState::Delivered, _) => "delivered",
        (DeliveryState::DeadLettered, _) => "dead_lettered",
        _ => "failed",
    };
    metrics::counter!("ticketdrop_notifier_attempts_total",
        "channel" => claimed.channel.as_str_name().trim_start_matches("CHANNEL_").to_lowercase(),
        "outcome" => outcome)
    .increment(1);
    let (delivery, txid, channel, attempt) = (
        &claimed.delivery_id,
        &claimed.txid,
        claimed.channel.as_str_name(),
        claimed.attempt,
    );
    match (state, error) {
        (DeliveryState::Delivered, _) => {
            tracing::info!(%delivery, %txid, channel, attempt, "delivered")
        }
        (DeliveryState::DeadLettered, Some(error)) => tracing::error!(
            %delivery, %txid, channel, attempt, %error,
            "dead-lettered after its last attempt; `ticketdrop notifications retry` re-drives it"
        ),
        (_, Some(error)) => tracing::warn!(
            %delivery, %txid, channel, attempt, %error, retry_in_ms, "delivery attempt failed"
        ),
        (_, None) => {}
    }
}
