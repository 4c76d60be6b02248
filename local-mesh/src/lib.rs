//! A TicketDrop mesh on this machine — the library both the integration tests and the
//! chaos lab (`ticketdrop chaos`) run the real thing with. It starts the service
//! binaries as real child processes: on port 0, waiting for health SERVING, then stopped
//! with SIGTERM, SIGKILL or SIGSTOP/SIGCONT and restarted on the same address and data.
//!
//! It also hands each test a fresh PostgreSQL database on the local stack
//! ([`TestDatabase`]), so tests never see each other's rows; a private PostgreSQL server
//! ([`PrivatePostgres`]), DynamoDB Local ([`PrivateDynamo`]) and Redis ([`PrivateRedis`])
//! for tests and the chaos lab that kill or pause the store itself; and the whole mesh
//! on fresh stores ([`Mesh`]); and what the notifier reaches: a private maildev, SMS
//! provider and webhook receiver.
//!
//! For tests that need separate machines, [`netns`] makes hosts of their own (network
//! namespaces on a private bridge) that processes run on, and cuts links between them with
//! iptables.
//!
//! Every process it starts verifies tokens with the stack's keys ([`auth`]), whose
//! helpers give tests an operator's, a fan's or the mesh's credential.
//!
//! It must never stand in for a real store: everything it starts is the real binary.

pub mod auth;
mod database;
mod dynamodb;
mod mesh;
pub mod netns;
mod notify;
mod postgres;
mod process;
mod redis;
pub mod signals;
pub mod wording;

pub use database::{TestDatabase, stack_pg_url};
pub use dynamodb::{PrivateDynamo, stack_dir};
pub use mesh::{Mesh, MeshOptions};
pub use notify::{PrivateMaildev, PrivateSms, ReceivedWebhook, WebhookReceiver};
pub use postgres::PrivatePostgres;
pub use process::{ServiceProcess, health_status, service_binary};
pub use redis::PrivateRedis;
pub use wording::details;

/// DynamoDB Local's endpoint on the local stack.
pub fn dynamodb_endpoint() -> String {
    std::env::var("TICKETDROP_DYNAMODB_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:58000".into())
}

/// Redis on the local stack.
pub fn redis_url() -> String {
    std::env::var("TICKETDROP_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:56379".into())
}

/// A DynamoDB client for `endpoint` with the local stack's static credentials.
pub fn dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "ticketdrop",
                "ticketdrop",
                None,
                None,
                "test",
            ))
            .build(),
    )
}

/// A free TCP port on loopback (bound and released: another process may take it first).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until `port` on loopback accepts connections: a store started as a child
/// process is ready. Polls every 50 ms, up to `within`.
pub(crate) fn wait_for_port(
    port: u16,
    within: std::time::Duration,
    what: &str,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() > deadline {
            anyhow::bail!("{what} did not open port {port} within {within:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(())
}

/// A name unique to this test run, for databases, tables and ids.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Waits until `condition` holds, checking every 50 ms, and panics naming `what` when
/// `timeout` passes first: what a test waits for is a condition, never a length of time.
pub async fn eventually<F, Fut>(what: &str, timeout: std::time::Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
