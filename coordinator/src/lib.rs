//! The coordinator is TicketDrop's transaction manager: it runs one purchase across
//! inventory-pg, orders-dynamo and payments under 2pc, saga or lease, logs every step
//! durably in its own PostgreSQL database, and recovers in-flight purchases after a
//! crash.
//!
//! It must never resolve contention itself (no global lock): the participants do.

pub mod access;
pub mod admission;
mod causes;
pub mod config;
pub mod driver;
pub mod error;
mod inspect;
mod lease;
pub mod log;
mod metrics;
pub mod model;
mod money;
mod outcome;
pub mod ownership;
pub mod participants;
mod reassert;
pub mod recovery;
mod relay;
mod saga;
pub mod schema;
pub mod service;
pub mod sold_out;
mod two_pc;
mod watch;

use anyhow::Context;
use proto::v1::coordinator_service_server::CoordinatorServiceServer;
use server_kit::GrpcServer;
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
    let redis = server_kit::redis::connect(&config.redis_url, config.connect_attempts).await?;
    let participants = participants::Participants::connect_lazy(&config)?;
    // Renewals and takeovers have connections of their own: never queued behind the
    // purchases' statements.
    let ownership_pool = server_kit::pg::pool(&config.database_url, 2)?;
    let instance_id = config
        .instance_id
        .clone()
        .unwrap_or_else(|| config::default_instance_id(server.local_addr()));
    let ownership = ownership::Ownership::new(std::time::Duration::from_millis(
        config.ownership_ttl_ms.max(100),
    ));
    let log = log::Log::open(
        pool,
        ownership_pool,
        &instance_id,
        &server.local_addr().to_string(),
        ownership.clone(),
    )
    .await
    .context("opening the transaction log")?;
    tracing::info!(instance_id, log_id = log.log_id(), "coordinator of the log");

    if config.unsafe_no_fencing {
        tracing::warn!("UNSAFE: lease writes carry no fencing token (--unsafe-no-fencing)");
    }
    let driver = driver::Driver {
        log: log.clone(),
        participants,
        policies: config.policies(),
        hold_ttl: std::time::Duration::from_secs(config.hold_ttl_secs),
        leases: driver::Leases {
            redis,
            ttl: std::time::Duration::from_millis(config.lease_ttl_ms),
            unsafe_no_fencing: config.unsafe_no_fencing,
        },
        sold_out: std::sync::Arc::new(sold_out::SoldOut::new(std::time::Duration::from_millis(
            config.sold_out_window_ms,
        ))),
        orders_outage: driver::OrdersOutage {
            window: std::time::Duration::from_millis(config.reassert_window_ms),
            since: Default::default(),
        },
    };
    let renewal_task = tokio::spawn(ownership::keep_renewed(ownership, log));
    let recovery_task = tokio::spawn(recovery::run(
        driver.clone(),
        std::time::Duration::from_millis(config.takeover_interval_ms.max(50)),
        std::time::Duration::from_millis(config.recovery_interval_ms.max(100)),
    ));
    let relay_task = tokio::spawn(relay::run(
        driver.log.clone(),
        driver.participants.notifier.clone(),
        std::time::Duration::from_millis(config.relay_interval_ms.max(10)),
    ));
    let service = service::Coordinator::new(
        driver,
        std::time::Duration::from_millis(config.watch_interval_ms.max(10)),
        server_kit::rate::RateLimits::new(&config.rate_limits),
    );
    let served = server
        .serve(
            access::POLICY,
            Routes::new(CoordinatorServiceServer::new(service)),
            shutdown,
        )
        .await;
    recovery_task.abort();
    relay_task.abort();
    renewal_task.abort();
    served
}
