//! The one backoff every retry loop of the mesh waits by.

use std::time::Duration;

/// The wait after failed attempt `attempt` (from 1): `base`·2^(attempt−1), capped at
/// `max`, then a uniformly random point of its upper half, so callers that failed
/// together do not retry together.
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let full = base
        .saturating_mul(1 << attempt.saturating_sub(1).min(30))
        .min(max);
    full / 2 + full.mul_f64(fastrand::f64() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let (base, max) = (Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..100 {
            for (attempt, full) in [(1, 1), (2, 2), (3, 4), (7, 60), (40, 60)] {
                let delay = backoff(base, max, attempt);
                let full = Duration::from_secs(full);
                assert!(delay >= full / 2 && delay <= full, "{attempt}: {delay:?}");
            }
        }
    }
}
