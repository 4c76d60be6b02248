//! Prometheus metrics. Services record through the `metrics` facade (`counter!`,
//! `gauge!`, `histogram!`); this module installs the Prometheus recorder once per process,
//! counts every gRPC call in a tower layer ([`GrpcMetricsLayer`]), watches the PostgreSQL
//! pools ([`watch_pool`]), and serves the text format at `/metrics` on a plain HTTP port
//! of its own (`--metrics-listen`), apart from the gRPC port: a scraper needs no gRPC
//! and no credential of the mesh.
//!
//! What the mesh counts (every name starts with `ticketdrop_`, except the gRPC server
//! metrics, which keep the names `go-grpc-prometheus` made common):
//!
//! | metric | labels | what |
//! | --- | --- | --- |
//! | `grpc_server_handled_total` | `grpc_service`, `grpc_method`, `grpc_code` | calls that ended |
//! | `grpc_server_handling_seconds` | `grpc_service`, `grpc_method` | their latency (histogram) |
//! | `ticketdrop_db_pool_connections` | `pool`, `state` (`in_use`, `idle`) | a pool's connections |
//! | `ticketdrop_db_pool_max_connections` | `pool` | its ceiling |
//! | `ticketdrop_db_pool_waiting` | `pool` | callers waiting for a connection |
//!
//! and each service's own, described in its `metrics` module.

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body::{Body, Frame};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

/// Latency buckets (seconds) of every `*_seconds` histogram: 1 ms to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often the pools' gauges are refreshed.
const POOL_INTERVAL: Duration = Duration::from_secs(1);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's Prometheus recorder (the first call does; later ones return
/// the same handle). Until it runs, whatever the facade records is dropped.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .context("setting the latency buckets")?
        .install_recorder()
        .context("installing the Prometheus recorder")?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// The metrics endpoint, bound but not yet serving.
pub struct MetricsServer {
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` and, when asked, writes the bound address to `addr_file`.
    pub async fn bind(addr: SocketAddr, addr_file: Option<&Path>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot serve metrics on {addr} (is the port taken?)"))?;
        let local_addr = listener.local_addr().context("reading the bound address")?;
        if let Some(path) = addr_file {
            crate::serve::write_addr_file(path, local_addr)?;
        }
        Ok(Self {
            listener,
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves `/metrics` in the background for the rest of the process, and keeps the
    /// recorder's histograms trimmed.
    pub fn spawn(self, handle: PrometheusHandle) {
        let upkeep = handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                upkeep.run_upkeep();
            }
        });
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let text = handle.render();
                async move {
                    (
                        [(
                            http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        );
        let addr = self.local_addr;
        tokio::spawn(async move {
            if let Err(error) = axum::serve(self.listener, app).await {
                tracing::error!(%addr, %error, "the metrics endpoint stopped");
            }
        });
        tracing::info!(%addr, "serving metrics at /metrics");
    }
}

/// Refreshes the gauges of `pool` (named by its database) every second, for the rest of
/// the process: connections in use and idle, the ceiling, and callers waiting. A pool
/// whose waiters grow while every connection is in use is saturated.
pub fn watch_pool(name: String, pool: deadpool_postgres::Pool) {
    tokio::spawn(async move {
        let in_use =
            gauge!("ticketdrop_db_pool_connections", "pool" => name.clone(), "state" => "in_use");
        let idle =
            gauge!("ticketdrop_db_pool_connections", "pool" => name.clone(), "state" => "idle");
        let max = gauge!("ticketdrop_db_pool_max_connections", "pool" => name.clone());
        let waiting = gauge!("ticketdrop_db_pool_waiting", "pool" => name);
        let mut every = tokio::time::interval(POOL_INTERVAL);
        loop {
            every.tick().await;
            let status = pool.status();
            in_use.set(status.size.saturating_sub(status.available) as f64);
            idle.set(status.available as f64);
            max.set(status.max_size as f64);
            waiting.set(status.waiting as f64);
        }
    });
}

/// Counts every gRPC call by service, method and status code, with its latency: from the
/// request to the end of the response (its trailers), so a stream counts its whole life.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, ResBody> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let call = Call::new(request.uri().path());
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            let (parts, body) = response.into_parts();
            // A call that failed at once answers trailers-only: its code is in the headers.
            let code = grpc_status(&parts.headers);
            Ok(http::Response::from_parts(
                parts,
                MeteredBody {
                    inner: body,
                    call: Some(Call { code, ..call }),
                },
            ))
        })
    }
}

/// One call being counted.
#[derive(Debug)]
struct Call {
    service: String,
    method: String,
    started: Instant,
    code: Option<tonic::Code>,
}

impl Call {
    fn new(path: &str) -> Self {
        // "/ticketdrop.v1.CoordinatorService/Purchase"
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or(("unknown", path));
        Self {
            service: service.to_owned(),
            method: method.to_owned(),
            started: Instant::now(),
            code: None,
        }
    }

    fn end(self, code: tonic::Code) {
        let code = format!("{code:?}");
        counter!("grpc_server_handled_total",
            "grpc_service" => self.service.clone(),
            "grpc_method" => self.method.clone(),
            "grpc_code" => code)
        .increment(1);
        histogram!("grpc_server_handling_seconds",
            "grpc_service" => self.service,
            "grpc_method" => self.method)
        .record(self.started.elapsed().as_secs_f64());
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .map(tonic::Code::from)
}

pin_project_lite::pin_project! {
    /// A response body that counts its call when it ends: at the trailers, at its end, or
    /// when dropped early (the client went away: CANCELLED).
    pub struct MeteredBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }

    impl<B> PinnedDrop for MeteredBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(call) = this.project().call.take() {
                let code = call.code.unwrap_or(tonic::Code::Cancelled);
                call.end(code);
            }
        }
    }
}

impl<B: Body> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(call) = this.call.take()
                {
                    let code = grpc_status(trailers)
                        .or(call.code)
                        .unwrap_or(tonic::Code::Ok);
                    call.end(code);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = this.call.take() {
                    call.end(tonic::Code::Internal);
                }
            }
            Poll::Ready(None) => {
                if let Some(call) = this.call.take() {
                    let code = call.code.unwrap_or(tonic::Code::Ok);
                    call.end(code);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
