use std::net::SocketAddr;
use std::time::Duration;

use server_kit::ServerOptions;

/// inventory-pg's configuration: flags with `TICKETDROP_INVENTORY_*` env fallbacks and
/// defaults that work on the local stack.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "inventory-pg",
    version = server_kit::version!(),
    about = "TicketDrop seat inventory on PostgreSQL"
)]
pub struct Config {
    /// Address to serve gRPC on; port 0 picks a free port.
    #[arg(
        long,
        env = "TICKETDROP_INVENTORY_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    pub listen: SocketAddr,

    /// PostgreSQL URL of the inventory database.
    #[arg(
        long,
        env = "TICKETDROP_INVENTORY_DATABASE_URL",
        default_value = "postgres://ticketdrop@127.0.0.1:55432/inventory"
    )]
    pub database_url: String,

    /// Most PostgreSQL connections the service opens.
    #[arg(long, env = "TICKETDROP_INVENTORY_POOL_SIZE", default_value_t = 32)]
    pub pool_size: usize,

    /// Attempts to reach the database at start (with backoff) before giving up.
    #[arg(long, env = "TICKETDROP_CONNECT_ATTEMPTS", default_value_t = 20)]
    pub connect_attempts: u32,

    /// How often the sweeper returns expired holds to AVAILABLE.
    #[arg(
        long,
        env = "TICKETDROP_INVENTORY_SWEEP_INTERVAL_MS",
        default_value_t = 500
    )]
    pub sweep_interval_ms: u64,

    /// Hold duration when HoldSeats gives none.
    #[arg(long, env = "TICKETDROP_INVENTORY_HOLD_TTL_SECS", default_value_t = 60)]
    pub hold_ttl_secs: u64,

    /// Longest a cached seat map is served after it was read (0: GetEvent always reads
    /// the database). Writes through this process invalidate the cache at once; this
    /// bounds how late a map shows writes made through another inventory process.
    #[arg(
        long,
        env = "TICKETDROP_INVENTORY_SEAT_MAP_MAX_AGE_MS",
        default_value_t = 100
    )]
    pub seat_map_max_age_ms: u64,

    #[command(flatten)]
    pub server: ServerOptions,
}

impl Config {
    pub fn sweep_interval(&self) -> Duration {
        Duration::from_millis(self.sweep_interval_ms.max(1))
    }

    pub fn seat_map_max_age(&self) -> Duration {
        Duration::from_millis(self.seat_map_max_age_ms)
    }

    pub fn default_hold_ttl(&self) -> Duration {
        Duration::from_secs(self.hold_ttl_secs)
    }
}
