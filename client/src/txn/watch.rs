//! `ticketdrop txn watch`: a purchase live over WatchPurchase, resumed after a broken
//! stream from the last event seen.

use std::time::Duration;

use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use proto::v1::*;
use serde_json::json;
use server_kit::outgoing::MeshChannel;

use crate::endpoints::{self};
use crate::json;
use crate::notifications::{self};

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Transaction id (or give --key).
    #[arg(required_unless_present = "key", conflicts_with = "key")]
    pub txid: Option<String>,
    /// The purchase's idempotency key.
    #[arg(long)]
    pub key: Option<String>,
    /// Start after this event (0: from BEGUN).
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// One JSON object per event.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(
    coordinator: &mut CoordinatorServiceClient<MeshChannel>,
    args: WatchArgs,
) -> anyhow::Result<()> {
    watch(coordinator, args.txid, args.key, args.after, args.json).await
}

/// Streams WatchPurchase, printing each event; after a broken stream it reconnects
/// (up to 5 times in a row, with backoff) from the last event seen.
pub async fn watch(
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
