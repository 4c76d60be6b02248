//! The coordinator is TicketDrop's transaction manager: it runs one purchase across
//! inventory-pg, orders-dynamo and payments under 2pc, saga or lease, logs every step
//! durably in its own PostgreSQL database, and recovers in-flight purchases after a
//! crash.
//!
//! It must never resolve contention itself (no global lock): the participants do.

pub mod config;
pub mod participants;
pub mod schema;
pub mod service;

use anyhow::Context;
use proto::v1::coordinator_service_server::CoordinatorServiceServer;
use server_kit::GrpcServer;
use tonic::server::NamedService;
use tonic::service::Routes;

pub use config::Config;

/// Connects to PostgreSQL and Redis, migrates, then serves until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let server = GrpcServer::bind(config.listen, config.server.clone()).await?;
    let pool = server_kit::pg::connect_and_migrate(
        &config.database_url,
        config.pool_size,
        config.connect_attempts,
        schema::MIGRATIONS,
    )
    .await
    .context("preparing the coordinator database")?;
    let redis = connect_redis(&config.redis_url, config.connect_attempts).await?;
    let participants = participants::Participants::connect_lazy(&config)?;

    let service = service::Coordinator::new(pool, redis, participants);
    server
        .serve(
            CoordinatorServiceServer::<service::Coordinator>::NAME,
            Routes::new(CoordinatorServiceServer::new(service)),
            shutdown,
        )
        .await
}

/// Opens a managed Redis connection and checks it with PING, retrying with backoff.
async fn connect_redis(url: &str, attempts: u32) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client = redis::Client::open(url).with_context(|| format!("invalid Redis url {url:?}"))?;
    let mut backoff = std::time::Duration::from_millis(100);
    for attempt in 1..=attempts {
        let result = async {
            let mut connection = redis::aio::ConnectionManager::new(client.clone()).await?;
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await?;
            Ok::<_, redis::RedisError>(connection)
        }
        .await;
        match result {
            Ok(connection) => return Ok(connection),
            Err(error) if attempt < attempts => {
                tracing::warn!(attempt, %error, "redis not reachable yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
            }
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("redis not reachable after {attempts} attempts"));
            }
        }
    }
    unreachable!("the loop returns on its last attempt")
}
