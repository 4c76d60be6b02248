//! payments moves money in the two-phase card model (authorize, then capture; void
//! before capture, refund after) on its own PostgreSQL database, with Stripe-style
//! idempotency keys and a simulated card network for fault injection.
//!
//! It must never charge twice for one idempotency key or txid, and never call another
//! service.

pub mod config;
pub mod schema;
pub mod service;

use anyhow::Context;
use proto::v1::payments_service_server::PaymentsServiceServer;
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
    .context("preparing the payments database")?;

    let service = service::Payments::new(pool);
    server
        .serve(
            PaymentsServiceServer::<service::Payments>::NAME,
            Routes::new(PaymentsServiceServer::new(service)),
            shutdown,
        )
        .await
}
