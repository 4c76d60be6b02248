//! WatchPurchase: one purchase's events as they happen — BEGUN, each step as it ends,
//! COMMITTED or ABORTED, then each confirmation attempt until every delivery settled.
//!
//! The events are not pushed from the purchase's path (which must not wait for a
//! watcher); each watcher re-reads the log and the notifier and derives the list. The
//! derivation is built so that what one look yields is always a prefix of what any later
//! look yields, which is what makes `after_sequence` resume without a gap or a repeat:
//! - steps are numbered when they start and written when they end, so a later-numbered
//!   step can be in the log before an earlier one; an unfinished purchase contributes
//!   only its steps 1..n with none missing, a finished one all of them (a step lost in a
//!   coordinator crash leaves a hole that only the end of the purchase closes);
//! - confirmation attempts are numbered by the notifier, gaplessly, in the order they
//!   ended, and only exist once the purchase finished committing.

use std::time::Duration;

use proto::v1::notifier_service_client::NotifierServiceClient;
use proto::v1::*;
use server_kit::outgoing::MeshChannel;
use tokio::sync::mpsc;
use tonic::Status;

use crate::error::Result;
use crate::inspect;
use crate::log::Log;

/// Follows `txid` from event `after + 1` on, until its last event or the watcher leaves.
pub fn spawn(
    log: Log,
    notifier: NotifierServiceClient<MeshChannel>,
    txid: String,
    after: u64,
    interval: Duration,
) -> mpsc::Receiver<Result<WatchPurchaseResponse, Status>> {
    let (sender, receiver) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut sent = after;
        let mut failures = 0u32;
        loop {
            let (events, complete) = match events(&log, notifier.clone(), &txid).await {
                Ok(found) => {
                    failures = 0;
                    found
                }
                Err(error) => {
                    // The log is unreachable: keep the watcher, look again with backoff;
                    // give up (UNAVAILABLE, resumable) after about a minute.
                    failures += 1;
                    if failures > 10 {
                        let _ = sender.send(Err(Status::from(error))).await;
                        return;
                    }
                    tokio::time::sleep(interval * 2u32.pow(failures.min(5))).await;
                    continue;
                }
            };
            for event in events
                .into_iter()
                .skip(usize::try_from(sent).unwrap_or(usize::MAX))
            {
                sent = event.sequence;
                let response = WatchPurchaseResponse { event: Some(event) };
                if sender.send(Ok(response)).await.is_err() {
                    return; // the watcher left
                }
            }
            if complete {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = sender.closed() => return,
            }
        }
    });
    receiver
}

/// Every event of `txid` so far, numbered, and whether there will be no more.
pub async fn events(
    log: &Log,
    mut notifier: NotifierServiceClient<MeshChannel>,
    txid: &str,
) -> Result<(Vec<PurchaseEvent>, bool)> {
    let txn = inspect::get(log, txid).await?;
    let state = txn.state();
    let finished = matches!(
        state,
        TransactionState::Committed | TransactionState::Aborted
    );
    let mut events = Vec::new();
    let mut push = |kind: PurchaseEventKind, at, fill: &dyn Fn(&mut PurchaseEvent)| {
        let mut event = PurchaseEvent {
            sequence: events.len() as u64 + 1,
            txid: txid.to_owned(),
            kind: kind.into(),
            at,
            ..Default::default()
        };
        fill(&mut event);
        events.push(event);
    };
    push(PurchaseEventKind::Begun, txn.started_at, &|e| {
        e.protocol = txn.protocol;
    });
    for (expected, step) in (1..).zip(txn.steps.iter()) {
        if !finished && (step.sequence != expected || step.outcome() == StepOutcome::InFlight) {
            break;
        }
        push(
            PurchaseEventKind::Step,
            step.finished_at.or(step.started_at),
            &|e| e.step = Some(step.clone()),
        );
    }
    match state {
        TransactionState::Aborted => {
            push(PurchaseEventKind::Aborted, txn.finished_at, &|e| {
                e.error = txn.error.clone();
            });
            return Ok((events, true));
        }
        TransactionState::Committed => {
            push(PurchaseEventKind::Committed, txn.finished_at, &|_| {});
        }
        _ => return Ok((events, false)),
    }
    let confirmation = match notifier
        .get_confirmation(GetConfirmationRequest {
            txid: txid.to_owned(),
        })
        .await
    {
        Ok(found) => found.into_inner().confirmation.unwrap_or_default(),
        // Not relayed yet, or the notifier is away: more will come.
        Err(_) => return Ok((events, false)),
    };
    for attempt in &confirmation.attempts {
        push(
            PurchaseEventKind::ConfirmationAttempt,
            attempt.finished_at,
            &|e| e.delivery = Some(attempt.clone()),
        );
    }
    if !confirmation.settled {
        return Ok((events, false));
    }
    let count = |state: DeliveryState| {
        confirmation
            .deliveries
            .iter()
            .filter(|d| d.state() == state)
            .count() as u32
    };
    let at = confirmation
        .attempts
        .last()
        .and_then(|a| a.finished_at)
        .or(confirmation.received_at);
    push(PurchaseEventKind::ConfirmationsSettled, at, &|e| {
        e.delivered = count(DeliveryState::Delivered);
        e.dead_lettered = count(DeliveryState::DeadLettered);
    });
    Ok((events, true))
}
