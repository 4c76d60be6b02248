//! payments moves money in the two-phase card model (authorize, then capture; void
//! before capture, refund after) on its own PostgreSQL database, with Stripe-style
//! idempotency keys, a double-entry ledger and a simulated card network for fault
//! injection.
//!
//! It must never charge twice for one idempotency key or txid, and never call another
//! service.

pub mod access;
pub mod card_network;
pub mod config;
pub mod error;
mod idempotency;
pub mod ledger;
mod lifecycle;
pub mod model;
pub mod schema;
pub mod service;
pub mod sweeper;
mod two_phase;

use std::sync::Arc;

use anyhow::Context;
use proto::v1::payments_service_server::PaymentsServiceServer;
use server_kit::GrpcServer;
use tonic::service::Routes;

pub use config::Config;

/// Connects to PostgreSQL, migrates, then serves until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let faults = card_network::validate(config.faults()).context("invalid fault flags")?;
    let server = GrpcServer::bind(config.listen, config.server.clone()).await?;
    let pool = server_kit::pg::connect_and_migrate(
        &config.database_url,
        config.pool_size,
        config.connect_attempts,
        schema::MIGRATIONS,
    )
    .await
    .context("preparing the payments database")?;

    let sweeper_task = tokio::spawn(sweeper::run(pool.clone(), config.sweep_interval()));
    let payments = lifecycle::Payments {
        pool,
        network: Arc::new(card_network::CardNetwork::new(faults)),
        authorization_ttl_secs: config.authorization_ttl_secs,
        key_retention_hours: config.key_retention_hours,
    };
    let served = server
        .serve(
            access::POLICY,
            Routes::new(PaymentsServiceServer::new(service::PaymentsApi::new(
                payments,
            ))),
            shutdown,
        )
        .await;
    sweeper_task.abort();
    served
}
