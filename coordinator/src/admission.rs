//! The waiting room's part in a purchase. Before a purchase is logged, its admission is
//! claimed: the room answers "no room" (the event needs none), or marks the buyer's
//! admission as used by this purchase, or refuses (PERMISSION_DENIED, nothing is
//! written anywhere). Once the purchase has ended — committed or aborted — its admission
//! is released, so the room gives the slot to the next fan. A release that does not get
//! through is re-sent by recovery: the log keeps which purchases were released.

use std::time::Duration;

use chrono::{DateTime, Utc};
use proto::v1::{ClaimAdmissionRequest, Participant, ReleaseAdmissionRequest};
use tonic::Code;
use tracing::warn;

use crate::driver::{Driver, Run, Step};
use crate::error::{Error, Result};
use crate::log::{State, TxnRecord};
use crate::model::Purchase;
use crate::rpc;

/// What the room said about a purchase.
#[derive(Debug, Clone)]
pub enum Claim {
    /// The event has no open room: no admission needed.
    NoRoom,
    /// The buyer's admission is now used by this purchase.
    Claimed {
        admission_id: String,
        started_at: DateTime<Utc>,
    },
}

impl Claim {
    pub fn admission_id(&self) -> Option<&str> {
        match self {
            Claim::NoRoom => None,
            Claim::Claimed { admission_id, .. } => Some(admission_id),
        }
    }
}

/// Claims the purchase's admission, retrying a room that does not answer with the
/// forward policy (each failed attempt logged). The admission must have been unexpired
/// at `received_at`, when this coordinator received the purchase: a fan who bought in
/// time does not lose the turn to the coordinator's queue.
pub async fn claim(
    driver: &Driver,
    purchase: &Purchase,
    received_at: DateTime<Utc>,
) -> Result<Claim> {
    let request = ClaimAdmissionRequest {
        event_id: purchase.event_id.clone(),
        user_id: purchase.user_id.clone(),
        admission_token: purchase.admission_token.clone(),
        idempotency_key: purchase.idempotency_key.clone(),
        seats: purchase.seat_count(),
        received_at: Some(server_kit::convert::timestamp(received_at)),
    };
    let policy = driver.policies.forward;
    let started_at = Utc::now();
    let mut attempt = 1;
    loop {
        let mut room = driver.participants.waiting_room.clone();
        let failure =
            match tokio::time::timeout(policy.timeout, room.claim_admission(request.clone())).await
            {
                Ok(Ok(answer)) => {
                    let answer = answer.into_inner();
                    return Ok(if answer.room_open {
                        Claim::Claimed {
                            admission_id: answer.admission_id,
                            started_at,
                        }
                    } else {
                        Claim::NoRoom
                    });
                }
                Ok(Err(status)) if !retryable(status.code()) => {
                    return Err(Error::AdmissionRefused(status));
                }
                Ok(Err(status)) => crate::driver::describe(&status),
                Err(_) => format!("no answer within {:?}", policy.timeout),
            };
        if attempt >= policy.attempts {
            warn!(user_id = %purchase.user_id, event_id = %purchase.event_id, attempt,
                  error = %failure, "waiting room did not answer the claim; giving up");
            return Err(Error::WaitingRoomUnavailable(failure));
        }
        warn!(user_id = %purchase.user_id, event_id = %purchase.event_id, attempt,
              error = %failure, "waiting room did not answer the claim; retrying");
        tokio::time::sleep(policy.backoff(attempt)).await;
        attempt += 1;
    }
}

fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::Internal
            | Code::Cancelled
            | Code::ResourceExhausted
    )
}

/// Tells the room that a finished purchase ended, as a logged step, and notes it in the
/// log. A failure is left for recovery's relay.
pub async fn release(run: &Run, txn: &TxnRecord, committed: bool) {
    let Some(admission_id) = txn.admission_id.clone() else {
        return;
    };
    let p = &run.driver.participants;
    let request = ReleaseAdmissionRequest {
        event_id: txn.purchase.event_id.clone(),
        user_id: txn.purchase.user_id.clone(),
        admission_id,
        committed,
        idempotency_key: txn.purchase.idempotency_key.clone(),
    };
    let released = run
        .call(
            Step::forward(Participant::WaitingRoom, "release_admission"),
            run.driver.policies.finish,
            || rpc!(p.waiting_room, release_admission, request.clone()),
        )
        .await;
    match released {
        Ok(_) => {
            if let Err(error) = run.driver.log.admission_released(&run.owned).await {
                warn!(txid = %run.txid, %error, "could not note the released admission; recovery sends it again");
            }
        }
        Err(error) => warn!(txid = %run.txid, error = %crate::driver::describe(error.status()),
                            "admission not released; recovery sends it again"),
    }
}

/// How long after its end a purchase's release is left to the purchase itself before
/// recovery sends it (the purchase sends it at once; this is for a crash in between).
const RELAY_GRACE: Duration = Duration::from_secs(10);

/// Re-sends the releases of finished purchases the room was not told about (ended at
/// least [`RELAY_GRACE`] ago, on the log's clock), each as the purchase's owner for the
/// moment.
pub async fn relay(driver: &Driver) -> Result<usize> {
    let mut sent = 0;
    for txn in driver.log.unreleased_admissions(200, RELAY_GRACE).await? {
        let Some((txn, owned)) = crate::recovery::take_over_finished(driver, &txn.txid).await
        else {
            continue;
        };
        let run = Run::new(driver, &txn, owned).await?;
        release(&run, &txn, txn.state == State::Committed).await;
        let _ = driver.log.release(&run.owned).await;
        sent += 1;
    }
    Ok(sent)
}
