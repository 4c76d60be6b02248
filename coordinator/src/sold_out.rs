//! The sold-out fast path. When a best-available purchase got a definitive SOLD_OUT (a
//! participant said so and no other purchase of the event could give a seat back; see
//! `outcome::honest_sold_out`), the event is remembered as sold out for a short window,
//! and best-available purchases for it in that window are answered SOLD_OUT at once:
//! nothing is logged and no participant is called, so a drop's long tail of
//! disappointed fans costs almost nothing. The answer is honest — every seat was sold
//! and nothing was in flight — and it is checked again once the window closes. Named-seat
//! purchases, events with a waiting room and retried idempotency keys never take this
//! path.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proto::v1::ErrorReason;
use tonic::{Code, Status};

#[derive(Debug)]
pub struct SoldOut {
    window: Duration,
    until: Mutex<HashMap<String, Instant>>,
}

impl SoldOut {
    /// A zero window turns the fast path off.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            until: Mutex::new(HashMap::new()),
        }
    }

    /// Notes that inventory just answered SOLD_OUT for the event.
    pub fn remember(&self, event_id: &str) {
        if self.window.is_zero() {
            return;
        }
        let mut until = self.until.lock().expect("sold-out lock");
        let now = Instant::now();
        until.retain(|_, t| *t > now);
        until.insert(event_id.to_owned(), now + self.window);
    }

    /// The answer for a best-available purchase of a recently sold-out event, if any.
    pub fn answer(&self, event_id: &str) -> Option<Status> {
        let until = *self.until.lock().expect("sold-out lock").get(event_id)?;
        let left = until.checked_duration_since(Instant::now())?;
        let age = self.window.saturating_sub(left);
        Some(proto::error::with_reason(
            Code::FailedPrecondition,
            ErrorReason::SoldOut,
            format!(
                "sold out: {event_id} had no seat left {} ms ago; nothing was attempted",
                age.as_millis()
            ),
            [("event_id", event_id.to_owned())],
        ))
    }

    /// Whether `status` is inventory's SOLD_OUT.
    pub fn is_sold_out(status: &Status) -> bool {
        proto::error::Refusal::is(status, ErrorReason::SoldOut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_for_the_window_only() {
        let cache = SoldOut::new(Duration::from_millis(50));
        assert!(cache.answer("e").is_none());
        cache.remember("e");
        let answer = cache.answer("e").expect("sold out");
        assert_eq!(answer.code(), Code::FailedPrecondition);
        assert!(SoldOut::is_sold_out(&answer));
        assert!(cache.answer("other").is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.answer("e").is_none(), "the window closed");
    }

    #[test]
    fn a_zero_window_is_off() {
        let cache = SoldOut::new(Duration::ZERO);
        cache.remember("e");
        assert!(cache.answer("e").is_none());
    }
}
