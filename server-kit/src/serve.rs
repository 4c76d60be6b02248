use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tracing::{info, warn};

use crate::ServerOptions;
use crate::auth::{AuthLayer, Policy, Verifier};
use crate::metrics::{GrpcMetricsLayer, MetricsServer};

/// A gRPC server that is bound but not yet serving.
///
/// Binding first lets tests use port 0 and lets `main` fail fast on a taken port before
/// it touches any store.
pub struct GrpcServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    options: ServerOptions,
    metrics: MetricsServer,
    recorder: PrometheusHandle,
    verifier: std::sync::Arc<Verifier>,
}

impl GrpcServer {
    /// Binds `addr` and, when asked, writes the bound address to `--addr-file`; binds the
    /// metrics endpoint too (`--metrics-listen`, by default the gRPC port + 1000) and
    /// installs the metrics recorder, so that what the service records from its start on
    /// is kept.
    pub async fn bind(addr: SocketAddr, options: ServerOptions) -> anyhow::Result<Self> {
        let recorder = crate::metrics::install()?;
        let verifier = std::sync::Arc::new(
            Verifier::load(&options.key_files()).context("loading the token keys")?,
        );
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (is the port taken?)"))?;
        let local_addr = listener.local_addr().context("reading the bound address")?;
        let metrics = MetricsServer::bind(
            options.metrics_listen(addr),
            options.metrics_addr_file.as_deref(),
        )
        .await?;
        // Last: a reader of the gRPC address finds the metrics address written already.
        if let Some(path) = &options.addr_file {
            write_addr_file(path, local_addr)?;
        }
        Ok(Self {
            listener,
            local_addr,
            options,
            metrics,
            recorder,
            verifier,
        })
    }

    /// Where the metrics endpoint listens.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics.local_addr()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves `routes` plus `grpc.health.v1.Health` and server reflection until
    /// `shutdown` resolves, then drains: health turns NOT_SERVING, the server waits the
    /// drain delay, stops accepting, and lets in-flight calls finish within the
    /// shutdown timeout.
    ///
    /// `policy` names the served service (the name health reports, for example
    /// `ticketdrop.v1.InventoryService`) and who may call each of its RPCs.
    pub async fn serve(
        self,
        policy: Policy,
        routes: Routes,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        self.serve_with_site(policy, routes, None, shutdown).await
    }

    /// [`serve`](Self::serve), and on the same port `site` answers every request that is
    /// not gRPC or gRPC-Web (a browser loading a page).
    pub async fn serve_with_site(
        self,
        policy: Policy,
        routes: Routes,
        site: Option<axum::Router>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let service_name = policy.service;
        let cors = crate::browser::cors(&self.options.web_origin)?;
        let (health, health_service) = tonic_health::server::health_reporter();
        set_status(&health, service_name, ServingStatus::Serving).await;

        let reflection_v1 = reflection(service_name, "grpc.reflection.v1.ServerReflection")
            .build_v1()
            .context("building the reflection service")?;
        // grpcurl releases before 1.9 speak only v1alpha reflection.
        let reflection_v1alpha =
            reflection(service_name, "grpc.reflection.v1alpha.ServerReflection")
                .build_v1alpha()
                .context("building the reflection service")?;

        self.metrics.spawn(self.recorder);
        let routes = routes
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);

        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let (stop_accepting, accepting_stopped) = tokio::sync::oneshot::channel::<()>();
        let mut server = tokio::spawn(
            tonic::transport::Server::builder()
                // gRPC-Web arrives over HTTP/1.1 as well as HTTP/2.
                .accept_http1(true)
                .layer(crate::browser::SiteLayer::new(site))
                .layer(cors)
                .layer(tonic_web::GrpcWebLayer::new())
                .layer(crate::trace::TraceLayer)
                .layer(GrpcMetricsLayer)
                .layer(AuthLayer::new(self.verifier, policy))
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = accepting_stopped.await;
                }),
        );
        info!(addr = %self.local_addr, service = service_name, "serving");

        tokio::select! {
            () = shutdown => {}
            result = &mut server => {
                // The server ended on its own: that is an error, never a clean stop.
                return match result {
                    Ok(Ok(())) => Err(anyhow::anyhow!("server stopped unexpectedly")),
                    Ok(Err(error)) => Err(error).context("grpc server failed"),
                    Err(error) => Err(error).context("grpc server task failed"),
                };
            }
        }

        set_status(&health, service_name, ServingStatus::NotServing).await;
        info!(
            delay_ms = self.options.drain_delay_ms,
            "health is NOT_SERVING; draining"
        );
        tokio::time::sleep(self.options.drain_delay()).await;
        let _ = stop_accepting.send(());

        match tokio::time::timeout(self.options.shutdown_timeout(), server).await {
            Ok(Ok(Ok(()))) => {
                info!("in-flight calls drained; stopped");
                Ok(())
            }
            Ok(Ok(Err(error))) => Err(error).context("grpc server failed while draining"),
            Ok(Err(error)) => Err(error).context("grpc server task failed while draining"),
            Err(_) => {
                warn!(
                    timeout_secs = self.options.shutdown_timeout_secs,
                    "in-flight calls did not drain in time; stopping anyway"
                );
                Ok(())
            }
        }
    }
}

/// Writes `addr` to `path`: to a temporary file renamed into place, so a reader never
/// sees a half-written address.
pub(crate) fn write_addr_file(path: &std::path::Path, addr: SocketAddr) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, addr.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing the address file {}", path.display()))
}

/// Reflection over every ticketdrop.v1 file and the google.rpc error details, listing
/// only the services this server runs.
fn reflection(
    service_name: &str,
    reflection_name: &str,
) -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // google.rpc.Status, ErrorInfo, BadRequest, ...: grpcurl decodes a refusal's
        // details through reflection, and shows raw bytes for a type it cannot find.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(service_name)
        .with_service_name(HEALTH_SERVICE)
        .with_service_name(reflection_name)
}

const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

async fn set_status(health: &HealthReporter, service_name: &str, status: ServingStatus) {
    // "" is the whole server, as `grpc_health_probe` and load balancers ask for it.
    health.set_service_status("", status).await;
    health.set_service_status(service_name, status).await;
}
