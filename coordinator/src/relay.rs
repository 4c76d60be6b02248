//! The outbox relay: hands each committed purchase's confirmation to the notifier.
//!
//! The COMMIT decision recorded the confirmation in the outbox in the same statement, so
//! it cannot be lost; the relay waits until the purchase has finished committing (its
//! tickets exist), sends it with Enqueue — idempotent by txid, so a relay killed after
//! the notifier's answer and before marking the row only repeats a no-op — and marks a
//! round's relayed rows in one statement. A failed hand-over is retried with exponential backoff and jitter up to a
//! ceiling; past it the row stays unrelayed with its error, which `txn show` displays.
//! Nothing here is on a purchase's path.

use std::collections::HashMap;
use std::time::Duration;

use prost::Message;
use proto::v1::notifier_service_client::NotifierServiceClient;
use proto::v1::{Contact, EnqueueRequest, PurchaseResponse};
use server_kit::outgoing::MeshChannel;
use tracing::Instrument;

use crate::log::{Log, TxnRecord};

/// Confirmations handed on per round.
const BATCH: i64 = 64;
/// How long a claimed row belongs to this relay; after a crash it is due again then.
const CLAIM: Duration = Duration::from_secs(10);
/// One hand-over's time budget.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Hand-over attempts before the relay stops trying a row (about 40 minutes).
const MAX_ATTEMPTS: i32 = 50;
const BASE_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often the outbox's lag is measured for the metrics.
const LAG_INTERVAL: Duration = Duration::from_secs(1);

pub async fn run(log: Log, notifier: NotifierServiceClient<MeshChannel>, interval: Duration) {
    let mut lag_measured = std::time::Instant::now() - LAG_INTERVAL;
    loop {
        if lag_measured.elapsed() >= LAG_INTERVAL {
            lag_measured = std::time::Instant::now();
            match log.outbox_lag().await {
                Ok((unrelayed, oldest_s)) => crate::metrics::outbox(unrelayed, oldest_s),
                Err(error) => tracing::debug!(%error, "measuring the outbox lag failed"),
            }
        }
        match log.claim_outbox(BATCH, CLAIM).await {
            Ok(claimed) if !claimed.is_empty() => {
                let full = claimed.len() as i64 == BATCH;
                // The claimed purchases in one read.
                let txids: Vec<String> = claimed.iter().map(|(txid, _)| txid.clone()).collect();
                let mut loaded: HashMap<String, TxnRecord> = match log.load_many(&txids).await {
                    Ok(found) => found.into_iter().map(|t| (t.txid.clone(), t)).collect(),
                    Err(error) => {
                        tracing::warn!(%error, "reading the claimed purchases failed");
                        HashMap::new()
                    }
                };
                let relayed: Vec<String> =
                    futures::future::join_all(claimed.into_iter().map(|(txid, attempt)| {
                        let txn = loaded.remove(&txid);
                        relay(&log, notifier.clone(), txid, attempt, txn)
                    }))
                    .await
                    .into_iter()
                    .flatten()
                    .collect();
                // The round's hand-overs marked in one commit. A relay stopped before it
                // only repeats them (Enqueue is idempotent by txid).
                if !relayed.is_empty()
                    && let Err(error) = log.outbox_relayed(&relayed).await
                {
                    tracing::warn!(%error, confirmations = relayed.len(),
                        "recording the relayed confirmations failed; they are due again");
                }
                if full {
                    continue;
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "reading the outbox failed; trying again"),
        }
        tokio::time::sleep(interval).await;
    }
}

/// Hands one confirmation on; its txid when the notifier took it (the caller marks the
/// round's together), None when it failed (recorded here, with its next attempt).
async fn relay(
    log: &Log,
    mut notifier: NotifierServiceClient<MeshChannel>,
    txid: String,
    attempt: i32,
    txn: Option<TxnRecord>,
) -> Option<String> {
    // The hand-over continues the purchase's trace, so the notifier's lines join it.
    let span = server_kit::trace::continued(
        txn.as_ref().and_then(|txn| txn.traceparent.as_deref()),
        &txid,
    );
    let result = async {
        let request = confirmation(txn.ok_or("the purchase could not be read")?)?;
        let mut call = tonic::Request::new(request);
        call.set_timeout(CALL_TIMEOUT);
        notifier
            .enqueue(call)
            .await
            .map_err(|s| format!("notifier: {:?}: {}", s.code(), s.message()))
    }
    .instrument(span)
    .await;
    crate::metrics::relayed(result.is_ok());
    let recorded = match result {
        Ok(_) => {
            tracing::debug!(%txid, attempt, "confirmation relayed");
            return Some(txid);
        }
        Err(error) if attempt >= MAX_ATTEMPTS => {
            tracing::error!(%txid, attempt, %error,
                "the relay gave up on this confirmation; it stays in the outbox (txn show)");
            log.outbox_failed(&txid, &error, None).await
        }
        Err(error) => {
            let retry_in = server_kit::retry::backoff(
                BASE_BACKOFF,
                MAX_BACKOFF,
                u32::try_from(attempt).unwrap_or(1),
            );
            tracing::warn!(%txid, attempt, %error, retry_in_ms = retry_in.as_millis() as u64,
                "relaying a confirmation failed");
            log.outbox_failed(&txid, &error, Some(retry_in)).await
        }
    };
    if let Err(error) = recorded {
        tracing::warn!(%txid, %error, "recording the relay's outcome failed; the row is due again");
    }
    None
}

/// The notifier's view of a committed purchase: what its answer said (seats, tickets,
/// money) and where the buyer wants it.
fn confirmation(txn: TxnRecord) -> Result<EnqueueRequest, String> {
    let response = txn
        .response
        .as_deref()
        .ok_or("the committed purchase has no recorded answer")?;
    let response = PurchaseResponse::decode(response).map_err(|e| format!("its answer: {e}"))?;
    Ok(EnqueueRequest {
        txid: txn.txid,
        user_id: txn.purchase.user_id,
        event_id: txn.purchase.event_id,
        order_id: response.order_id,
        seats: response.seats,
        tickets: response.tickets,
        amount_cents: response.amount_cents,
        currency: response.currency,
        contact: Some(Contact {
            email: txn.purchase.email.unwrap_or_default(),
            phone: txn.purchase.phone.unwrap_or_default(),
        }),
    })
}
