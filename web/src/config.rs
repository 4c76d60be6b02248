use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use server_kit::ServerOptions;

/// The web server's configuration: flags with `TICKETDROP_*` env fallbacks and defaults
/// that work on the local stack.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "ticketdrop-web",
    version,
    about = "TicketDrop web: the fans' page and the operator's live view, over gRPC-Web"
)]
pub struct Config {
    /// Address to serve the page and gRPC on; port 0 picks a free port. The page's origin
    /// (http://this address) must be in every service's --web-origin.
    #[arg(long, env = "TICKETDROP_WEB_LISTEN", default_value = "127.0.0.1:50080")]
    pub listen: SocketAddr,

    /// The built page (`npm run build` in web/app writes it).
    #[arg(long, env = "TICKETDROP_WEB_SITE_DIR", default_value = "web/app/dist")]
    pub site_dir: PathBuf,

    /// The coordinators, as a browser reaches them (comma-separated: the page moves on
    /// from one that stops answering).
    #[arg(
        long,
        env = "TICKETDROP_COORDINATOR_ENDPOINT",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:50050"
    )]
    pub coordinator_endpoint: Vec<String>,

    /// inventory-pg, as a browser reaches it.
    #[arg(
        long,
        env = "TICKETDROP_INVENTORY_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    pub inventory_endpoint: String,

    /// orders-dynamo, as a browser reaches it.
    #[arg(
        long,
        env = "TICKETDROP_ORDERS_ENDPOINT",
        default_value = "http://127.0.0.1:50052"
    )]
    pub orders_endpoint: String,

    /// The waiting room, as a browser reaches it.
    #[arg(
        long,
        env = "TICKETDROP_WAITING_ROOM_ENDPOINT",
        default_value = "http://127.0.0.1:50054"
    )]
    pub waiting_room_endpoint: String,

    /// Sign fans and operators in with development tokens (DevLogin), signed with the
    /// users key of --auth-dir, as `ticketdrop login` does. For a development stack only:
    /// whoever reaches the page can then act as anyone.
    #[arg(long, env = "TICKETDROP_WEB_DEV_LOGIN")]
    pub dev_login: bool,

    /// How long a development token is valid.
    #[arg(long, env = "TICKETDROP_WEB_DEV_TOKEN_TTL_SECS", default_value_t = 12 * 3600)]
    pub dev_token_ttl_secs: u64,

    #[command(flatten)]
    pub server: ServerOptions,
}

impl Config {
    pub fn dev_token_ttl(&self) -> Duration {
        Duration::from_secs(self.dev_token_ttl_secs.max(60))
    }
}
