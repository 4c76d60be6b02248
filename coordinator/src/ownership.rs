//! Which purchases this coordinator owns, as far as this process knows.
//!
//! The log is the authority: a purchase's row names its owner (a coordinator instance),
//! an epoch that grows at every takeover, and when the ownership lapses unless renewed.
//! Every write of the purchase's rows is conditional on the writer's (owner, epoch), so
//! a coordinator that lost a purchase cannot write it (see `log`). This module is the
//! process's side of it:
//!
//! - a purchase is *held* here while a task drives it, at the epoch the log gave it;
//! - one task renews every held purchase in one statement every quarter of the ttl, and
//!   marks lost the ones the log no longer gives this coordinator;
//! - before each participant call a run checks that its ownership is current by the
//!   local monotonic clock (the last renewal + ttl); when it is not, it renews that one
//!   purchase in the log before calling, and stops if another coordinator has it.
//!
//! So a coordinator paused past its ownership (SIGSTOP, a stalled host) or cut off from
//! the log calls no participant for a purchase it may have lost, and its late writes of
//! the log are refused: it answers its caller "unknown outcome" and the owner finishes
//! the purchase.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The purchases held by this process.
pub struct Ownership {
    ttl: Duration,
    held: Mutex<HashMap<String, Held>>,
}

struct Held {
    epoch: i64,
    /// Until when this process may act on the purchase without renewing: when the last
    /// renewal was sent (before the log stamped it), plus the ttl.
    valid_until: Instant,
    lost: bool,
}

/// A purchase held by a task of this process, at one epoch; let go on drop.
pub struct Owned {
    pub txid: String,
    pub epoch: i64,
    registry: Arc<Ownership>,
}

impl Ownership {
    pub fn new(ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            ttl,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// How long an ownership lasts without renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Holds `txid`, which the log gave this coordinator at `epoch` in a statement sent
    /// at `sent`. None when a task of this process holds it already at this epoch or a
    /// newer one; a task holding an older epoch has lost it (it finds out when it next
    /// writes or calls).
    pub fn hold(self: &Arc<Self>, txid: &str, epoch: i64, sent: Instant) -> Option<Owned> {
        let mut held = self.held();
        if let Some(current) = held.get(txid)
            && current.epoch >= epoch
        {
            return None;
        }
        held.insert(
            txid.to_owned(),
            Held {
                epoch,
                valid_until: sent + self.ttl,
                lost: false,
            },
        );
        crate::metrics::in_flight(held.len());
        Some(Owned {
            txid: txid.to_owned(),
            epoch,
            registry: self.clone(),
        })
    }

    /// Whether a task of this process drives `txid` now.
    pub fn is_held(&self, txid: &str) -> bool {
        self.held().contains_key(txid)
    }

    /// Every purchase held and not lost, with its epoch: what the renewal sends.
    pub fn to_renew(&self) -> Vec<(String, i64)> {
        self.held()
            .iter()
            .filter(|(_, h)| !h.lost)
            .map(|(txid, h)| (txid.clone(), h.epoch))
            .collect()
    }

    /// The log renewed `txid` at `epoch` in a statement sent at `sent`.
    pub fn renewed(&self, txid: &str, epoch: i64, sent: Instant) {
        if let Some(held) = self.held().get_mut(txid)
            && held.epoch == epoch
        {
            held.valid_until = held.valid_until.max(sent + self.ttl);
        }
    }

    /// The log no longer gives `txid` to this coordinator at `epoch`.
    pub fn lost(&self, txid: &str, epoch: i64) {
        if let Some(held) = self.held().get_mut(txid)
            && held.epoch == epoch
            && !held.lost
        {
            held.lost = true;
            tracing::warn!(
                txid,
                epoch,
                "ownership lost: another coordinator drives the purchase now"
            );
            crate::metrics::ownership_lost();
        }
    }
}

/// Whether a held purchase may be acted on now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Renewed within the ttl: act.
    Current,
    /// Not renewed within the ttl (this process was paused, or the log is slow to
    /// answer): renew in the log before acting.
    Unconfirmed,
    /// Another coordinator has it: never act again.
    Lost,
}

impl Owned {
    pub fn standing(&self) -> Standing {
        match self.registry.held().get(&self.txid) {
            Some(held) if held.epoch == self.epoch && !held.lost => {
                if Instant::now() < held.valid_until {
                    Standing::Current
                } else {
                    Standing::Unconfirmed
                }
            }
            _ => Standing::Lost,
        }
    }

    pub fn is_lost(&self) -> bool {
        self.standing() == Standing::Lost
    }

    pub fn renewed(&self, sent: Instant) {
        self.registry.renewed(&self.txid, self.epoch, sent);
    }

    pub fn lose(&self) {
        self.registry.lost(&self.txid, self.epoch);
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        let mut held = self.registry.held();
        if held.get(&self.txid).is_some_and(|h| h.epoch == self.epoch) {
            held.remove(&self.txid);
        }
        crate::metrics::in_flight(held.len());
    }
}

/// Renews every held purchase every quarter of the ttl, in one statement, on the log's
/// own connection for ownership (never queued behind the purchases' statements).
pub async fn keep_renewed(ownership: Arc<Ownership>, log: crate::log::Log) {
    let mut ticker = tokio::time::interval(ownership.ttl() / 4);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let held = ownership.to_renew();
        if held.is_empty() {
            continue;
        }
        let sent = Instant::now();
        match log.renew(&held).await {
            Ok(answers) => {
                for (txid, epoch, renewed) in answers {
                    if renewed {
                        ownership.renewed(&txid, epoch, sent);
                    } else {
                        ownership.lost(&txid, epoch);
                        log.ownership_event(&txid, epoch, "refused", "renewal")
                            .await;
                    }
                }
            }
            // Not renewed: the purchases lapse locally at their ttl and are renewed one
            // by one (or found lost) before their next participant call.
            Err(error) => tracing::warn!(%error, held = held.len(), "could not renew ownership"),
        }
    }
}
