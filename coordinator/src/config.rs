use std::net::SocketAddr;

use server_kit::ServerOptions;

/// The coordinator's configuration: flags with `TICKETDROP_COORDINATOR_*` env fallbacks
/// and defaults that work on the local stack.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "coordinator",
    version,
    about = "TicketDrop transaction coordinator"
)]
pub struct Config {
    /// Address to serve gRPC on; port 0 picks a free port.
    #[arg(
        long,
        env = "TICKETDROP_COORDINATOR_LISTEN",
        default_value = "127.0.0.1:50050"
    )]
    pub listen: SocketAddr,

    /// PostgreSQL URL of the coordinator's transaction log.
    #[arg(
        long,
        env = "TICKETDROP_COORDINATOR_DATABASE_URL",
        default_value = "postgres://ticketdrop@127.0.0.1:55432/coordinator"
    )]
    pub database_url: String,

    /// Most PostgreSQL connections the service opens.
    #[arg(long, env = "TICKETDROP_COORDINATOR_POOL_SIZE", default_value_t = 32)]
    pub pool_size: usize,

    /// Redis URL for the lease protocol's locks and fencing-token counter.
    #[arg(
        long,
        env = "TICKETDROP_REDIS_URL",
        default_value = "redis://127.0.0.1:56379"
    )]
    pub redis_url: String,

    /// inventory-pg's gRPC endpoint.
    #[arg(
        long,
        env = "TICKETDROP_INVENTORY_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    pub inventory_endpoint: String,

    /// orders-dynamo's gRPC endpoint.
    #[arg(
        long,
        env = "TICKETDROP_ORDERS_ENDPOINT",
        default_value = "http://127.0.0.1:50052"
    )]
    pub orders_endpoint: String,

    /// payments' gRPC endpoint.
    #[arg(
        long,
        env = "TICKETDROP_PAYMENTS_ENDPOINT",
        default_value = "http://127.0.0.1:50053"
    )]
    pub payments_endpoint: String,

    /// Attempts to reach PostgreSQL and Redis at start (with backoff) before giving up.
    #[arg(long, env = "TICKETDROP_CONNECT_ATTEMPTS", default_value_t = 20)]
    pub connect_attempts: u32,

    #[command(flatten)]
    pub server: ServerOptions,
}
