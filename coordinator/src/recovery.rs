//! Recovery, shared by every coordinator of the log. Each one, every takeover interval,
//! takes over the purchases whose ownership lapsed — a dead or paused coordinator's, and
//! parked ones whose automatic retry is due — and drives them to their end; at start it
//! takes parked ones whatever their count (a restart is when a person expects them
//! retried). Every recovery interval it also reconciles the participants' in-doubt
//! branches of its own log against the log, re-asserts orders after an orders outage and
//! re-sends lost admission releases.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use proto::v1::*;
use tracing::{info, warn};

use crate::driver::{Driver, Run};
use crate::error::Result;
use crate::log::{State, TakenOver, TxnRecord};
use crate::ownership::Owned;
use crate::{admission, lease, reassert, saga, two_pc};

/// Purchases this coordinator recovers at once: a takeover round takes no more than
/// the free places (what it takes, it drives at once).
const CONCURRENCY: usize = 16;
/// Automatic recovery attempts of a parked purchase before it waits for a person (or a
/// restart); the wait between them doubles from the recovery interval.
pub const PARKED_RECOVERY_ATTEMPTS: i32 = 5;

/// Takes over purchases whose ownership lapsed (at start: parked ones whatever their
/// count), as many as there are free places, and starts driving each to its end;
/// returns how many it took.
pub async fn take_over_and_drive(
    driver: &Driver,
    places: &Arc<Semaphore>,
    at_start: bool,
    interval: Duration,
) -> Result<usize> {
    let free = places.available_permits();
    if free == 0 {
        return Ok(0);
    }
    let taken = driver
        .log
        .take_over_lapsed(free as i64, PARKED_RECOVERY_ATTEMPTS, at_start)
        .await?;
    crate::metrics::taken_over(taken.len());
    let count = taken.len();
    for taken in taken {
        let Ok(place) = places.clone().try_acquire_owned() else {
            break; // cannot happen: this task alone takes places
        };
        let driver = driver.clone();
        tokio::spawn(async move {
            let _place = place;
            recover_one(&driver, taken, interval).await;
        });
    }
    Ok(count)
}

/// Drives one purchase this coordinator just took over.
async fn recover_one(driver: &Driver, taken: TakenOver, interval: Duration) {
    let TakenOver { txn, owned } = taken;
    if txn.state == State::NeedsAttention {
        // Each automatic attempt is counted in the log, with a doubling wait before the
        // next: a parked purchase is retried a bounded number of times, visibly.
        let attempt = txn.recovery_attempts.max(0).unsigned_abs().min(16);
        let backoff = interval.saturating_mul(1 << attempt);
        if let Err(error) = driver.log.unpark(&owned, backoff).await {
            warn!(txid = %txn.txid, %error, "could not unpark");
            return;
        }
    }
    let run = match Run::new(driver, &txn, owned).await {
        Ok(run) => run,
        Err(error) => {
            warn!(txid = %txn.txid, %error, "could not start recovery");
            return;
        }
    };
    info!(txid = %txn.txid, protocol = ?txn.protocol, state = txn.state.as_str(),
          epoch = run.owned.epoch, "recovering");
    let result = match txn.protocol {
        Protocol::TwoPhaseCommit => two_pc::recover(&run, &txn).await,
        Protocol::Saga => saga::recover(&run, &txn).await,
        Protocol::Lease => lease::recover(&run, &txn).await,
        Protocol::Unspecified => Ok(()),
    };
    if run.is_lost() {
        // Taken over again meanwhile: the new owner finishes it.
        return;
    }
    match result {
        Ok(()) => crate::metrics::recovered(txn.protocol),
        Err(error) => {
            // Bounded: the purchase is parked and retried when due.
            warn!(txid = %txn.txid, %error, "recovery did not finish; parked");
            let _ = driver.log.park(&run.owned, &error.to_string()).await;
        }
    }
    // An ended purchase gives its waiting-room admission back.
    if txn.admission_id.is_some()
        && let Ok(ended) = driver.log.load(&txn.txid).await
        && ended.state.is_finished()
    {
        admission::release(&run, &ended, ended.state == State::Committed).await;
    }
}

/// Work on a purchase after its end (re-sending a decision, re-asserting an order,
/// releasing an admission): taken over for it, so that its rows are written by one
/// coordinator at a time. None when another coordinator (or a task here) holds it now.
pub async fn take_over_finished(driver: &Driver, txid: &str) -> Option<(TxnRecord, Owned)> {
    match driver.log.take_over(txid).await {
        Ok(Some(TakenOver { txn, owned })) => Some((txn, owned)),
        Ok(None) => None,
        Err(error) => {
            warn!(%txid, %error, "could not take a purchase over");
            None
        }
    }
}

/// One recovery round beyond takeovers: the participants' in-doubt branches of this
/// log, orders after an outage, lost admission releases.
pub async fn reconcile(driver: &Driver) {
    reconcile_participants(driver).await;
    if let Err(error) = reassert::after_orders_outage(driver).await {
        warn!(%error, "could not verify orders after an outage");
    }
    if let Err(error) = admission::relay(driver).await {
        warn!(%error, "could not re-send waiting-room releases");
    }
}

/// The branches a participant holds in doubt for purchases of this log (a branch of
/// another log sharing the participant is left alone, and counted): a branch whose
/// purchase the log does not know is aborted (presumed abort), and a branch the log
/// has decided and finished gets the decision again (a participant whose store lost
/// its commit or abort holds the branch in doubt once more).
async fn reconcile_participants(driver: &Driver) {
    let p = &driver.participants;
    let log_id = driver.log.log_id().to_owned();
    // The log's clock before the lists are read. A purchase that ended after it may be
    // listed in doubt only because its decision was still on its way to the participant
    // (not lost): re-sending it would add steps to a purchase after its end and take it
    // over again. The next round sees whether the participant really lost it.
    let listed_at = match driver.log.now().await {
        Ok(now) => now,
        Err(error) => {
            warn!(%error, "could not read the log's clock; reconciliation waits for the next round");
            return;
        }
    };
    let mut in_doubt: Vec<(Participant, InDoubtTransaction)> = Vec::new();
    // Branches of other logs the participants left out of the lists: counted, untouched.
    let mut foreign: Vec<(Participant, u32)> = Vec::new();
    if let Ok(list) = p
        .inventory
        .clone()
        .list_in_doubt_sales(ListInDoubtSalesRequest {
            log_id: log_id.clone(),
        })
        .await
    {
        let list = list.into_inner();
        foreign.push((Participant::Inventory, list.other_logs));
        in_doubt.extend(
            list.transactions
                .into_iter()
                .map(|t| (Participant::Inventory, t)),
        );
    }
    if let Ok(list) = p
        .orders
        .clone()
        .list_in_doubt_orders(ListInDoubtOrdersRequest {
            log_id: log_id.clone(),
        })
        .await
    {
        let list = list.into_inner();
        foreign.push((Participant::Orders, list.other_logs));
        in_doubt.extend(
            list.transactions
                .into_iter()
                .map(|t| (Participant::Orders, t)),
        );
    }
    if let Ok(list) = p
        .payments
        .clone()
        .list_in_doubt_payments(ListInDoubtPaymentsRequest {
            log_id: log_id.clone(),
        })
        .await
    {
        let list = list.into_inner();
        foreign.push((Participant::Payments, list.other_logs));
        in_doubt.extend(
            list.transactions
                .into_iter()
                .map(|t| (Participant::Payments, t)),
        );
    }
    for at in [
        Participant::Inventory,
        Participant::Orders,
        Participant::Payments,
    ] {
        crate::metrics::in_doubt(at, in_doubt.iter().filter(|(p, _)| *p == at).count());
    }
    for (at, branches) in foreign {
        crate::metrics::foreign_branches(at, branches as usize);
    }
    // Another log's branch: never touched (its own coordinators decide it).
    in_doubt.retain(|(_, branch)| branch.log_id.is_empty() || branch.log_id == log_id);
    if in_doubt.is_empty() {
        return;
    }
    // Every listed purchase in one read (a busy drop holds dozens of branches in doubt
    // at any moment, each legitimately on its way to its decision).
    let txids: Vec<String> = in_doubt
        .iter()
        .map(|(_, branch)| branch.txid.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let logged: std::collections::HashMap<String, crate::log::TxnRecord> =
        match driver.log.load_many(&txids).await {
            Ok(found) => found
                .into_iter()
                .map(|txn| (txn.txid.clone(), txn))
                .collect(),
            Err(error) => {
                warn!(%error, branches = txids.len(), "could not look up the in-doubt branches");
                return;
            }
        };
    for (participant, branch) in in_doubt {
        let txid = branch.txid;
        match logged.get(&txid) {
            None if branch.log_id == log_id => {
                warn!(%txid, ?participant, "in-doubt branch of this log unknown to it; aborting it");
                if let Err(status) = abort_unknown(driver, participant, &txid).await {
                    warn!(%txid, error = %status, "could not abort an unknown branch");
                }
            }
            // A branch that does not say whose it is, unknown to this log: perhaps
            // another log's (written before the participant recorded log ids).
            None => {
                warn!(%txid, ?participant, "in-doubt branch of no known log; left alone");
            }
            Some(txn) if txn.state.is_finished() => {
                if txn.finished_at.is_some_and(|ended| ended < listed_at) {
                    redrive(driver, participant, &txid).await;
                }
            }
            Some(_) => {} // unfinished: its owner drives it
        }
    }
}

async fn abort_unknown(
    driver: &Driver,
    participant: Participant,
    txid: &str,
) -> std::result::Result<(), tonic::Status> {
    let p = &driver.participants;
    let log_id = driver.log.log_id().to_owned();
    let txid = txid.to_owned();
    match participant {
        Participant::Inventory => p
            .inventory
            .clone()
            .abort_sale(AbortSaleRequest { txid, log_id })
            .await
            .map(drop),
        Participant::Orders => p
            .orders
            .clone()
            .abort_order(AbortOrderRequest { txid, log_id })
            .await
            .map(drop),
        _ => p
            .payments
            .clone()
            .abort_payment(AbortPaymentRequest { txid, log_id })
            .await
            .map(drop),
    }
}

/// Decided and finished in the log, yet in doubt at `participant`: the participant lost
/// the decision's write. Send it again (phase two is idempotent), as the purchase's
/// owner for the moment.
async fn redrive(driver: &Driver, participant: Participant, txid: &str) {
    let Some((txn, owned)) = take_over_finished(driver, txid).await else {
        return; // another coordinator is at it
    };
    warn!(%txid, ?participant, state = txn.state.as_str(),
          "a finished purchase is in doubt at a participant; sending the decision again");
    let run = match Run::new(driver, &txn, owned).await {
        Ok(run) => run,
        Err(error) => {
            warn!(%txid, %error, "could not start re-driving");
            return;
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
    let _ = driver.log.release(&run.owned).await;
}

/// Takes over lapsed purchases every `takeover_interval` (at start: parked ones too),
/// and reconciles every `recovery_interval`.
pub async fn run(driver: Driver, takeover_interval: Duration, recovery_interval: Duration) {
    let places = Arc::new(Semaphore::new(CONCURRENCY));
    match take_over_and_drive(&driver, &places, true, recovery_interval).await {
        Ok(0) => {}
        Ok(n) => info!(taken = n, "recovery at start took purchases over"),
        Err(error) => warn!(%error, "recovery at start failed; retrying on the next round"),
    }
    reconcile(&driver).await;
    let mut takeovers = tokio::time::interval(takeover_interval);
    takeovers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rounds = tokio::time::interval(recovery_interval);
    rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    takeovers.tick().await;
    rounds.tick().await;
    loop {
        tokio::select! {
            _ = takeovers.tick() => {
                if let Err(error) =
                    take_over_and_drive(&driver, &places, false, recovery_interval).await
                {
                    warn!(%error, "takeover round failed");
                }
            }
            _ = rounds.tick() => reconcile(&driver).await,
        }
    }
}
