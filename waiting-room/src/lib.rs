//! The waiting room is the queue in front of a drop. Fans join a room and wait in join
//! order; at most `max_active` hold a live admission at once; an admitted fan gets a
//! signed admission token, and the coordinator claims that admission before it logs a
//! purchase and releases it when the purchase ends. A room is declared sold out only
//! from inventory's definitive seat counts, when no purchase is in flight.
//!
//! It must never sell, hold or count seats itself: inventory owns them. Its state lives
//! in Redis, so the service can be killed and restarted at any moment.

pub mod access;
pub mod admission;
mod admitter;
pub mod config;
pub mod error;
pub mod model;
pub mod service;
pub mod shuffle;
pub mod store;
mod watchers;

use std::sync::Arc;

use anyhow::Context;
use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use proto::v1::inventory_service_client::InventoryServiceClient;
use proto::v1::waiting_room_service_server::WaitingRoomServiceServer;
use server_kit::GrpcServer;
use server_kit::outgoing::{MeshChannel, lazy_channel};
use tonic::service::Routes;

pub use config::Config;

/// Connects to Redis, then serves until `shutdown` resolves, running the admission loop
/// beside the server.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let server = GrpcServer::bind(config.listen, config.server.clone()).await?;
    let redis = server_kit::redis::connect(&config.redis_url, config.connect_attempts)
        .await
        .context("connecting to redis")?;
    let inventory = InventoryServiceClient::new(MeshChannel::new(
        lazy_channel(&config.inventory_endpoint)?,
        config.server.service_credential("waiting-room")?,
    ));
    let coordinator = CoordinatorServiceClient::new(MeshChannel::new(
        lazy_channel(&config.coordinator_endpoint)?,
        config.server.service_credential("waiting-room")?,
    ));
    let store = store::Store::new(redis, &config.key_prefix);
    let watchers = Arc::new(watchers::Watchers::default());
    let wake = Arc::new(tokio::sync::Notify::new());
    let admitter = admitter::Admitter {
        store: store.clone(),
        inventory: inventory.clone(),
        coordinator,
        watchers: watchers.clone(),
        wake: wake.clone(),
        tick: config.tick(),
        inventory_down: Default::default(),
    };
    let admitter_task = tokio::spawn(admitter.run());
    // Watch streams end when shutdown begins (clients watch again, elsewhere or after
    // the restart: their place is in Redis), so they never hold up the drain.
    let (closing, closing_seen) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = closing.send(true);
    };
    let service = service::WaitingRoom {
        store,
        signer: admission::Signer::new(config.admission_key.as_bytes()),
        watchers,
        wake,
        inventory,
        purchase_lease: config.purchase_lease(),
        claim_grace: config.claim_grace(),
        position_interval: config.position_interval(),
        closing: closing_seen,
        limits: server_kit::rate::RateLimits::new(&config.rate_limits),
    };
    let served = server
        .serve(
            access::POLICY,
            Routes::new(WaitingRoomServiceServer::new(service)),
            shutdown,
        )
        .await;
    admitter_task.abort();
    served
}
