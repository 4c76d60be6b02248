//! inventory-pg owns every seat's state in PostgreSQL and is the first guard against
//! double sale. It is a participant in the three purchase protocols (saga steps with
//! barrier rules, 2PC with `PREPARE TRANSACTION`, fenced lease writes) and serves
//! browsing and search.
//!
//! It must never call another service: the coordinator drives it.

pub mod access;
mod barrier;
mod browse;
pub mod config;
pub mod error;
mod fenced;
pub mod model;
mod saga;
pub mod schema;
mod seat_map;
mod seats;
pub mod service;
pub mod sweeper;
mod two_phase;

use anyhow::Context;
use proto::v1::inventory_service_server::InventoryServiceServer;
use server_kit::GrpcServer;
use tonic::service::Routes;

pub use config::Config;

/// Connects to PostgreSQL, migrates, then serves until `shutdown` resolves.
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
    .context("preparing the inventory database")?;

    let stats = std::sync::Arc::new(sweeper::SweeperStats::default());
    let maps = std::sync::Arc::new(seat_map::SeatMaps::new(config.seat_map_max_age()));
    // Aborted with the server: the sweeper holds no state that needs flushing.
    let sweeper_task = tokio::spawn(sweeper::run(
        pool.clone(),
        config.sweep_interval(),
        stats.clone(),
        maps.clone(),
    ));
    let service = service::Inventory::new(pool, config.default_hold_ttl(), stats, maps);
    let served = server
        .serve(
            access::POLICY,
            Routes::new(InventoryServiceServer::new(service)),
            shutdown,
        )
        .await;
    sweeper_task.abort();
    served
}
