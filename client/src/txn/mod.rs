//! `ticketdrop txn show|list|pending|failures|diagnose|watch`: what the coordinator's log
//! says, as text, JSON or Mermaid. One module per subcommand, each fetching what it shows
//! and then rendering it.

mod diagnose;
mod failures;
mod list;
mod pending;
mod show;
mod watch;

use crate::endpoints::{self, Endpoints};
use anyhow::Context;
use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use proto::v1::*;
use server_kit::outgoing::MeshChannel;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Mermaid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    /// Failed purchases by cause: the reason code of each refusal, in words.
    Error,
    /// Failed steps by their error text, ids masked.
    Message,
    /// Failed steps by protocol.
    Protocol,
    /// Failed steps by step.
    Step,
    /// Failed steps by participant.
    Participant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StateArg {
    Running,
    Committing,
    Aborting,
    Committed,
    Aborted,
    NeedsAttention,
}

#[derive(Debug, clap::Subcommand)]
pub enum TxnCommand {
    /// One purchase's step timeline; several purchases side by side on one clock (two
    /// fans racing for a seat): text columns, a JSON list, or a Mermaid Gantt chart.
    Show(show::ShowArgs),
    /// Purchases, newest first.
    List(list::ListArgs),
    /// Purchases that are in doubt, retrying or parked, with their unfinished steps.
    Pending(pending::PendingArgs),
    /// Failed steps grouped by error, protocol, step or participant.
    Failures(failures::FailuresArgs),
    /// The first failing step of a purchase, its error, and what was compensated.
    Diagnose(diagnose::DiagnoseArgs),
    /// Follow a purchase live: each step, the outcome, then each confirmation attempt.
    /// Reconnects after a broken stream from the last event seen.
    Watch(watch::WatchArgs),
}

fn since_timestamp(since: Duration) -> prost_types::Timestamp {
    let since = chrono::Duration::from_std(since).unwrap_or(chrono::Duration::days(36_500));
    server_kit::convert::timestamp(chrono::Utc::now() - since)
}

pub async fn run(endpoints: &Endpoints, command: TxnCommand) -> anyhow::Result<()> {
    let mut coordinator = endpoints.coordinator().await?;
    match command {
        TxnCommand::Show(args) => show::run(endpoints, &mut coordinator, args).await,
        TxnCommand::List(args) => list::run(endpoints, &mut coordinator, args).await,
        TxnCommand::Pending(args) => pending::run(endpoints, &mut coordinator, args).await,
        TxnCommand::Failures(args) => failures::run(endpoints, &mut coordinator, args).await,
        TxnCommand::Diagnose(args) => diagnose::run(endpoints, &mut coordinator, args).await,
        TxnCommand::Watch(args) => watch::run(&mut coordinator, args).await,
    }
}

/// The txid given, or the one of the purchase with idempotency key `key`.
async fn resolve(
    coordinator: &CoordinatorServiceClient<MeshChannel>,
    txid: Option<String>,
    key: Option<String>,
) -> anyhow::Result<String> {
    match (txid, key) {
        (Some(txid), _) => Ok(txid),
        (None, Some(key)) => match by_key(coordinator, &key).await {
            Some(Some(txn)) => Ok(txn.txid),
            Some(None) => anyhow::bail!("no purchase has the idempotency key {key:?}"),
            None => anyhow::bail!("the coordinator did not answer for the key {key:?}"),
        },
        (None, None) => anyhow::bail!("give a txid or --key"),
    }
}

async fn transaction(
    coordinator: &mut CoordinatorServiceClient<MeshChannel>,
    txid: String,
) -> anyhow::Result<Transaction> {
    coordinator
        .get_transaction(GetTransactionRequest { txid })
        .await
        .map_err(|s| anyhow::anyhow!(endpoints::describe(&s)))?
        .into_inner()
        .transaction
        .context("no transaction in the answer")
}

/// The logged purchase with idempotency key `key`: Some(None) when the log has none, None
/// when the log did not answer (a few tries, with backoff).
pub async fn by_key(
    coordinator: &CoordinatorServiceClient<MeshChannel>,
    key: &str,
) -> Option<Option<Transaction>> {
    let mut backoff = Duration::from_millis(100);
    for attempt in 1..=LOOKUP_ATTEMPTS {
        match coordinator
            .clone()
            .list_transactions(ListTransactionsRequest {
                idempotency_key: key.to_owned(),
                ..Default::default()
            })
            .await
        {
            Ok(found) => return Some(found.into_inner().transactions.into_iter().next()),
            Err(status) => {
                eprintln!(
                    "ticketdrop: looking up purchase {key} (attempt {attempt}): {}",
                    endpoints::describe(&status)
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    None
}

/// Tries of one lookup by key.
const LOOKUP_ATTEMPTS: u32 = 4;
