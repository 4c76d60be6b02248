//! The simulated card network: test cards with fixed behaviour, plus faults the lab
//! turns on and off at runtime (decline rate, latency, timeouts, lost responses).

use std::sync::RwLock;
use std::time::Duration;

use proto::v1::{FaultSettings, LatencyDistribution};
use server_kit::status::FieldError;

/// Longest a "timing out" call hangs before it gives up by itself.
const HANG_CEILING: Duration = Duration::from_secs(60);
/// How long `tok_slow` takes.
const SLOW_CARD: Duration = Duration::from_millis(1_500);

/// What a test card is and does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Card {
    pub brand: &'static str,
    pub last4: &'static str,
    pub behaviour: Behaviour,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Approve,
    Decline(&'static str),
    Slow,
    Hang,
}

/// The test cards, by token.
pub fn card(token: &str) -> Result<Card, FieldError> {
    let card = |brand, last4, behaviour| Card {
        brand,
        last4,
        behaviour,
    };
    Ok(match token {
        "tok_visa" => card("visa", "4242", Behaviour::Approve),
        "tok_mastercard" => card("mastercard", "4444", Behaviour::Approve),
        "tok_amex" => card("amex", "0005", Behaviour::Approve),
        "tok_declined" => card("visa", "0002", Behaviour::Decline("card_declined")),
        "tok_insufficient_funds" => card("visa", "9995", Behaviour::Decline("insufficient_funds")),
        "tok_slow" => card("visa", "1881", Behaviour::Slow),
        "tok_timeout" => card("visa", "0341", Behaviour::Hang),
        other => {
            return Err(FieldError::new(
                "card_token",
                format!(
                    "{other} is not a test card; use tok_visa, tok_mastercard, tok_amex, \
                     tok_declined, tok_insufficient_funds, tok_slow or tok_timeout"
                ),
            ));
        }
    })
}

/// The network's answer to an authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Approved,
    Declined(&'static str),
    /// The call hung past its ceiling.
    TimedOut,
}

/// The fault settings in force, replaceable at runtime.
#[derive(Debug, Default)]
pub struct CardNetwork {
    faults: RwLock<FaultSettings>,
    /// Authorizations of good cards since the settings were set (for decline_every).
    authorizations: std::sync::atomic::AtomicU64,
}

impl CardNetwork {
    pub fn new(faults: FaultSettings) -> Self {
        Self {
            faults: RwLock::new(faults),
            authorizations: Default::default(),
        }
    }

    pub fn faults(&self) -> FaultSettings {
        *self.faults.read().expect("fault settings lock")
    }

    pub fn set_faults(&self, faults: FaultSettings) -> Result<FaultSettings, FieldError> {
        let faults = validate(faults)?;
        *self.faults.write().expect("fault settings lock") = faults;
        self.authorizations
            .store(0, std::sync::atomic::Ordering::SeqCst);
        tracing::info!(?faults, "card network faults changed");
        Ok(faults)
    }

    /// Asks the network to authorize `card`, with the configured faults.
    pub async fn authorize(&self, card: &Card) -> Answer {
        let faults = self.faults();
        tokio::time::sleep(latency(&faults)).await;
        if card.behaviour == Behaviour::Hang || chance(faults.timeout_probability) {
            tokio::time::sleep(HANG_CEILING).await;
            return Answer::TimedOut;
        }
        match card.behaviour {
            Behaviour::Decline(code) => Answer::Declined(code),
            Behaviour::Slow => {
                tokio::time::sleep(SLOW_CARD).await;
                Answer::Approved
            }
            _ if self.nth_declined(faults.decline_every) || chance(faults.decline_rate) => {
                Answer::Declined("card_declined")
            }
            _ => Answer::Approved,
        }
    }

    /// Counts an authorization of a good card: whether it is one of every `every`th.
    fn nth_declined(&self, every: u32) -> bool {
        let n = self
            .authorizations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        every > 0 && n.is_multiple_of(u64::from(every))
    }

    /// Whether to lose the response of a write that has just committed.
    pub fn lose_response(&self) -> bool {
        chance(self.faults().lose_response_probability)
    }

    /// Latency of a network call that is not an authorization (capture, void, refund).
    pub async fn delay(&self) {
        tokio::time::sleep(latency(&self.faults())).await;
    }
}

fn chance(probability: f64) -> bool {
    probability > 0.0 && fastrand::f64() < probability
}

fn latency(faults: &FaultSettings) -> Duration {
    let Some(range) = &faults.latency else {
        return Duration::ZERO;
    };
    let millis = |d: &Option<prost_types::Duration>| {
        d.as_ref().map_or(0, |d| {
            d.seconds.max(0) as u64 * 1_000 + d.nanos.max(0) as u64 / 1_000_000
        })
    };
    let (min, max) = (millis(&range.min), millis(&range.max));
    if max <= min {
        return Duration::from_millis(min);
    }
    Duration::from_millis(fastrand::u64(min..=max))
}

/// Probabilities in [0, 1], latency min <= max and at most a minute.
pub fn validate(faults: FaultSettings) -> Result<FaultSettings, FieldError> {
    for (field, p) in [
        ("faults.decline_rate", faults.decline_rate),
        ("faults.timeout_probability", faults.timeout_probability),
        (
            "faults.lose_response_probability",
            faults.lose_response_probability,
        ),
    ] {
        if !(0.0..=1.0).contains(&p) {
            return Err(FieldError::new(
                field,
                format!("must be between 0 and 1, got {p}"),
            ));
        }
    }
    if let Some(LatencyDistribution { min, max }) = &faults.latency {
        let to_ms = |d: &Option<prost_types::Duration>, field: &str| {
            let d = d.unwrap_or_default();
            server_kit::convert::from_duration(field, &d).map(|d| d.as_millis())
        };
        let (min, max) = (
            to_ms(min, "faults.latency.min")?,
            to_ms(max, "faults.latency.max")?,
        );
        if max < min {
            return Err(FieldError::new(
                "faults.latency.max",
                "must be >= faults.latency.min",
            ));
        }
        if max > 60_000 {
            return Err(FieldError::new(
                "faults.latency.max",
                "must be at most 60 s",
            ));
        }
    }
    Ok(faults)
}
