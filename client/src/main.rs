//! `ticketdrop`: drive and inspect the TicketDrop mesh from the command line.

use anyhow::Result;
use clap::Parser;

mod endpoints;
mod health;

#[derive(Debug, Parser)]
#[command(
    name = "ticketdrop",
    version,
    about = "Buy, drop, audit and inspect TicketDrop"
)]
struct Cli {
    #[command(flatten)]
    endpoints: endpoints::Endpoints,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Show each service's gRPC health status.
    Health(health::HealthArgs),
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Health(args) => health::run(&cli.endpoints, args).await,
    }
}
