//! `ticketdrop txn show|list|pending|failures|diagnose`: what the coordinator's log says,
//! as text, JSON or Mermaid.

use std::time::Duration;

use anyhow::Context;
use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use proto::v1::*;
use serde_json::json;
use server_kit::outgoing::MeshChannel;

use crate::endpoints::{self, Endpoints};
use crate::notifications::{self, Child, ChildState};
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
    Show {
        /// Transaction ids (or give --key).
        #[arg(required_unless_present = "keys")]
        txids: Vec<String>,
        /// A purchase's idempotency key; repeat it to show several.
        #[arg(long = "key")]
        keys: Vec<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Text, one line for the purchase and one per step, nothing else.
        #[arg(long, conflicts_with = "format")]
        compact: bool,
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
        /// Only this event's purchases.
        #[arg(long)]
        event: Option<String>,
        /// Count failed confirmation attempts too (the notifier's), as children of the
        /// purchases: "confirmation: <error>" by error, "deliver_<channel>" by step,
        /// "notifier" by participant, "confirmation" by protocol.
        #[arg(long)]
        follow_children: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Follow a purchase live: each step, the outcome, then each confirmation attempt.
    /// Reconnects after a broken stream from the last event seen.
    Watch {
        /// Transaction id (or give --key).
        #[arg(required_unless_present = "key", conflicts_with = "key")]
        txid: Option<String>,
        /// The purchase's idempotency key.
        #[arg(long)]
        key: Option<String>,
        /// Start after this event (0: from BEGUN).
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// One JSON object per event.
        #[arg(long)]
        json: bool,
    },
    /// The first failing step of a purchase, its error, and what was compensated.
    Diagnose {
        /// Transaction id (or give --key).
        #[arg(required_unless_present = "key", conflicts_with = "key")]
        txid: Option<String>,
        /// The purchase's idempotency key.
        #[arg(long)]
        key: Option<String>,
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
        TxnCommand::Show {
            txids,
            keys,
            format,
            compact,
        } => {
            let mut shown = Vec::new();
            for txid in txids {
                shown.push(transaction(&mut coordinator, txid).await?);
            }
            for key in keys {
                let txid = resolve(&coordinator, None, Some(key)).await?;
                shown.push(transaction(&mut coordinator, txid).await?);
            }
            if compact {
                for (i, txn) in shown.iter().enumerate() {
                    if i > 0 {
                        println!();
                    }
                    print_compact(txn);
                }
                return Ok(());
            }
            if let [txn] = shown.as_slice() {
                return show_one(endpoints, txn, format).await;
            }
            match format {
                Format::Json => json::print(&json!({
                    "transactions": shown.iter().map(json::transaction).collect::<Vec<_>>(),
                })),
                Format::Mermaid => {
                    print!("{}", mermaid::gantt(&shown));
                    Ok(())
                }
                Format::Text => {
                    print_side_by_side(&shown);
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
                            if p.needs_attention && t.state() != TransactionState::NeedsAttention {
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
            event,
            follow_children,
            format,
        } => {
            let group = match group_by {
                GroupBy::Error => FailureGroupBy::Error,
                GroupBy::Message => FailureGroupBy::Message,
                GroupBy::Protocol => FailureGroupBy::Protocol,
                GroupBy::Step => FailureGroupBy::Step,
                GroupBy::Participant => FailureGroupBy::Participant,
            };
            let mut summary = coordinator
                .failure_summary(FailureSummaryRequest {
                    since: Some(since_timestamp(since)),
                    group_by: group.into(),
                    event_id: event.unwrap_or_default(),
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            if follow_children {
                add_children(endpoints, &mut summary, since, group_by).await?;
            }
            let by = match group_by {
                GroupBy::Error => "cause".to_owned(),
                other => format!("{other:?}").to_lowercase(),
            };
            let counted = match group_by {
                GroupBy::Error => "purchases",
                _ => "steps",
            };
            match format {
                Format::Json => json::print(&json!({
                    "since": humantime::format_duration(since).to_string(),
                    "group_by": format!("{group_by:?}").to_lowercase(),
                    "counted": counted,
                    "total": summary.total,
                    "groups": summary.groups.iter().map(|g| json!({
                        "key": g.key, "label": g.label, "count": g.count,
                        "example_txids": g.example_txids,
                    })).collect::<Vec<_>>(),
                })),
                Format::Mermaid => {
                    let title = format!(
                        "Failed {counted} by {by}, last {}",
                        humantime::format_duration(since)
                    );
                    print!("{}", mermaid::pie(&title, &summary.groups));
                    Ok(())
                }
                Format::Text => {
                    println!(
                        "{} failed {counted} in the last {}, by {by}",
                        summary.total,
                        humantime::format_duration(since)
                    );
                    for g in &summary.groups {
                        let words = if g.label == g.key || g.label.is_empty() {
                            g.key.clone()
                        } else {
                            format!("{}  [{}]", g.label, g.key)
                        };
                        println!(
                            "{:>6}  {words}  (e.g. {})",
                            g.count,
                            g.example_txids.join(", ")
                        );
                    }
                    Ok(())
                }
            }
        }
        TxnCommand::Diagnose {
            txid,
            key,
            json: json_out,
        } => {
            let txid = resolve(&coordinator, txid, key).await?;
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
            let child = Child::of(endpoints, &txn).await;
            let failed_leaves: Vec<serde_json::Value> = child
                .failed()
                .iter()
                .map(|d| {
                    json!({
                        "delivery_id": d.delivery_id,
                        "channel": notifications::channel_name(d.channel()),
                        "target": d.target, "state": notifications::state_name(d.state()),
                        "attempts": d.attempts, "root_cause": d.last_error,
                    })
                })
                .collect();
            if json_out {
                let mut confirmation = child.json();
                confirmation["failed_leaves"] = failed_leaves.into();
                return json::print(&json!({
                    "txid": txn.txid, "protocol": json::protocol(txn.protocol()), "state": state,
                    "first_failure": failing.map(json::step),
                    "compensated": compensated.iter().map(|s| json!({
                        "participant": json::participant(s.participant()), "operation": s.operation,
                    })).collect::<Vec<_>>(),
                    "error": txn.error,
                    "confirmation": confirmation,
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
            print_child_diagnosis(&child);
            Ok(())
        }
        TxnCommand::Watch {
            txid,
            key,
            after,
            json: json_out,
        } => watch(&mut coordinator, txid, key, after, json_out).await,
    }
}

/// The confirmation child as `txn diagnose` tells it: the parent's outcome stands
/// whatever the child did; a dead-lettered delivery is a failed leaf with its cause.
fn print_child_diagnosis(child: &Child) {
    match child.state() {
        ChildState::None => {}
        ChildState::NotRelayed => {
            let outbox = child.outbox.clone().unwrap_or_default();
            println!(
                "confirmation: recorded with the commit, not handed to the notifier yet{}",
                if outbox.last_error.is_empty() {
                    String::new()
                } else {
                    format!(" (last relay error: {})", outbox.last_error)
                }
            );
        }
        ChildState::Pending => println!("confirmation: being delivered"),
        ChildState::Delivered => println!("confirmation: delivered"),
        ChildState::Failed => {
            println!("confirmation: FAILED (the purchase itself stands)");
            for d in child.failed() {
                println!(
                    "  failed leaf: {} to {} dead-lettered after {} attempt{} ({})",
                    notifications::channel_name(d.channel()),
                    d.target,
                    d.attempts,
                    if d.attempts == 1 { "" } else { "s" },
                    d.delivery_id
                );
                println!("    root cause: {}", d.last_error);
                println!(
                    "    re-drive it: ticketdrop notifications retry {}",
                    d.delivery_id
                );
            }
        }
    }
    if let Some(why) = &child.unreachable {
        println!("confirmation: the notifier did not answer: {why}");
    }
}

/// Adds the notifier's failed attempts to a failure summary, as the purchases' children.
async fn add_children(
    endpoints: &Endpoints,
    summary: &mut FailureSummaryResponse,
    since: Duration,
    group_by: GroupBy,
) -> anyhow::Result<()> {
    let notifier_group = match group_by {
        GroupBy::Error | GroupBy::Message => "error",
        GroupBy::Step => "channel",
        GroupBy::Protocol | GroupBy::Participant => "state",
    };
    let children = endpoints
        .notifier()
        .await?
        .failure_summary(NotifierServiceFailureSummaryRequest {
            since: Some(since_timestamp(since)),
            group_by: notifier_group.into(),
        })
        .await
        .map_err(|s| anyhow::anyhow!(endpoints::describe(&s)))?
        .into_inner();
    let mut added: Vec<FailureGroup> = Vec::new();
    for group in children.groups {
        let key = match group_by {
            GroupBy::Error | GroupBy::Message => format!("confirmation: {}", group.key),
            GroupBy::Step => format!("deliver_{}", group.key),
            GroupBy::Participant => "notifier".to_owned(),
            GroupBy::Protocol => "confirmation".to_owned(),
        };
        match added.iter_mut().find(|g| g.key == key) {
            Some(existing) => {
                existing.count += group.count;
                for txid in group.example_txids {
                    if existing.example_txids.len() < 5 && !existing.example_txids.contains(&txid) {
                        existing.example_txids.push(txid);
                    }
                }
            }
            None => added.push(FailureGroup {
                label: key.clone(),
                key,
                count: group.count,
                example_txids: group.example_txids,
            }),
        }
    }
    summary.total += added.iter().map(|g| g.count).sum::<u64>();
    summary.groups.extend(added);
    summary
        .groups
        .sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    Ok(())
}

/// Streams WatchPurchase, printing each event; after a broken stream it reconnects
/// (up to 5 times in a row, with backoff) from the last event seen.
async fn watch(
    coordinator: &mut CoordinatorServiceClient<MeshChannel>,
    txid: Option<String>,
    key: Option<String>,
    mut after: u64,
    json_out: bool,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let mut failures = 0u32;
    loop {
        let request = WatchPurchaseRequest {
            txid: txid.clone().unwrap_or_default(),
            idempotency_key: key.clone().unwrap_or_default(),
            after_sequence: after,
        };
        let broken = match coordinator.watch_purchase(request).await {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                let mut broken = None;
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(response) => {
                            let event = response.event.unwrap_or_default();
                            failures = 0;
                            after = event.sequence;
                            print_event(&event, json_out)?;
                        }
                        Err(status) => {
                            broken = Some(status);
                            break;
                        }
                    }
                }
                match broken {
                    None => return Ok(()),
                    Some(status) => status,
                }
            }
            Err(status) if status.code() != tonic::Code::Unavailable => {
                anyhow::bail!(endpoints::describe(&status))
            }
            Err(status) => status,
        };
        failures += 1;
        if failures > 5 {
            anyhow::bail!(
                "the stream broke {failures} times in a row: {}",
                endpoints::describe(&broken)
            );
        }
        eprintln!(
            "ticketdrop: the stream broke ({}); resuming after event {after}",
            endpoints::describe(&broken)
        );
        tokio::time::sleep(Duration::from_millis(200 << failures)).await;
    }
}

fn print_event(event: &PurchaseEvent, json_out: bool) -> anyhow::Result<()> {
    let kind = json::short_enum(event.kind().as_str_name(), "PURCHASE_EVENT_KIND_");
    if json_out {
        println!(
            "{}",
            json!({
                "sequence": event.sequence, "txid": event.txid, "kind": kind,
                "at": json::timestamp(&event.at),
                "protocol": (event.kind() == PurchaseEventKind::Begun).then(|| json::protocol(event.protocol())),
                "step": event.step.as_ref().map(json::step),
                "error": event.error,
                "delivery": event.delivery.as_ref().map(notifications::attempt_json),
                "delivered": event.delivered, "dead_lettered": event.dead_lettered,
            })
        );
        return Ok(());
    }
    let detail = match event.kind() {
        PurchaseEventKind::Begun => format!("{} {}", event.txid, json::protocol(event.protocol())),
        PurchaseEventKind::Step => event.step.as_ref().map_or_else(String::new, |s| {
            format!(
                "{} {} #{} {}{}",
                json::participant(s.participant()),
                s.operation,
                s.attempt,
                json::short_enum(s.outcome().as_str_name(), "STEP_OUTCOME_"),
                if s.error.is_empty() {
                    String::new()
                } else {
                    format!("  {}", s.error)
                }
            )
        }),
        PurchaseEventKind::Aborted => event.error.clone(),
        PurchaseEventKind::ConfirmationAttempt => {
            event.delivery.as_ref().map_or_else(String::new, |a| {
                format!(
                    "{} #{} {}{}",
                    notifications::channel_name(a.channel()),
                    a.attempt,
                    if a.delivered { "DELIVERED" } else { "FAILED" },
                    if a.error.is_empty() {
                        String::new()
                    } else {
                        format!("  {}", a.error)
                    }
                )
            })
        }
        PurchaseEventKind::ConfirmationsSettled => format!(
            "{} delivered, {} dead-lettered",
            event.delivered, event.dead_lettered
        ),
        _ => String::new(),
    };
    println!("{:>3} {kind:<22} {detail}", event.sequence);
    Ok(())
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

/// One purchase with its confirmation child, as text, JSON or a Mermaid sequence.
async fn show_one(endpoints: &Endpoints, txn: &Transaction, format: Format) -> anyhow::Result<()> {
    let child = Child::of(endpoints, txn).await;
    match format {
        Format::Json => {
            let mut shown = json::transaction(txn);
            shown["confirmation"] = child.json();
            json::print(&shown)
        }
        Format::Mermaid => {
            print!("{}", mermaid::sequence(txn, &child));
            Ok(())
        }
        Format::Text => {
            print_timeline(txn);
            child.print();
            Ok(())
        }
    }
}

/// Width of one purchase's column in `print_side_by_side`.
const COLUMN: usize = 44;

/// Several purchases on one clock: a column each, one row per step in the order the
/// steps began, so who got where first is read straight down the page.
fn print_side_by_side(shown: &[Transaction]) {
    let origin = shown
        .iter()
        .map(|t| json::epoch_ms(&t.started_at))
        .fold(f64::INFINITY, f64::min);
    let cell = |text: String| -> String {
        let text: String = text.chars().take(COLUMN - 2).collect();
        format!("{text:<COLUMN$}")
    };
    let row = |offset: Option<f64>, cells: Vec<String>| {
        let time = offset.map_or_else(|| " ".repeat(10), |ms| format!("+{ms:>7.1} ms"));
        println!("{time}  {}", cells.concat().trim_end());
    };
    row(
        None,
        shown
            .iter()
            .map(|t| cell(format!("{} ({})", t.user_id, json::protocol(t.protocol()))))
            .collect(),
    );
    row(None, shown.iter().map(|t| cell(t.txid.clone())).collect());
    let mut steps: Vec<(f64, usize, &Step)> = shown
        .iter()
        .enumerate()
        .flat_map(|(column, t)| {
            t.steps
                .iter()
                .map(move |s| (json::epoch_ms(&s.started_at), column, s))
        })
        .collect();
    steps.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (at, column, step) in steps {
        let text = format!(
            "{}{}.{} {} {:.1} ms",
            if step.compensation { "~" } else { "" },
            json::participant(step.participant()),
            step.operation,
            json::short_enum(step.outcome().as_str_name(), "STEP_OUTCOME_"),
            json::step_millis(step),
        );
        let cells = (0..shown.len())
            .map(|c| {
                cell(if c == column {
                    text.clone()
                } else {
                    String::new()
                })
            })
            .collect();
        row(Some(at - origin), cells);
    }
    row(
        None,
        shown
            .iter()
            .map(|t| {
                cell(format!(
                    "= {}",
                    json::short_enum(t.state().as_str_name(), "TRANSACTION_STATE_")
                ))
            })
            .collect(),
    );
    for t in shown.iter().filter(|t| !t.error.is_empty()) {
        println!("{}: {}", t.txid, t.error);
    }
}

/// The purchase in one line, then one line per step: offset, participant.operation
/// (with `~` for a compensation), attempt, outcome, duration, and the error's reason.
fn print_compact(txn: &Transaction) {
    println!(
        "{} {} {} {} {}",
        txn.txid,
        json::protocol(txn.protocol()),
        json::short_enum(txn.state().as_str_name(), "TRANSACTION_STATE_"),
        txn.user_id,
        txn.event_id
    );
    for step in &txn.steps {
        let offset = json::millis_between(&txn.started_at, &step.started_at).unwrap_or(0.0);
        let error = step.error.lines().next().unwrap_or_default();
        println!(
            "+{offset:.1}ms {}{}.{} #{} {} {:.1}ms{}",
            if step.compensation { "~" } else { "" },
            json::participant(step.participant()),
            step.operation,
            step.attempt,
            json::short_enum(step.outcome().as_str_name(), "STEP_OUTCOME_"),
            json::step_millis(step),
            if error.is_empty() {
                String::new()
            } else {
                format!(" {}", error.chars().take(80).collect::<String>().trim_end())
            }
        );
    }
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
    if !txn.trace_id.is_empty() {
        println!("  trace {}", txn.trace_id);
    }
    for step in &txn.steps {
        let offset = json::millis_between(&txn.started_at, &step.started_at).unwrap_or(0.0);
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
