//! `ticketdrop txn list`: purchases, newest first, filtered by state, protocol, event,
//! age, error text, buyer or key.

use std::time::Duration;

use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use proto::v1::*;
use serde_json::json;
use server_kit::outgoing::MeshChannel;

use crate::endpoints::{self, Endpoints};
use crate::json;
use crate::purchase::ProtocolArg;

use super::{Format, StateArg, since_timestamp};

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[arg(long, value_enum)]
    pub state: Option<StateArg>,
    #[arg(long, value_enum)]
    pub protocol: Option<ProtocolArg>,
    #[arg(long)]
    pub event: Option<String>,
    /// Only purchases started within this long, e.g. 5m, 1h.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<Duration>,
    /// Only purchases whose error (or a step's) contains this text.
    #[arg(long)]
    pub error: Option<String>,
    /// Only this buyer's purchases.
    #[arg(long)]
    pub user: Option<String>,
    /// Only the purchase with this idempotency key.
    #[arg(long)]
    pub key: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub async fn run(
    _endpoints: &Endpoints,
    coordinator: &mut CoordinatorServiceClient<MeshChannel>,
    args: ListArgs,
) -> anyhow::Result<()> {
    let rpc_error = |s: tonic::Status| anyhow::anyhow!(endpoints::describe(&s));
    let ListArgs {
        state,
        protocol,
        event,
        since,
        error,
        user,
        key,
        limit,
        format,
    } = args;
    let state = state.map(|s| match s {
        StateArg::Running => TransactionState::Running,
        StateArg::Committing => TransactionState::Committing,
        StateArg::Aborting => TransactionState::Aborting,
        StateArg::Committed => TransactionState::Committed,
        StateArg::Aborted => TransactionState::Aborted,
        StateArg::NeedsAttention => TransactionState::NeedsAttention,
    });
    let listed = coordinator
        .list_transactions(ListTransactionsRequest {
            state: state.unwrap_or_default().into(),
            protocol: protocol.map(ProtocolArg::proto).unwrap_or_default().into(),
            event_id: event.unwrap_or_default(),
            since: since.map(since_timestamp),
            error_contains: error.unwrap_or_default(),
            page_size: limit,
            page_token: String::new(),
            idempotency_key: key.unwrap_or_default(),
            user_id: user.unwrap_or_default(),
        })
        .await
        .map_err(rpc_error)?
        .into_inner();
    if format == Format::Json {
        return json::print(&json!({
            "transactions": listed.transactions.iter().map(json::transaction).collect::<Vec<_>>(),
        }));
    }
    // Who bought and how long each purchase took, from its log row to its end.
    for t in &listed.transactions {
        let took = json::millis_between(&t.started_at, &t.finished_at)
            .map_or_else(|| "running".to_owned(), |ms| format!("{ms:.0} ms"));
        let line = format!(
            "{}  {:<5} {:<15} {took:>9}  {:<16} {:<35} {}",
            json::timestamp(&t.started_at).as_str().unwrap_or_default(),
            json::protocol(t.protocol()),
            json::short_enum(t.state().as_str_name(), "TRANSACTION_STATE_"),
            t.user_id,
            t.txid,
            t.error
        );
        println!("{}", line.trim_end());
    }
    Ok(())
}
