use std::net::SocketAddr;
use std::time::Duration;

use server_kit::ServerOptions;

/// The notifier's configuration: flags with `TICKETDROP_NOTIFIER_*` env fallbacks and
/// defaults that work on the local stack (`make stack-up` starts the SMTP server and the
/// SMS provider these point at).
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "notifier",
    version,
    about = "TicketDrop notifier: purchase confirmations by email, SMS and signed webhooks"
)]
pub struct Config {
    /// Address to serve gRPC on; port 0 picks a free port.
    #[arg(
        long,
        env = "TICKETDROP_NOTIFIER_LISTEN",
        default_value = "127.0.0.1:50055"
    )]
    pub listen: SocketAddr,

    /// PostgreSQL URL of the notifier database.
    #[arg(
        long,
        env = "TICKETDROP_NOTIFIER_DATABASE_URL",
        default_value = "postgres://ticketdrop@127.0.0.1:55432/notifier"
    )]
    pub database_url: String,

    /// Most PostgreSQL connections the service opens.
    #[arg(long, env = "TICKETDROP_NOTIFIER_POOL_SIZE", default_value_t = 8)]
    pub pool_size: usize,

    /// Attempts to reach the database at start (with backoff) before giving up.
    #[arg(long, env = "TICKETDROP_CONNECT_ATTEMPTS", default_value_t = 20)]
    pub connect_attempts: u32,

    /// SMTP server for the email channel: smtp://host:port (plain, the local stack's
    /// development server), smtp://host:port?tls=required (STARTTLS) or smtps://host:port,
    /// with user:password@ before the host when the server wants a login.
    #[arg(
        long,
        env = "TICKETDROP_NOTIFIER_SMTP_URL",
        default_value = "smtp://127.0.0.1:51025"
    )]
    pub smtp_url: String,

    /// The From address of confirmation emails.
    #[arg(
        long,
        env = "TICKETDROP_NOTIFIER_EMAIL_FROM",
        default_value = "TicketDrop <tickets@ticketdrop.localhost>"
    )]
    pub email_from: String,

    /// Base URL of the SMS provider. The provider's API is Twilio's Messages resource
    /// (POST {base}/2010-04-01/Accounts/{account}/Messages.json, form-encoded To, From,
    /// Body, HTTP basic auth): the local stack's provider speaks it, and so does Twilio.
    #[arg(
        long,
        env = "TICKETDROP_NOTIFIER_SMS_URL",
        default_value = "http://127.0.0.1:51090"
    )]
    pub sms_url: String,

    /// SMS provider account (the basic-auth user and the path's account id).
    #[arg(
        long,
        env = "TICKETDROP_NOTIFIER_SMS_ACCOUNT",
        default_value = "AC-local"
    )]
    pub sms_account: String,

    /// SMS provider auth token (the basic-auth password).
    #[arg(
        long,
        env = "TICKETDROP_NOTIFIER_SMS_TOKEN",
        default_value = "local-token"
    )]
    pub sms_token: String,

    /// The sender number or id of SMS.
    #[arg(
        long,
        env = "TICKETDROP_NOTIFIER_SMS_FROM",
        default_value = "TicketDrop"
    )]
    pub sms_from: String,

    /// inventory-pg's gRPC endpoint: each confirmation names its event as fans know it
    /// (name, date, venue), read from there.
    #[arg(
        long,
        env = "TICKETDROP_INVENTORY_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    pub inventory_endpoint: String,

    /// Attempts per delivery before it is dead-lettered.
    #[arg(long, env = "TICKETDROP_NOTIFIER_MAX_ATTEMPTS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,

    /// Delay before the first retry; each further retry waits twice as long (with
    /// jitter), up to --retry-max-ms.
    #[arg(
        long,
        env = "TICKETDROP_NOTIFIER_RETRY_BASE_MS",
        default_value_t = 1_000
    )]
    pub retry_base_ms: u64,

    /// Longest delay between two attempts of one delivery.
    #[arg(
        long,
        env = "TICKETDROP_NOTIFIER_RETRY_MAX_MS",
        default_value_t = 300_000
    )]
    pub retry_max_ms: u64,

    /// How long one attempt may take (connect, send, answer) before it counts as failed.
    #[arg(
        long,
        env = "TICKETDROP_NOTIFIER_SEND_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub send_timeout_ms: u64,

    /// How long a claimed delivery belongs to the worker that claimed it. A notifier
    /// killed mid-delivery leaves the claim; the delivery is due again once it passes.
    /// Longer than --send-timeout-ms.
    #[arg(long, env = "TICKETDROP_NOTIFIER_CLAIM_MS", default_value_t = 30_000)]
    pub claim_ms: u64,

    /// How often the dispatcher looks for due deliveries when it has none at hand.
    #[arg(long, env = "TICKETDROP_NOTIFIER_POLL_MS", default_value_t = 250)]
    pub poll_ms: u64,

    /// Deliveries sent at once.
    #[arg(long, env = "TICKETDROP_NOTIFIER_CONCURRENCY", default_value_t = 16)]
    pub concurrency: usize,

    #[command(flatten)]
    pub server: ServerOptions,
}

impl Config {
    pub fn retry(&self) -> crate::dispatcher::RetryPolicy {
        crate::dispatcher::RetryPolicy {
            max_attempts: i32::try_from(self.max_attempts).unwrap_or(100),
            base: Duration::from_millis(self.retry_base_ms.max(1)),
            max: Duration::from_millis(self.retry_max_ms.max(self.retry_base_ms).max(1)),
        }
    }
}
