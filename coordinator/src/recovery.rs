//! Recovery: at start, every unfinished purchase in the log is driven to its end (parked
//! ones too: a restart is when a person expects them retried); then, continuously, the
//! unfinished ones nobody in this process is driving, and parked ones up to
//! [`PARKED_RECOVERY_ATTEMPTS`] times with a doubling wait. Participants' in-doubt lists are
//! reconciled against the log, so a branch prepared in a crash window the log never
//! heard of is aborted (presumed abort).

use std::time::Duration;

use futures::StreamExt;
use proto::v1::*;
use tracing::{info, warn};

use crate::driver::{Driver, Run};
use crate::error::Result;
use crate::log::{State, TxnRecord};
use crate::{admission, lease, reassert, saga, two_pc};

/// Purchases recovered at once.
const CONCURRENCY: usize = 8;
/// Automatic recovery attempts of a parked purchase before it waits for a person (or a
/// restart); the wait between them doubles from the recovery interval.
pub const PARKED_RECOVERY_ATTEMPTS: i32 = 5;

/// Drives every unfinished purchase (at start: parked ones too, whatever their count);
/// returns how many were driven.
pub async fn recover_all(driver: &Driver, at_start: bool, interval: Duration) -> Result<usize> {
    let unfinished = if at_start {
        driver.log.unfinished().await?
    } else {
        driver
            .log
            .due_for_recovery(PARKED_RECOVERY_ATTEMPTS)
            .await?
    };
    let driven = futures::stream::iter(unfinished)
        .map(|txn| async move { recover_one(driver, txn, interval).await })
        .buffer_unordered(CONCURRENCY)
        .filter(|driven| std::future::ready(*driven))
        .count()
        .await;
    reconcile_participants(driver).await;
    if let Err(error) = reassert::after_orders_outage(driver).await {
        warn!(%error, "could not verify orders after an outage");
    }
    if let Err(error) = admission::relay(driver).await {
        warn!(%error, "could not re-send waiting-room releases");
    }
    Ok(driven)
}

/// Drives one purchase unless this process is already driving it.
async fn recover_one(driver: &Driver, txn: TxnRecord, interval: Duration) -> bool {
    let Some(_guard) = driver.claim(&txn.txid) else {
        return false;
    };
    // Re-read under the claim: the live driver may have finished it meanwhile.
    let txn = match driver.log.load(&txn.txid).await {
        Ok(txn) if !txn.state.is_finished() => txn,
        _ => return false,
    };
    if txn.state == State::NeedsAttention {
        // Each automatic attempt is counted in the log, with a doubling wait before the
        // next: a parked purchase is retried a bounded number of times, visibly.
        let attempt = txn.recovery_attempts.max(0).unsigned_abs().min(16);
        let backoff = interval.saturating_mul(1 << attempt);
        if let Err(error) = driver.log.count_recovery(&txn.txid, backoff).await {
            warn!(txid = %txn.txid, %error, "could not count a recovery attempt");
            return false;
        }
        if let Err(error) = driver.log.unpark(&txn.txid).await {
            warn!(txid = %txn.txid, %error, "could not unpark");
            return false;
        }
    }
    let run = match Run::new(driver, &txn).await {
        Ok(run) => run,
        Err(error) => {
            warn!(txid = %txn.txid, %error, "could not start recovery");
            return false;
        }
    };
    info!(txid = %txn.txid, protocol = ?txn.protocol, state = txn.state.as_str(), "recovering");
    let result = match txn.protocol {
        Protocol::TwoPhaseCommit => two_pc::recover(&run, &txn).await,
        Protocol::Saga => saga::recover(&run, &txn).await,
        Protocol::Lease => lease::recover(&run, &txn).await,
        Protocol::Unspecified => Ok(()),
    };
    if result.is_ok() {
        crate::metrics::recovered(txn.protocol);
    }
    if let Err(error) = result {
        // Bounded: the purchase is parked and only a restart drives it again.
        warn!(txid = %txn.txid, %error, "recovery did not finish; parked");
        let _ = driver.log.park(&txn.txid, &error.to_string()).await;
    }
    // An ended purchase gives its waiting-room admission back.
    if txn.admission_id.is_some()
        && let Ok(ended) = driver.log.load(&txn.txid).await
        && ended.state.is_finished()
    {
        admission::release(&run, &ended, ended.state == State::Committed).await;
    }
    true
}

/// Aborts prepared branches whose txid the log does not know (presumed abort), and gives
/// a branch the log has decided the decision again: a participant whose store lost its
/// commit (or abort) holds the branch in doubt once more.
async fn reconcile_participants(driver: &Driver) {
    let p = &driver.participants;
    let mut in_doubt: Vec<(Participant, String)> = Vec::new();
    if let Ok(list) = p
        .inventory
        .clone()
        .list_in_doubt_sales(ListInDoubtSalesRequest {})
        .await
    {
        in_doubt.extend(
            list.into_inner()
                .transactions
                .into_iter()
                .map(|t| (Participant::Inventory, t.txid)),
        );
    }
    if let Ok(list) = p
        .orders
        .clone()
        .list_in_doubt_orders(ListInDoubtOrdersRequest {})
        .await
    {
        in_doubt.extend(
            list.into_inner()
                .transactions
                .into_iter()
                .map(|t| (Participant::Orders, t.txid)),
        );
    }
    if let Ok(list) = p
        .payments
        .clone()
        .list_in_doubt_payments(ListInDoubtPaymentsRequest {})
        .await
    {
        in_doubt.extend(
            list.into_inner()
                .transactions
                .into_iter()
                .map(|t| (Participant::Payments, t.txid)),
        );
    }
    for at in [
        Participant::Inventory,
        Participant::Orders,
        Participant::Payments,
    ] {
        crate::metrics::in_doubt(at, in_doubt.iter().filter(|(p, _)| *p == at).count());
    }
    for (participant, txid) in in_doubt {
        match driver.log.find(&txid).await {
            Ok(None) => {
                warn!(%txid, ?participant, "in-doubt branch unknown to the log; aborting it");
                let aborted = match participant {
                    Participant::Inventory => p
                        .inventory
                        .clone()
                        .abort_sale(AbortSaleRequest { txid: txid.clone() })
                        .await
                        .map(drop),
                    Participant::Orders => p
                        .orders
                        .clone()
                        .abort_order(AbortOrderRequest { txid: txid.clone() })
                        .await
                        .map(drop),
                    _ => p
                        .payments
                        .clone()
                        .abort_payment(AbortPaymentRequest { txid: txid.clone() })
                        .await
                        .map(drop),
                };
                if let Err(status) = aborted {
                    warn!(%txid, error = %status, "could not abort an unknown branch");
                }
            }
            Ok(Some(txn)) if txn.state.is_finished() => {
                // Decided and finished in the log, yet in doubt here: the participant lost
                // the decision's write. Send it again (phase two is idempotent).
                warn!(%txid, ?participant, state = txn.state.as_str(),
                      "a finished purchase is in doubt at a participant; sending the decision again");
                let run = match Run::new(driver, &txn).await {
                    Ok(run) => run,
                    Err(error) => {
                        warn!(%txid, %error, "could not start re-driving");
                        continue;
                    }
                };
                let redriven = if txn.state == State::Committed {
                    two_pc::commit_one(
                        &run,
                        participant,
                        txn.payment_id.as_deref().unwrap_or_default(),
                    )
                    .await
                    .map(drop)
                } else {
                    two_pc::abort_participants(&run, &[participant]).await
                };
                if let Err(error) = redriven {
                    warn!(%txid, error = %crate::driver::describe(error.status()),
                          "could not send the decision again; next round");
                }
            }
            Ok(Some(_)) => {} // unfinished: the log drives it
            Err(error) => warn!(%txid, %error, "could not look up an in-doubt branch"),
        }
    }
}

/// Recovers at start, then every `interval` for purchases nobody is driving.
pub async fn run(driver: Driver, interval: Duration) {
    match recover_all(&driver, true, interval).await {
        Ok(0) => {}
        Ok(n) => info!(recovered = n, "recovery at start finished"),
        Err(error) => warn!(%error, "recovery at start failed; retrying on the next round"),
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Err(error) = recover_all(&driver, false, interval).await {
            warn!(%error, "recovery round failed");
        }
    }
}
