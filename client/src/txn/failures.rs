//! `ticketdrop txn failures`: failed purchases by cause, or failed steps by message,
//! protocol, step or participant; with `--follow-children`, the confirmations' failures.

use std::time::Duration;

use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use proto::v1::*;
use serde_json::json;
use server_kit::outgoing::MeshChannel;

use crate::endpoints::{self, Endpoints};
use crate::{json, mermaid};

use super::{Format, GroupBy, since_timestamp};

#[derive(Debug, clap::Args)]
pub struct FailuresArgs {
    /// How far back, e.g. 5m, 1h.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
    pub since: Duration,
    #[arg(long, value_enum, default_value_t = GroupBy::Error)]
    pub group_by: GroupBy,
    /// Only this event's purchases.
    #[arg(long)]
    pub event: Option<String>,
    /// Count failed confirmation attempts too (the notifier's), as children of the
    /// purchases: "confirmation: <error>" by error, "deliver_<channel>" by step,
    /// "notifier" by participant, "confirmation" by protocol.
    #[arg(long)]
    pub follow_children: bool,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub async fn run(
    endpoints: &Endpoints,
    coordinator: &mut CoordinatorServiceClient<MeshChannel>,
    args: FailuresArgs,
) -> anyhow::Result<()> {
    let rpc_error = |s: tonic::Status| anyhow::anyhow!(endpoints::describe(&s));
    let FailuresArgs {
        since,
        group_by,
        event,
        follow_children,
        format,
    } = args;
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
