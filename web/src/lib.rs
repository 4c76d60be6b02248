//! The web server: serves the fans' page and the operator's live view (built from
//! `web/app` into --site-dir) and, on the same port, the `ticketdrop.v1.WebService`
//! (where the page finds the mesh; development sign-in) with health and reflection like
//! every server of the mesh.
//!
//! The page talks to the services themselves over gRPC-Web (every server answers it and
//! lets this page's origin call, see `server_kit::browser`): this server never relays a
//! purchase, holds no state and must never hold a fan's token.

pub mod access;
pub mod config;
pub mod error;
pub mod service;
pub mod site;

use anyhow::Context;
use proto::v1::GetSiteResponse;
use proto::v1::web_service_server::WebServiceServer;
use server_kit::GrpcServer;
use server_kit::auth::{Authority, Issuer};
use tonic::service::Routes;

pub use config::Config;

/// Serves the page and the web service until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let mut services: Vec<&str> = config
        .coordinator_endpoint
        .iter()
        .map(String::as_str)
        .collect();
    services.extend([
        config.inventory_endpoint.as_str(),
        config.orders_endpoint.as_str(),
        config.waiting_room_endpoint.as_str(),
    ]);
    let site = site::router(&config.site_dir, &services)?;
    let dev_issuer = if config.dev_login {
        let issuer = Issuer::load(&config.server.key_files(), Authority::Users)
            .context("--dev-login signs with the users key")?;
        tracing::warn!("development sign-in is on: anyone who reaches the page can act as anyone");
        Some(issuer)
    } else {
        None
    };
    let web = service::Web {
        site: GetSiteResponse {
            coordinator_urls: config.coordinator_endpoint.clone(),
            inventory_url: config.inventory_endpoint.clone(),
            orders_url: config.orders_endpoint.clone(),
            waiting_room_url: config.waiting_room_endpoint.clone(),
            dev_login: dev_issuer.is_some(),
        },
        dev_issuer,
        dev_token_ttl: config.dev_token_ttl(),
    };
    let server = GrpcServer::bind(config.listen, config.server.clone()).await?;
    tracing::info!(page = %format!("http://{}/", server.local_addr()), "serving the page");
    server
        .serve_with_site(
            access::POLICY,
            Routes::new(WebServiceServer::new(web)),
            Some(site),
            shutdown,
        )
        .await
}
