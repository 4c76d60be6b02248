//! `ticketdrop txn pending`: purchases in doubt, retrying or parked, with their
//! unfinished steps.

use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use proto::v1::*;
use serde_json::json;
use server_kit::outgoing::MeshChannel;

use crate::endpoints::{self, Endpoints};
use crate::{json, mermaid};

use super::Format;

#[derive(Debug, clap::Args)]
pub struct PendingArgs {
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub async fn run(
    _endpoints: &Endpoints,
    coordinator: &mut CoordinatorServiceClient<MeshChannel>,
    args: PendingArgs,
) -> anyhow::Result<()> {
    let rpc_error = |s: tonic::Status| anyhow::anyhow!(endpoints::describe(&s));
    let PendingArgs { format } = args;
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
