//! Direct connections to the stores, for the audit: the three PostgreSQL databases,
//! the orders table and Redis. Flags with the services' own env names and local defaults.

use anyhow::Context;
use tokio_postgres::NoTls;

#[derive(Debug, Clone, clap::Args)]
pub struct Stores {
    /// inventory-pg's database.
    #[arg(
        long,
        env = "TICKETDROP_INVENTORY_DATABASE_URL",
        default_value = "postgres://ticketdrop@127.0.0.1:55432/inventory"
    )]
    pub inventory_db: String,

    /// payments' database.
    #[arg(
        long,
        env = "TICKETDROP_PAYMENTS_DATABASE_URL",
        default_value = "postgres://ticketdrop@127.0.0.1:55432/payments"
    )]
    pub payments_db: String,

    /// The coordinators' logs: one per cluster, comma-separated (the coordinators of one
    /// cluster share one).
    #[arg(
        long,
        env = "TICKETDROP_COORDINATOR_DATABASE_URL",
        default_value = "postgres://ticketdrop@127.0.0.1:55432/coordinator",
        value_delimiter = ','
    )]
    pub coordinator_db: Vec<String>,

    /// The notifier's database (confirmations; the bench counts deliveries there).
    #[arg(
        long,
        env = "TICKETDROP_NOTIFIER_DATABASE_URL",
        default_value = "postgres://ticketdrop@127.0.0.1:55432/notifier"
    )]
    pub notifier_db: Option<String>,

    /// DynamoDB endpoint.
    #[arg(
        long,
        env = "TICKETDROP_DYNAMODB_ENDPOINT",
        default_value = "http://127.0.0.1:58000"
    )]
    pub dynamodb_endpoint: String,

    /// The orders table.
    #[arg(long, env = "TICKETDROP_ORDERS_TABLE", default_value = "orders")]
    pub orders_table: String,

    /// Redis (lease locks, waiting rooms).
    #[arg(
        long,
        env = "TICKETDROP_REDIS_URL",
        default_value = "redis://127.0.0.1:56379"
    )]
    pub redis_url: String,

    /// The waiting room's Redis key prefix.
    #[arg(
        long,
        env = "TICKETDROP_WAITING_ROOM_KEY_PREFIX",
        default_value = "room"
    )]
    pub room_prefix: String,
}

pub async fn postgres(what: &str, url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.with_context(|| {
        format!("cannot reach the {what} database at {url} (is `make up` running?)")
    })?;
    tokio::spawn(connection);
    Ok(client)
}

pub fn dynamodb(endpoint: &str) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    let region = std::env::var("TICKETDROP_DYNAMODB_REGION").unwrap_or_else(|_| "us-east-1".into());
    let key =
        std::env::var("TICKETDROP_DYNAMODB_ACCESS_KEY_ID").unwrap_or_else(|_| "ticketdrop".into());
    let secret = std::env::var("TICKETDROP_DYNAMODB_SECRET_ACCESS_KEY")
        .unwrap_or_else(|_| "ticketdrop".into());
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new(region))
            .credentials_provider(Credentials::new(key, secret, None, None, "ticketdrop-cli"))
            .build(),
    )
}

impl Stores {
    /// The stores of a test mesh: its own databases, table and room keys, the local
    /// stack's DynamoDB and Redis.
    pub fn of_mesh(mesh: &local_mesh::Mesh) -> Stores {
        Stores {
            inventory_db: mesh.inventory_db.url(),
            payments_db: mesh.payments_db.url(),
            coordinator_db: vec![mesh.coordinator_db.url()],
            notifier_db: Some(mesh.notifier_db.url()),
            dynamodb_endpoint: local_mesh::dynamodb_endpoint(),
            orders_table: mesh.orders_table.clone(),
            redis_url: local_mesh::redis_url(),
            room_prefix: mesh.room_prefix.clone(),
        }
    }
}
