use std::net::SocketAddr;
use std::time::Duration;

use server_kit::ServerOptions;

/// The coordinator's configuration: flags with `TICKETDROP_COORDINATOR_*` env fallbacks
/// and defaults that work on the local stack.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "coordinator",
    version = server_kit::version!(),
    about = "TicketDrop transaction coordinator"
)]
pub struct Config {
    /// Address to serve gRPC on; port 0 picks a free port.
    #[arg(
        long,
        env = "TICKETDROP_COORDINATOR_LISTEN",
        default_value = "127.0.0.1:50050"
    )]
    pub listen: SocketAddr,

    /// PostgreSQL URL of the coordinator's transaction log.
    #[arg(
        long,
        env = "TICKETDROP_COORDINATOR_DATABASE_URL",
        default_value = "postgres://ticketdrop@127.0.0.1:55432/coordinator"
    )]
    pub database_url: String,

    /// Most PostgreSQL connections the service opens.
    #[arg(long, env = "TICKETDROP_COORDINATOR_POOL_SIZE", default_value_t = 32)]
    pub pool_size: usize,

    /// Redis URL for the lease protocol's locks and fencing-token counter.
    #[arg(
        long,
        env = "TICKETDROP_REDIS_URL",
        default_value = "redis://127.0.0.1:56379"
    )]
    pub redis_url: String,

    /// inventory-pg's gRPC endpoint.
    #[arg(
        long,
        env = "TICKETDROP_INVENTORY_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    pub inventory_endpoint: String,

    /// orders-dynamo's gRPC endpoint.
    #[arg(
        long,
        env = "TICKETDROP_ORDERS_ENDPOINT",
        default_value = "http://127.0.0.1:50052"
    )]
    pub orders_endpoint: String,

    /// payments' gRPC endpoint.
    #[arg(
        long,
        env = "TICKETDROP_PAYMENTS_ENDPOINT",
        default_value = "http://127.0.0.1:50053"
    )]
    pub payments_endpoint: String,

    /// The waiting room's gRPC endpoint: every purchase's admission is claimed there.
    #[arg(
        long,
        env = "TICKETDROP_WAITING_ROOM_ENDPOINT",
        default_value = "http://127.0.0.1:50054"
    )]
    pub waiting_room_endpoint: String,

    /// The notifier's gRPC endpoint: the outbox relay hands it each committed purchase's
    /// confirmation.
    #[arg(
        long,
        env = "TICKETDROP_NOTIFIER_ENDPOINT",
        default_value = "http://127.0.0.1:50055"
    )]
    pub notifier_endpoint: String,

    /// How often the outbox relay looks for confirmations to hand on.
    #[arg(
        long,
        env = "TICKETDROP_COORDINATOR_RELAY_INTERVAL_MS",
        default_value_t = 200
    )]
    pub relay_interval_ms: u64,

    /// How long WatchPurchase waits between two looks at a purchase that has not moved.
    #[arg(
        long,
        env = "TICKETDROP_COORDINATOR_WATCH_INTERVAL_MS",
        default_value_t = 200
    )]
    pub watch_interval_ms: u64,

    /// Attempts to reach PostgreSQL and Redis at start (with backoff) before giving up.
    #[arg(long, env = "TICKETDROP_CONNECT_ATTEMPTS", default_value_t = 20)]
    pub connect_attempts: u32,

    /// Timeout of one participant call.
    #[arg(
        long,
        env = "TICKETDROP_COORDINATOR_CALL_TIMEOUT_MS",
        default_value_t = 3_000
    )]
    pub call_timeout_ms: u64,

    /// Attempts of a forward step before the purchase is aborted (or compensated).
    #[arg(
        long,
        env = "TICKETDROP_COORDINATOR_FORWARD_ATTEMPTS",
        default_value_t = 3
    )]
    pub forward_attempts: u32,

    /// Attempts of a phase-two call or compensation before the purchase is parked.
    #[arg(
        long,
        env = "TICKETDROP_COORDINATOR_FINISH_ATTEMPTS",
        default_value_t = 8
    )]
    pub finish_attempts: u32,

    /// First retry backoff; doubles per attempt, with jitter.
    #[arg(long, env = "TICKETDROP_COORDINATOR_BACKOFF_MS", default_value_t = 50)]
    pub backoff_ms: u64,

    /// Longest retry backoff.
    #[arg(
        long,
        env = "TICKETDROP_COORDINATOR_MAX_BACKOFF_MS",
        default_value_t = 2_000
    )]
    pub max_backoff_ms: u64,

    /// How long a saga holds its seats before they return to sale.
    #[arg(
        long,
        env = "TICKETDROP_COORDINATOR_HOLD_TTL_SECS",
        default_value_t = 60
    )]
    pub hold_ttl_secs: u64,

    /// Lease duration of the lease protocol's seat locks (renewed while working).
    #[arg(
        long,
        env = "TICKETDROP_COORDINATOR_LEASE_TTL_MS",
        default_value_t = 5_000
    )]
    pub lease_ttl_ms: u64,

    /// UNSAFE, the lab's negative control only: lease-protocol writes carry no fencing
    /// token, so a paused lease holder's late write is not refused by fencing.
    #[arg(long, env = "TICKETDROP_COORDINATOR_UNSAFE_NO_FENCING")]
    pub unsafe_no_fencing: bool,

    /// How long an event stays "sold out" for best-available purchases once a sold-out
    /// answer was definitive (every seat sold, no other purchase of the event in flight):
    /// they are answered at once, unlogged. 0 turns the fast path off.
    #[arg(
        long,
        env = "TICKETDROP_COORDINATOR_SOLD_OUT_WINDOW_MS",
        default_value_t = 500
    )]
    pub sold_out_window_ms: u64,

    /// How often recovery reconciles the participants' in-doubt branches, re-asserts
    /// orders after an outage and re-sends lost admission releases.
    #[arg(
        long,
        env = "TICKETDROP_COORDINATOR_RECOVERY_INTERVAL_MS",
        default_value_t = 5_000
    )]
    pub recovery_interval_ms: u64,

    /// After a call to orders ends with an unknown outcome, the orders decided up to this
    /// long before it are read back, and any write the store lost is made again.
    #[arg(
        long,
        env = "TICKETDROP_COORDINATOR_REASSERT_WINDOW_MS",
        default_value_t = 10_000
    )]
    pub reassert_window_ms: u64,

    /// How long this coordinator owns a purchase without renewing it: a dead or paused
    /// coordinator's purchases pass to another coordinator of the log within about this
    /// long. Renewed every quarter of it while the purchase is in flight.
    #[arg(
        long,
        env = "TICKETDROP_COORDINATOR_OWNERSHIP_TTL_MS",
        default_value_t = 4_000
    )]
    pub ownership_ttl_ms: u64,

    /// How often the coordinator looks for purchases whose ownership lapsed, and takes
    /// them over (at most the recovery interval).
    #[arg(
        long,
        env = "TICKETDROP_COORDINATOR_TAKEOVER_INTERVAL_MS",
        default_value_t = 500
    )]
    pub takeover_interval_ms: u64,

    /// This coordinator's name in the log (the owner of its purchases). Default: the
    /// host's name and the port it serves on, the same across restarts, so a coordinator
    /// that restarts takes its own unfinished purchases back at once instead of waiting
    /// for their ownership to lapse. (Safety never rests on the name: every takeover
    /// raises the purchase's epoch, which fences the writer before it.)
    #[arg(long, env = "TICKETDROP_COORDINATOR_INSTANCE_ID")]
    pub instance_id: Option<String>,

    #[command(flatten)]
    pub server: ServerOptions,

    #[command(flatten)]
    pub rate_limits: server_kit::rate::RateLimitOptions,
}

impl Config {
    pub fn policies(&self) -> crate::driver::Policies {
        let policy = |attempts, retry_conflicts| crate::driver::RetryPolicy {
            timeout: Duration::from_millis(self.call_timeout_ms),
            attempts: u32::max(attempts, 1),
            backoff: Duration::from_millis(self.backoff_ms),
            max_backoff: Duration::from_millis(self.max_backoff_ms),
            retry_conflicts,
        };
        crate::driver::Policies {
            forward: policy(self.forward_attempts, false),
            finish: policy(self.finish_attempts, true),
        }
    }
}

/// `<host name>:<port>`: unique among live coordinators (two cannot serve on one port of
/// one host) and the same after a restart.
pub fn default_instance_id(listen: SocketAddr) -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", listen.port())
}
