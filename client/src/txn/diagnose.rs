//! `ticketdrop txn diagnose`: a purchase's first failing step, what was compensated,
//! and how its confirmation went.

use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use proto::v1::*;
use serde_json::json;
use server_kit::outgoing::MeshChannel;

use crate::endpoints::{self, Endpoints};
use crate::json;
use crate::notifications::{self, Child, ChildState};

use super::{resolve, transaction};

#[derive(Debug, clap::Args)]
pub struct DiagnoseArgs {
    /// Transaction id (or give --key).
    #[arg(required_unless_present = "key", conflicts_with = "key")]
    pub txid: Option<String>,
    /// The purchase's idempotency key.
    #[arg(long)]
    pub key: Option<String>,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(
    endpoints: &Endpoints,
    coordinator: &mut CoordinatorServiceClient<MeshChannel>,
    args: DiagnoseArgs,
) -> anyhow::Result<()> {
    let _rpc_error = |s: tonic::Status| anyhow::anyhow!(endpoints::describe(&s));
    let DiagnoseArgs {
        txid,
        key,
        json: json_out,
    } = args;
    let txid = resolve(coordinator, txid, key).await?;
    let txn = transaction(coordinator, txid).await?;
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
