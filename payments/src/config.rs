use std::net::SocketAddr;
use std::time::Duration;

use proto::v1::{FaultSettings, LatencyDistribution};
use server_kit::ServerOptions;

/// payments' configuration: flags with `TICKETDROP_PAYMENTS_*` env fallbacks and defaults
/// that work on the local stack. The fault flags set the simulated card network at
/// start; SetFaults changes them at runtime.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "payments",
    version = server_kit::version!(),
    about = "TicketDrop payments on PostgreSQL"
)]
pub struct Config {
    /// Address to serve gRPC on; port 0 picks a free port.
    #[arg(
        long,
        env = "TICKETDROP_PAYMENTS_LISTEN",
        default_value = "127.0.0.1:50053"
    )]
    pub listen: SocketAddr,

    /// PostgreSQL URL of the payments database.
    #[arg(
        long,
        env = "TICKETDROP_PAYMENTS_DATABASE_URL",
        default_value = "postgres://ticketdrop@127.0.0.1:55432/payments"
    )]
    pub database_url: String,

    /// Most PostgreSQL connections the service opens.
    #[arg(long, env = "TICKETDROP_PAYMENTS_POOL_SIZE", default_value_t = 32)]
    pub pool_size: usize,

    /// Attempts to reach the database at start (with backoff) before giving up.
    #[arg(long, env = "TICKETDROP_CONNECT_ATTEMPTS", default_value_t = 20)]
    pub connect_attempts: u32,

    /// Probability that a good card is declined ("card_declined"); the lab's seed
    /// scenario is 0.2.
    #[arg(long, env = "TICKETDROP_PAYMENTS_DECLINE_RATE", default_value_t = 0.0)]
    pub decline_rate: f64,

    /// Shortest added card-network latency.
    #[arg(long, env = "TICKETDROP_PAYMENTS_LATENCY_MIN_MS", default_value_t = 0)]
    pub latency_min_ms: u64,

    /// Longest added card-network latency (uniform between min and max).
    #[arg(long, env = "TICKETDROP_PAYMENTS_LATENCY_MAX_MS", default_value_t = 0)]
    pub latency_max_ms: u64,

    /// Probability that a card-network call hangs until the caller's deadline.
    #[arg(
        long,
        env = "TICKETDROP_PAYMENTS_TIMEOUT_PROBABILITY",
        default_value_t = 0.0
    )]
    pub timeout_probability: f64,

    /// Probability that a write commits and its response is then lost.
    #[arg(
        long,
        env = "TICKETDROP_PAYMENTS_LOSE_RESPONSE_PROBABILITY",
        default_value_t = 0.0
    )]
    pub lose_response_probability: f64,

    /// How long an authorization lives before the sweeper voids it (default 7 days).
    #[arg(
        long,
        env = "TICKETDROP_PAYMENTS_AUTHORIZATION_TTL_SECS",
        default_value_t = 604_800
    )]
    pub authorization_ttl_secs: i64,

    /// How often the sweeper looks for expired authorizations.
    #[arg(
        long,
        env = "TICKETDROP_PAYMENTS_SWEEP_INTERVAL_MS",
        default_value_t = 1_000
    )]
    pub sweep_interval_ms: u64,

    /// How long idempotency keys are kept (at least 24 hours).
    #[arg(long, env = "TICKETDROP_PAYMENTS_KEY_RETENTION_HOURS", default_value_t = 24,
          value_parser = clap::value_parser!(i32).range(24..))]
    pub key_retention_hours: i32,

    #[command(flatten)]
    pub server: ServerOptions,
}

impl Config {
    pub fn faults(&self) -> FaultSettings {
        let ms = |ms: u64| prost_types::Duration {
            seconds: i64::try_from(ms / 1_000).unwrap_or(i64::MAX),
            nanos: i32::try_from((ms % 1_000) * 1_000_000).expect("below one second"),
        };
        FaultSettings {
            decline_rate: self.decline_rate,
            decline_every: 0,
            latency: (self.latency_max_ms > 0).then(|| LatencyDistribution {
                min: Some(ms(self.latency_min_ms)),
                max: Some(ms(self.latency_max_ms)),
            }),
            timeout_probability: self.timeout_probability,
            lose_response_probability: self.lose_response_probability,
        }
    }

    pub fn sweep_interval(&self) -> Duration {
        Duration::from_millis(self.sweep_interval_ms.max(1))
    }
}
