use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Options every server takes, flattened into each service's own clap `Args`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerOptions {
    /// After binding, write the actual listen address (useful with port 0) to this file.
    #[arg(long, env = "TICKETDROP_ADDR_FILE")]
    pub addr_file: Option<PathBuf>,

    /// Where the Prometheus metrics are served (HTTP, `/metrics`). By default the gRPC
    /// address with its port + 1000 (an ephemeral port when the gRPC port is 0).
    #[arg(long, env = "TICKETDROP_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// After binding, write the metrics endpoint's address to this file.
    #[arg(long, env = "TICKETDROP_METRICS_ADDR_FILE")]
    pub metrics_addr_file: Option<PathBuf>,

    /// Directory of the token keys: the public keys every server verifies with
    /// (`users.pub.pem`, `mesh.pub.pem`), and `mesh.pem`, which services that call others
    /// sign their own tokens with. `make up` creates the local stack's in `.stack/auth`.
    #[arg(long, env = "TICKETDROP_AUTH_DIR", default_value = ".stack/auth")]
    pub auth_dir: PathBuf,

    /// Where spans are exported over OTLP/gRPC (for example `http://127.0.0.1:4317`);
    /// unset, nothing is exported, and trace ids still join the logs.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Log format.
    #[arg(long, env = "TICKETDROP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// How long health reports NOT_SERVING before the server stops accepting calls, so
    /// that clients and load balancers move away first.
    #[arg(long, env = "TICKETDROP_DRAIN_DELAY_MS", default_value_t = 200)]
    pub drain_delay_ms: u64,

    /// Origins of the web page (scheme, host and port) whose scripts may call this server
    /// over gRPC-Web, comma-separated; every other origin is refused (CORS).
    #[arg(
        long,
        env = "TICKETDROP_WEB_ORIGIN",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:50080,http://localhost:50080"
    )]
    pub web_origin: Vec<String>,

    /// Longest wait for in-flight calls to finish after shutdown begins.
    #[arg(long, env = "TICKETDROP_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,
}

impl ServerOptions {
    pub fn key_files(&self) -> crate::auth::KeyFiles {
        crate::auth::KeyFiles::new(&self.auth_dir)
    }

    /// The credential of this server's own calls to other services: tokens with scope
    /// `service`, named `name`, signed with the mesh key.
    pub fn service_credential(&self, name: &str) -> anyhow::Result<crate::outgoing::Outgoing> {
        let issuer = crate::auth::Issuer::load(&self.key_files(), crate::auth::Authority::Mesh)?;
        Ok(crate::outgoing::Outgoing::service(issuer, name))
    }

    pub fn drain_delay(&self) -> Duration {
        Duration::from_millis(self.drain_delay_ms)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    /// Where the metrics endpoint listens, for a gRPC server on `grpc`.
    pub fn metrics_listen(&self, grpc: SocketAddr) -> SocketAddr {
        self.metrics_listen.unwrap_or_else(|| {
            let port = match grpc.port() {
                0 => 0,
                port => port.saturating_add(1000),
            };
            SocketAddr::new(grpc.ip(), port)
        })
    }
}

/// How logs are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}
