use std::net::SocketAddr;

use server_kit::ServerOptions;

/// orders-dynamo's configuration: flags with `TICKETDROP_ORDERS_*` env fallbacks and
/// defaults that work on the local stack (DynamoDB Local takes any credentials).
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "orders-dynamo",
    version = server_kit::version!(),
    about = "TicketDrop orders and tickets on DynamoDB"
)]
pub struct Config {
    /// Address to serve gRPC on; port 0 picks a free port.
    #[arg(
        long,
        env = "TICKETDROP_ORDERS_LISTEN",
        default_value = "127.0.0.1:50052"
    )]
    pub listen: SocketAddr,

    /// DynamoDB endpoint.
    #[arg(
        long,
        env = "TICKETDROP_DYNAMODB_ENDPOINT",
        default_value = "http://127.0.0.1:58000"
    )]
    pub dynamodb_endpoint: String,

    /// DynamoDB region.
    #[arg(long, env = "TICKETDROP_DYNAMODB_REGION", default_value = "us-east-1")]
    pub dynamodb_region: String,

    /// DynamoDB access key id.
    #[arg(
        long,
        env = "TICKETDROP_DYNAMODB_ACCESS_KEY_ID",
        default_value = "ticketdrop"
    )]
    pub dynamodb_access_key_id: String,

    /// DynamoDB secret access key.
    #[arg(
        long,
        env = "TICKETDROP_DYNAMODB_SECRET_ACCESS_KEY",
        default_value = "ticketdrop"
    )]
    pub dynamodb_secret_access_key: String,

    /// Table holding orders, seat claims, participant and idempotency items.
    #[arg(long, env = "TICKETDROP_ORDERS_TABLE", default_value = "orders")]
    pub table: String,

    /// Key that signs tickets (HMAC-SHA256); anyone holding it can verify a ticket
    /// offline. The default suits the local stack only.
    #[arg(
        long,
        env = "TICKETDROP_TICKET_KEY",
        default_value = "ticketdrop-local-ticket-key",
        hide_env_values = true
    )]
    pub ticket_key: String,

    /// Most purchases' writes one TransactWriteItems carries (group commit); 1 sends each
    /// write in a transaction of its own.
    #[arg(long, env = "TICKETDROP_ORDERS_GROUP_COMMIT_MAX", default_value_t = 25,
          value_parser = clap::value_parser!(u64).range(1..=100))]
    pub group_commit_max: u64,

    /// Attempts to reach DynamoDB at start (with backoff) before giving up.
    #[arg(long, env = "TICKETDROP_CONNECT_ATTEMPTS", default_value_t = 20)]
    pub connect_attempts: u32,

    /// Create the table unless it exists, wait until it takes writes, and exit without
    /// serving: a deployment's setup job (deploy/kubernetes).
    #[arg(long, env = "TICKETDROP_ORDERS_CREATE_TABLE_ONLY")]
    pub create_table_only: bool,

    #[command(flatten)]
    pub server: ServerOptions,
}
