use std::net::SocketAddr;

use server_kit::ServerOptions;

/// inventory-pg's configuration: flags with `TICKETDROP_INVENTORY_*` env fallbacks and
/// defaults that work on the local stack.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "inventory-pg",
    version,
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

    #[command(flatten)]
    pub server: ServerOptions,
}
