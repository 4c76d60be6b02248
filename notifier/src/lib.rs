//! The notifier confirms committed purchases: an email with the tickets (QR codes
//! inline), an SMS, and a signed webhook to every URL the buyer registered. The
//! coordinator's outbox relay hands it each confirmation (idempotently, by txid); it
//! keeps the deliveries in its own PostgreSQL database and delivers each at least once,
//! on its own schedule, with bounded retries and a dead letter.
//!
//! It never calls back into a purchase: whatever a channel does, no purchase waits or
//! fails for it.

pub mod access;
pub mod channels;
pub mod config;
pub mod dispatcher;
pub mod error;
pub mod schema;
pub mod service;
pub mod shows;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use proto::v1::inventory_service_client::InventoryServiceClient;
use proto::v1::notifier_service_server::NotifierServiceServer;
use server_kit::GrpcServer;
use server_kit::outgoing::{MeshChannel, lazy_channel};
use tonic::service::Routes;

pub use config::Config;

/// Connects to PostgreSQL, migrates, starts the dispatcher, then serves until `shutdown`
/// resolves.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let channels = Arc::new(channels::Channels::new(&config).context("configuring the channels")?);
    let server = GrpcServer::bind(config.listen, config.server.clone()).await?;
    let pool = server_kit::pg::connect_and_migrate(
        &config.database_url,
        config.pool_size,
        config.connect_attempts,
        schema::MIGRATIONS,
    )
    .await
    .context("preparing the notifier database")?;
    let store = store::Store::new(pool);
    let inventory = InventoryServiceClient::new(MeshChannel::new(
        lazy_channel(&config.inventory_endpoint)?,
        config.server.service_credential("notifier")?,
    ));
    let shows = Arc::new(shows::Shows::new(inventory));
    let policy = config.retry();
    let wake = Arc::new(tokio::sync::Notify::new());
    let dispatcher = tokio::spawn(
        dispatcher::Dispatcher {
            store: store.clone(),
            channels,
            shows,
            policy,
            poll: Duration::from_millis(config.poll_ms.max(1)),
            claim_ms: i64::try_from(config.claim_ms.max(config.send_timeout_ms + 1_000))
                .unwrap_or(i64::MAX),
            concurrency: config.concurrency.max(1),
            wake: wake.clone(),
        }
        .run(),
    );
    let served = server
        .serve(
            access::POLICY,
            Routes::new(NotifierServiceServer::new(service::NotifierApi::new(
                store,
                policy.max_attempts,
                wake,
            ))),
            shutdown,
        )
        .await;
    dispatcher.abort();
    served
}
