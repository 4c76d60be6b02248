//! `ticketdrop txn show`: one purchase's step timeline, or several side by side on one
//! clock, as text columns, JSON or a Mermaid chart.

use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use proto::v1::*;
use serde_json::json;
use server_kit::outgoing::MeshChannel;

use crate::endpoints::{self, Endpoints};
use crate::notifications::Child;
use crate::{json, mermaid};

use super::{Format, resolve, transaction};

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Transaction ids (or give --key).
    #[arg(required_unless_present = "keys")]
    pub txids: Vec<String>,
    /// A purchase's idempotency key; repeat it to show several.
    #[arg(long = "key")]
    pub keys: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Text, one line for the purchase and one per step, nothing else.
    #[arg(long, conflicts_with = "format")]
    pub compact: bool,
}

pub async fn run(
    endpoints: &Endpoints,
    coordinator: &mut CoordinatorServiceClient<MeshChannel>,
    args: ShowArgs,
) -> anyhow::Result<()> {
    let _rpc_error = |s: tonic::Status| anyhow::anyhow!(endpoints::describe(&s));
    let ShowArgs {
        txids,
        keys,
        format,
        compact,
    } = args;
    let mut shown = Vec::new();
    for txid in txids {
        shown.push(transaction(coordinator, txid).await?);
    }
    for key in keys {
        let txid = resolve(coordinator, None, Some(key)).await?;
        shown.push(transaction(coordinator, txid).await?);
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
