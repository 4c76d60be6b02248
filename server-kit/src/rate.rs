//! Rate limits on the calls a fan can repeat at will (Purchase, Join): a token bucket
//! (GCRA, the `governor` crate) per user and per client address, for each limited RPC.
//!
//! In process rather than in Redis: the check costs no round trip on the hot path, and
//! each instance enforces its own share (the mesh runs one of each service). Operators
//! and the mesh itself are not limited: the limits protect the service from its public
//! callers. A refused call answers RESOURCE_EXHAUSTED with a `google.rpc.RetryInfo`
//! saying when the bucket has room again, and does nothing.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use proto::v1::ErrorReason;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::auth::Caller;
use proto::error::ERROR_DOMAIN;

/// The limits, flattened into the configuration of the services that apply them.
#[derive(Debug, Clone, clap::Args)]
pub struct RateLimitOptions {
    /// Calls per second one user may make to each limited RPC; 0 turns the limit off.
    #[arg(long, env = "TICKETDROP_RATE_LIMIT_USER_PER_SEC", default_value_t = 5)]
    pub rate_limit_user_per_sec: u32,

    /// How many calls one user may make at once before the per-second pace applies.
    #[arg(long, env = "TICKETDROP_RATE_LIMIT_USER_BURST", default_value_t = 10)]
    pub rate_limit_user_burst: u32,

    /// Calls per second from one client address to each limited RPC; 0 turns the limit
    /// off (as the local stack does: every fan of a local drop comes from 127.0.0.1).
    #[arg(
        long,
        env = "TICKETDROP_RATE_LIMIT_ADDRESS_PER_SEC",
        default_value_t = 200
    )]
    pub rate_limit_address_per_sec: u32,

    /// How many calls one address may make at once before the per-second pace applies.
    #[arg(
        long,
        env = "TICKETDROP_RATE_LIMIT_ADDRESS_BURST",
        default_value_t = 400
    )]
    pub rate_limit_address_burst: u32,
}

/// How often buckets that have refilled are forgotten.
const FORGET_EVERY: Duration = Duration::from_secs(30);

type Keyed<K> = DefaultKeyedRateLimiter<K>;

/// The per-user and per-address buckets of a service.
pub struct RateLimits {
    user: Option<Keyed<(&'static str, String)>>,
    address: Option<Keyed<(&'static str, IpAddr)>>,
}

impl RateLimits {
    /// The limits `options` describe; a task forgets full buckets while `self` lives.
    pub fn new(options: &RateLimitOptions) -> Arc<Self> {
        let limits = Arc::new(Self {
            user: limiter(
                options.rate_limit_user_per_sec,
                options.rate_limit_user_burst,
            ),
            address: limiter(
                options.rate_limit_address_per_sec,
                options.rate_limit_address_burst,
            ),
        });
        let weak = Arc::downgrade(&limits);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FORGET_EVERY);
            loop {
                tick.tick().await;
                let Some(limits) = weak.upgrade() else { return };
                if let Some(user) = &limits.user {
                    user.retain_recent();
                    user.shrink_to_fit();
                }
                if let Some(address) = &limits.address {
                    address.retain_recent();
                    address.shrink_to_fit();
                }
            }
        });
        limits
    }

    /// Takes one call of `method` by `caller` from `address` out of their buckets, or
    /// RESOURCE_EXHAUSTED with the wait before the next call may pass.
    pub fn check(
        &self,
        method: &'static str,
        caller: &Caller,
        address: Option<IpAddr>,
    ) -> Result<(), Status> {
        if caller.admin || caller.service {
            return Ok(());
        }
        if let Some(user) = &self.user {
            take(user, (method, caller.subject.clone()), method, "user")?;
        }
        if let (Some(limiter), Some(address)) = (&self.address, address) {
            take(limiter, (method, address), method, "address")?;
        }
        Ok(())
    }
}

fn limiter<K: Hash + Eq + Clone>(per_sec: u32, burst: u32) -> Option<Keyed<K>> {
    let per_sec = NonZeroU32::new(per_sec)?;
    let burst = NonZeroU32::new(burst.max(1)).expect("at least 1");
    Some(RateLimiter::keyed(
        Quota::per_second(per_sec).allow_burst(burst),
    ))
}

fn take<K: Hash + Eq + Clone>(
    limiter: &Keyed<K>,
    key: K,
    method: &'static str,
    limit: &'static str,
) -> Result<(), Status> {
    limiter.check_key(&key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        metrics::counter!("ticketdrop_rate_limited_total", "method" => method, "limit" => limit)
            .increment(1);
        refused(method, limit, wait)
    })
}

fn refused(method: &str, limit: &'static str, wait: Duration) -> Status {
    let mut details = ErrorDetails::with_retry_info(Some(wait));
    details.set_error_info(
        ErrorReason::RateLimited.name(),
        ERROR_DOMAIN,
        HashMap::from([
            ("limit".to_owned(), limit.to_owned()),
            ("method".to_owned(), method.to_owned()),
        ]),
    );
    Status::with_error_details(
        Code::ResourceExhausted,
        format!(
            "too many {method} calls from this {limit}; retry in {} ms",
            wait.as_millis().max(1)
        ),
        details,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fan(subject: &str) -> Caller {
        Caller {
            subject: subject.to_owned(),
            admin: false,
            service: false,
            expires_at: i64::MAX,
        }
    }

    #[tokio::test]
    async fn a_burst_passes_then_the_next_call_waits_and_operators_never_do() {
        let limits = RateLimits::new(&RateLimitOptions {
            rate_limit_user_per_sec: 1,
            rate_limit_user_burst: 2,
            rate_limit_address_per_sec: 0,
            rate_limit_address_burst: 0,
        });
        let ana = fan("ana");
        assert!(limits.check("Join", &ana, None).is_ok());
        assert!(limits.check("Join", &ana, None).is_ok());
        let refused = limits.check("Join", &ana, None).expect_err("third");
        assert_eq!(refused.code(), Code::ResourceExhausted);
        let wait = refused
            .get_details_retry_info()
            .and_then(|info| info.retry_delay)
            .expect("retry info");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Each RPC and each user has its own bucket.
        assert!(limits.check("Purchase", &ana, None).is_ok());
        assert!(limits.check("Join", &fan("bob"), None).is_ok());
        let operator = Caller {
            admin: true,
            ..fan("ops")
        };
        for _ in 0..10 {
            assert!(limits.check("Join", &operator, None).is_ok());
        }
    }
}
