use std::net::SocketAddr;

use server_kit::ServerOptions;

/// payments' configuration: flags with `TICKETDROP_PAYMENTS_*` env fallbacks and defaults
/// that work on the local stack.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "payments",
    version,
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

    #[command(flatten)]
    pub server: ServerOptions,
}
