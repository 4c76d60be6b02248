//! `ticketdrop txn show|list|pending|failures|diagnose`: what the coordinator's log says,
//! as text, JSON or Mermaid.

use std::time::Duration;

use anyhow::Context;
use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use proto::v1::*;
use serde_json::json;
use tonic::transport::Channel;

use crate::endpoints::{self, Endpoints};
use crate::purchase::ProtocolArg;
use crate::{json, mermaid};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Mermaid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    Error,
    Protocol,
    Step,
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
    /// One purchase's step timeline.
    Show {
        txid: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Purchases, newest first.
    List {
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        #[arg(long, value_enum)]
        protocol: Option<ProtocolArg>,
        #[arg(long)]
        event: Option<String>,
        /// Only purchases started within this long, e.g. 5m, 1h.
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<Duration>,
        /// Only purchases whose error (or a step's) contains this text.
        #[arg(long)]
        error: Option<String>,
        /// Only this buyer's purchases.
        #[arg(long)]
        user: Option<String>,
        /// Only the purchase with this idempotency key.
        #[arg(long)]
        key: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Purchases that are in doubt, retrying or parked, with their unfinished steps.
    Pending {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Failed steps grouped by error, protocol, step or participant.
    Failures {
        /// How far back, e.g. 5m, 1h.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
        since: Duration,
        #[arg(long, value_enum, default_value_t = GroupBy::Error)]
        group_by: GroupBy,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// The first failing step of a purchase, its error, and what was compensated.
    Diagnose {
        txid: String,
        #[arg(long)]
        json: bool,
    },
}

fn since_timestamp(since: Duration) -> prost_types::Timestamp {
    let since = chrono::Duration::from_std(since).unwrap_or(chrono::Duration::days(36_500));
    server_kit::convert::timestamp(chrono::Utc::now() - since)
}

pub async fn run(endpoints: &Endpoints, command: TxnCommand) -> anyhow::Result<()> {
    let mut coordinator = endpoints.coordinator().await?;
    let rpc_error = |s: tonic::Status| anyhow::anyhow!(endpoints::describe(&s));
    match command {
        TxnCommand::Show { txid, format } => {
            let txn = transaction(&mut coordinator, txid).await?;
            match format {
                Format::Json => json::print(&json::transaction(&txn)),
                Format::Mermaid => {
                    print!("{}", mermaid::sequence(&txn));
                    Ok(())
                }
                Format::Text => {
                    print_timeline(&txn);
                    Ok(())
                }
            }
        }
        TxnCommand::List {
            state,
            protocol,
            event,
            since,
            error,
            user,
            key,
            limit,
            format,
        } => {
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
            for t in &listed.transactions {
                println!(
                    "{}  {:<5} {:<16} {:<20} {}",
                    json::timestamp(&t.started_at).as_str().unwrap_or_default(),
                    json::protocol(t.protocol()),
                    json::short_enum(t.state().as_str_name(), "TRANSACTION_STATE_"),
                    t.txid,
                    t.error
                );
            }
            Ok(())
        }
        TxnCommand::Pending { format } => {
            let pending = coordinator
                .list_pending(ListPendingRequest {})
                .await
                .map_err(rpc_error)?
                .into_inner()
                .transactions;
            match format {
                Format::Json => json::print(&json!({
                    "pending": pending.iter().map(|p| json!({
                        "transaction": p.transaction.as_ref().map(json::transaction),
                        "needs_attention": p.needs_attention,
                        "in_doubt": p.in_doubt,
                        "steps": p.steps.iter().map(|s| json!({
                            "participant": json::participant(s.participant()),
                            "operation": s.operation, "attempts": s.attempts, "last_error": s.last_error,
                            "last_attempt_at": json::timestamp(&s.last_attempt_at),
                        })).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })),
                Format::Mermaid => {
                    print!("{}", mermaid::pending(&pending));
                    Ok(())
                }
                Format::Text => {
                    if pending.is_empty() {
                        println!("nothing pending");
                    }
                    for p in &pending {
                        let t = p.transaction.clone().unwrap_or_default();
                        println!(
                            "{} {} {}{}{}",
                            t.txid,
                            json::protocol(t.protocol()),
                            json::short_enum(t.state().as_str_name(), "TRANSACTION_STATE_"),
                            if p.needs_attention {
                                " NEEDS ATTENTION"
                            } else {
                                ""
                            },
                            if p.in_doubt { " (in doubt)" } else { "" }
                        );
                        for s in &p.steps {
                            println!(
                                "    {} {}: {} attempts, last error: {}",
                                json::participant(s.participant()),
                                s.operation,
                                s.attempts,
                                s.last_error
                            );
                        }
                    }
                    Ok(())
                }
            }
        }
        TxnCommand::Failures {
            since,
            group_by,
            format,
        } => {
            let group = match group_by {
                GroupBy::Error => FailureGroupBy::Error,
                GroupBy::Protocol => FailureGroupBy::Protocol,
                GroupBy::Step => FailureGroupBy::Step,
                GroupBy::Participant => FailureGroupBy::Participant,
            };
            let summary = coordinator
                .failure_summary(FailureSummaryRequest {
                    since: Some(since_timestamp(since)),
                    group_by: group.into(),
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            let by = format!("{group_by:?}").to_lowercase();
            match format {
                Format::Json => json::print(&json!({
                    "since": humantime::format_duration(since).to_string(),
                    "group_by": by,
                    "total": summary.total,
                    "groups": summary.groups.iter().map(|g| json!({
                        "key": g.key, "count": g.count, "example_txids": g.example_txids,
                    })).collect::<Vec<_>>(),
                })),
                Format::Mermaid => {
                    let title = format!(
                        "Failed steps by {by}, last {}",
                        humantime::format_duration(since)
                    );
                    print!("{}", mermaid::pie(&title, &summary.groups));
                    Ok(())
                }
                Format::Text => {
                    println!(
                        "{} failed steps in the last {}, by {by}",
                        summary.total,
                        humantime::format_duration(since)
                    );
                    for g in &summary.groups {
                        println!(
                            "{:>6}  {}  (e.g. {})",
                            g.count,
                            g.key,
                            g.example_txids.join(", ")
                        );
                    }
                    Ok(())
                }
            }
        }
        TxnCommand::Diagnose {
            txid,
            json: json_out,
        } => {
            let txn = transaction(&mut coordinator, txid).await?;
            let failing = txn
                .steps
                .iter()
                .find(|s| matches!(s.outcome(), StepOutcome::Failed | StepOutcome::Unknown));
            let compensated: Vec<&Step> = txn
                .steps
                .iter()
                .filter(|s| s.compensation && s.outcome() == StepOutcome::Ok)
                .collect();
            let state = json::short_enum(txn.state().as_str_name(), "TRANSACTION_STATE_");
            if json_out {
                return json::print(&json!({
                    "txid": txn.txid, "protocol": json::protocol(txn.protocol()), "state": state,
                    "first_failure": failing.map(json::step),
                    "compensated": compensated.iter().map(|s| json!({
                        "participant": json::participant(s.participant()), "operation": s.operation,
                    })).collect::<Vec<_>>(),
                    "error": txn.error,
                }));
            }
            println!(
                "{} ({}) is {state}",
                txn.txid,
                json::protocol(txn.protocol())
            );
            match failing {
                Some(step) => println!(
                    "first failing step: {} {} attempt {} — {}",
                    json::participant(step.participant()),
                    step.operation,
                    step.attempt,
                    step.error
                ),
                None => println!("no step failed"),
            }
            if compensated.is_empty() {
                println!("nothing was compensated");
            } else {
                let list: Vec<String> = compensated
                    .iter()
                    .map(|s| format!("{} {}", json::participant(s.participant()), s.operation))
                    .collect();
                println!("compensated: {}", list.join(", "));
            }
            Ok(())
        }
    }
}

async fn transaction(
    coordinator: &mut CoordinatorServiceClient<Channel>,
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

fn print_timeline(txn: &Transaction) {
    println!(
        "{} {} {} decision {}",
        txn.txid,
        json::protocol(txn.protocol()),
        json::short_enum(txn.state().as_str_name(), "TRANSACTION_STATE_"),
        json::short_enum(txn.decision().as_str_name(), "DECISION_")
    );
    println!(
        "  user {} event {} order {} payment {}",
        txn.user_id, txn.event_id, txn.order_id, txn.payment_id
    );
    let start = txn.started_at.unwrap_or_default();
    for step in &txn.steps {
        let offset = step.started_at.as_ref().map_or(0.0, |s| {
            (s.seconds - start.seconds) as f64 * 1_000.0
                + f64::from(s.nanos - start.nanos) / 1_000_000.0
        });
        println!(
            "  +{:>8.1} ms  {:<12} {:<20} #{} {:<8} {:>7.1} ms{}{}",
            offset,
            json::participant(step.participant()),
            step.operation,
            step.attempt,
            json::short_enum(step.outcome().as_str_name(), "STEP_OUTCOME_"),
            json::step_millis(step),
            if step.compensation {
                "  (compensation)"
            } else {
                ""
            },
            if step.error.is_empty() {
                String::new()
            } else {
                format!("  {}", step.error)
            }
        );
    }
    if !txn.error.is_empty() {
        println!("  error: {}", txn.error);
    }
}

/// The logged purchase with idempotency key `key`: Some(None) when the log has none, None
/// when the log did not answer (a few tries, with backoff).
pub async fn by_key(
    coordinator: &CoordinatorServiceClient<Channel>,
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
