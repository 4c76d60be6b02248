use std::net::SocketAddr;
use std::time::Duration;

use server_kit::ServerOptions;

/// The waiting room's configuration: flags with `TICKETDROP_*` env fallbacks and defaults
/// that work on the local stack.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "waiting-room",
    version,
    about = "TicketDrop waiting room: fair admission in front of a drop, in Redis"
)]
pub struct Config {
    /// Address to serve gRPC on; port 0 picks a free port.
    #[arg(
        long,
        env = "TICKETDROP_WAITING_ROOM_LISTEN",
        default_value = "127.0.0.1:50054"
    )]
    pub listen: SocketAddr,

    /// Redis URL: every room, queue and admission lives there.
    #[arg(
        long,
        env = "TICKETDROP_REDIS_URL",
        default_value = "redis://127.0.0.1:56379"
    )]
    pub redis_url: String,

    /// Prefix of every Redis key the rooms use.
    #[arg(
        long,
        env = "TICKETDROP_WAITING_ROOM_KEY_PREFIX",
        default_value = "room"
    )]
    pub key_prefix: String,

    /// inventory-pg's gRPC endpoint, for seat counts.
    #[arg(
        long,
        env = "TICKETDROP_INVENTORY_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    pub inventory_endpoint: String,

    /// Key that signs admission tokens (HS256).
    #[arg(
        long,
        env = "TICKETDROP_ADMISSION_KEY",
        default_value = "ticketdrop-local-admission-key",
        hide_default_value = true
    )]
    pub admission_key: String,

    /// How often the admission loop runs when nothing wakes it (lapsed admissions).
    #[arg(long, env = "TICKETDROP_WAITING_ROOM_TICK_MS", default_value_t = 50)]
    pub tick_ms: u64,

    /// The coordinator (or several of one log, comma-separated): asked whether a
    /// purchase whose lease passed without a release has ended.
    #[arg(
        long,
        env = "TICKETDROP_COORDINATOR_ENDPOINT",
        default_value = "http://127.0.0.1:50050"
    )]
    pub coordinator_endpoint: String,

    /// How long a purchase's claim holds its slot before the room asks the coordinator
    /// whether the purchase ended (it keeps the slot while the purchase is in flight).
    #[arg(
        long,
        env = "TICKETDROP_WAITING_ROOM_PURCHASE_LEASE_SECS",
        default_value_t = 120
    )]
    pub purchase_lease_secs: u64,

    /// How long past its expiry an unused admission keeps its slot, for a purchase the
    /// coordinator received in time and has not claimed yet (its queue, its retries).
    #[arg(
        long,
        env = "TICKETDROP_WAITING_ROOM_CLAIM_GRACE_SECS",
        default_value_t = 30
    )]
    pub claim_grace_secs: u64,

    /// How often a waiting fan's stream re-reads their position.
    #[arg(
        long,
        env = "TICKETDROP_WAITING_ROOM_POSITION_INTERVAL_MS",
        default_value_t = 2_000
    )]
    pub position_interval_ms: u64,

    /// Attempts to reach Redis at start (with backoff) before giving up.
    #[arg(long, env = "TICKETDROP_CONNECT_ATTEMPTS", default_value_t = 20)]
    pub connect_attempts: u32,

    #[command(flatten)]
    pub server: ServerOptions,

    #[command(flatten)]
    pub rate_limits: server_kit::rate::RateLimitOptions,
}

impl Config {
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms.max(1))
    }

    pub fn purchase_lease(&self) -> Duration {
        Duration::from_secs(self.purchase_lease_secs.max(1))
    }

    pub fn claim_grace(&self) -> Duration {
        Duration::from_secs(self.claim_grace_secs)
    }

    pub fn position_interval(&self) -> Duration {
        Duration::from_millis(self.position_interval_ms.max(50))
    }
}
