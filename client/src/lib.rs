//! `ticketdrop`: drive and inspect the TicketDrop mesh from the command line — buy
//! tickets, run a ticket drop, audit the invariants across the three databases, and show
//! what a transaction did as text, JSON or Mermaid.
//!
//! A library under the `ticketdrop` binary, so that tests, the bench and the chaos lab
//! call the same code a person runs: the audit (`audit`), the load engine (`drop`), the
//! lab (`chaos`).

pub mod audit;
pub mod bench;
pub mod chaos;
pub mod coordinators;
pub mod drop;
pub mod endpoints;
pub mod events;
pub mod faults;
pub mod health;
pub mod json;
pub mod live;
pub mod load;
pub mod login;
pub mod machine;
pub mod mermaid;
pub mod notifications;
pub mod purchase;
pub mod room;
pub mod stores;
pub mod txn;

use anyhow::Result;
use clap::Parser;
use tracing::Instrument;

#[derive(Debug, Parser)]
#[command(
    name = "ticketdrop",
    version,
    about = "Buy, drop, audit and inspect TicketDrop"
)]
pub struct Cli {
    #[command(flatten)]
    pub endpoints: endpoints::Endpoints,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Show each service's gRPC health status.
    Health(health::HealthArgs),
    /// Print a development token for a user (`--admin` for an operator), signed with the
    /// local stack's key: `grpcurl -H "authorization: Bearer $(ticketdrop login --user ana)"`.
    Login(login::LoginArgs),
    /// Create the key pairs that sign tokens in `--auth-dir`, unless they exist.
    Keys,
    /// Create, list, search and show events.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// Buy seats through the coordinator and print the tickets.
    Purchase(purchase::PurchaseArgs),
    /// Check tickets.
    #[command(subcommand)]
    Ticket(purchase::TicketCommand),
    /// The simulated card network's faults: show, set or clear declines, latency, hangs
    /// and lost answers.
    #[command(subcommand)]
    Faults(faults::FaultsCommand),
    /// Run a ticket drop: many fans, few seats, under one protocol or all three.
    Drop(drop::DropArgs),
    /// The waiting room: open one, watch its queue, wait in it as a fan.
    #[command(subcommand)]
    Room(room::RoomCommand),
    /// The chaos lab: kill, pause and cut off every process mid-drop, protocol by
    /// protocol, on a mesh of its own; check every invariant; compare.
    Chaos(chaos::ChaosArgs),
    /// Check the invariants of an event across inventory, orders, payments and Redis.
    Audit(audit::AuditArgs),
    /// Measure the stores' raw pace, the drops under each protocol, purchase latency and
    /// how cost grows: the figures of docs/benchmarks.md.
    Bench(bench::BenchArgs),
    /// Inspect the coordinator's transaction log.
    #[command(subcommand)]
    Txn(txn::TxnCommand),
    /// The coordinators of the log: how many purchases each began, finished, and took
    /// over from another.
    Coordinators(coordinators::CoordinatorsArgs),
    /// Purchase confirmations: list deliveries, re-drive the dead letter, register webhooks.
    #[command(subcommand)]
    Notifications(notifications::NotificationsCommand),
}

/// Runs the command line: parses the arguments, runs the command, exits with its code
/// (0, 1 for an error, 2 for invariant violations).
pub async fn main() {
    quiet_broken_pipe();
    let cli = Cli::parse();
    // Traces: each command is one trace (a drop's fans each start their own), carried to
    // every service in `traceparent`; exported only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    let telemetry = server_kit::telemetry::init_with_filter(
        server_kit::LogFormat::Text,
        "ticketdrop",
        std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().as_deref(),
        "warn",
    );
    if let Err(error) = &telemetry {
        eprintln!("ticketdrop: traces are off: {error:#}");
    }
    let span = tracing::info_span!("ticketdrop", command = command_name(&cli.command));
    let result: Result<()> = async {
        match cli.command {
            Command::Health(args) => health::run(&cli.endpoints, args).await,
            Command::Login(args) => login::login(&cli.endpoints, args),
            Command::Keys => login::keys(&cli.endpoints),
            Command::Events(command) => events::run(&cli.endpoints, command).await,
            Command::Purchase(args) => purchase::run(&cli.endpoints, args).await,
            Command::Ticket(command) => purchase::ticket(&cli.endpoints, command).await,
            Command::Faults(command) => faults::run(&cli.endpoints, command).await,
            Command::Drop(args) => drop::run(&cli.endpoints, args).await,
            Command::Room(command) => room::run(&cli.endpoints, command).await,
            Command::Chaos(args) => chaos::run(args).await,
            Command::Audit(args) => audit::run(args).await,
            Command::Bench(args) => bench::run(&cli.endpoints, args).await,
            Command::Txn(command) => txn::run(&cli.endpoints, command).await,
            Command::Coordinators(args) => coordinators::run(&cli.endpoints, args).await,
            Command::Notifications(command) => notifications::run(&cli.endpoints, command).await,
        }
    }
    .instrument(span)
    .await;
    drop(telemetry);
    if let Err(error) = result {
        eprintln!("ticketdrop: {error:#}");
        let violated = error.downcast_ref::<audit::ViolationsFound>().is_some()
            || error.downcast_ref::<chaos::LabFailed>().is_some();
        std::process::exit(if violated { 2 } else { 1 });
    }
}

/// The subcommand's name, for the command's span.
fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Health(_) => "health",
        Command::Login(_) => "login",
        Command::Keys => "keys",
        Command::Events(_) => "events",
        Command::Purchase(_) => "purchase",
        Command::Ticket(_) => "ticket",
        Command::Faults(_) => "faults",
        Command::Drop(_) => "drop",
        Command::Room(_) => "room",
        Command::Chaos(_) => "chaos",
        Command::Audit(_) => "audit",
        Command::Bench(_) => "bench",
        Command::Txn(_) => "txn",
        Command::Coordinators(_) => "coordinators",
        Command::Notifications(_) => "notifications",
    }
}

/// A closed stdout (output piped into `head`) ends the process quietly, as for any Unix
/// command line tool; every other panic is reported as usual.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.to_string().contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}
