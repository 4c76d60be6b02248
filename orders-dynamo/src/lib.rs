//! orders-dynamo keeps orders, one claim item per (event, seat) and tickets in one
//! DynamoDB table, written with conditional TransactWriteItems, so that a seat never
//! belongs to two live orders even when inventory and orders disagree for a moment.
//!
//! It must never call another service: the coordinator drives it.

pub mod access;
pub mod config;
pub mod error;
mod fenced;
pub mod group;
pub mod items;
pub mod model;
mod queries;
mod saga;
pub mod service;
pub mod store;
pub mod table;
mod two_phase;
mod write;

use proto::v1::orders_service_server::OrdersServiceServer;
use server_kit::GrpcServer;
use tonic::service::Routes;

pub use config::Config;

/// A deployment's setup job: creates the table unless it exists and returns once it takes
/// writes (`--create-table-only`).
pub async fn create_table(config: &Config) -> anyhow::Result<()> {
    let client = table::client(config);
    table::ensure_table(&client, &config.table, config.connect_attempts).await?;
    tracing::info!(table = %config.table, "the orders table takes writes");
    Ok(())
}

/// Connects to DynamoDB, creates the table if needed, then serves until `shutdown`
/// resolves.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let server = GrpcServer::bind(config.listen, config.server.clone()).await?;
    let client = table::client(&config);
    table::ensure_table(&client, &config.table, config.connect_attempts).await?;

    let store = store::Store {
        group: group::GroupCommit::start(client.clone(), config.group_commit_max as usize),
        client,
        table: config.table.clone(),
        signer: tickets::TicketSigner::new(config.ticket_key.as_bytes()),
    };
    let indexed = two_phase::index_branches_in_doubt(&store).await?;
    if indexed > 0 {
        tracing::info!(indexed, "prepared branches added to the in-doubt index");
    }
    let service = service::Orders::new(store);
    server
        .serve(
            access::POLICY,
            Routes::new(OrdersServiceServer::new(service)),
            shutdown,
        )
        .await
}
