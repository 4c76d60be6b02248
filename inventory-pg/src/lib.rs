//! inventory-pg owns every seat's state in PostgreSQL and is the first guard against
//! double sale. It is a participant in the three purchase protocols (saga steps with
//! barrier rules, 2PC with `PREPARE TRANSACTION`, fenced lease writes) and serves
//! browsing and search.
//!
//! It must never call another service: the coordinator drives it.

pub mod config;
pub mod schema;
pub mod service;

use anyhow::Context;
use proto::v1::inventory_service_server::InventoryServiceServer;
use server_kit::GrpcServer;
use tonic::server::NamedService;
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

    let service = service::Inventory::new(pool);
    server
        .serve(
            InventoryServiceServer::<service::Inventory>::NAME,
            Routes::new(InventoryServiceServer::new(service)),
            shutdown,
        )
        .await
}
