//! What every protocol uses to talk to a participant: a per-call timeout, a bounded
//! retry policy with exponential backoff and jitter, and one step row per attempt in
//! the log. Nothing retries forever; a call that runs out of attempts says so. No call
//! is made for a purchase this coordinator may no longer own.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::outcome::Outcome;
use proto::v1::{Participant, PhaseTiming, StepOutcome};
use tonic::{Code, Response, Status};
use tracing::warn;

use crate::log::{Attempt, Log, TxnRecord};
use crate::ownership::{Owned, Standing};
use crate::participants::Participants;

/// One attempt of a participant RPC as an owned future: tonic clients borrow `&mut
/// self`, so each attempt clones the (cheap, channel-sharing) client.
#[macro_export]
macro_rules! rpc {
    ($client:expr, $method:ident, $request:expr) => {{
        let mut client = $client.clone();
        let request = $request;
        async move { client.$method(request).await }
    }};
}

/// How a participant call is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// Attempts before giving up.
    pub attempts: u32,
    /// Backoff after the first failed attempt; doubles each time.
    pub backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
    /// Retry ABORTED (a conflict) too: for phase two and compensations, which must
    /// eventually go through, unlike forward steps, where a conflict is an answer.
    pub retry_conflicts: bool,
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt`: doubling, capped, with jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        server_kit::retry::backoff(self.backoff, self.max_backoff, attempt)
    }
}

/// The policies the protocols use.
#[derive(Debug, Clone, Copy)]
pub struct Policies {
    /// Forward steps before the decision: few attempts; giving up means aborting.
    pub forward: RetryPolicy,
    /// Phase two, compensations and steps after a saga's pivot: many attempts; giving
    /// up parks the purchase as needing attention.
    pub finish: RetryPolicy,
}

/// Whether a step moves the purchase forward or undoes one that did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Forward,
    Compensation,
}

/// What a participant call is: who, which operation, and which way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub participant: Participant,
    pub operation: &'static str,
    pub kind: Kind,
}

impl Step {
    pub const fn forward(participant: Participant, operation: &'static str) -> Self {
        Self {
            participant,
            operation,
            kind: Kind::Forward,
        }
    }

    pub const fn compensation(participant: Participant, operation: &'static str) -> Self {
        Self {
            participant,
            operation,
            kind: Kind::Compensation,
        }
    }

    fn is_compensation(self) -> bool {
        self.kind == Kind::Compensation
    }
}

/// How a participant call failed.
#[derive(Debug, Clone)]
pub enum CallError {
    /// The participant said no: a definite answer.
    Refused(Status),
    /// No answer we can trust (timeout, unavailable) after every attempt.
    Unknown(Status),
    /// Not made: another coordinator owns the purchase now and drives it.
    NotOwner(Status),
}

impl CallError {
    pub fn status(&self) -> &Status {
        match self {
            CallError::Refused(status)
            | CallError::Unknown(status)
            | CallError::NotOwner(status) => status,
        }
    }
}

/// What every purchase's run shares. Each protocol reaches for its own part: the log and
/// the participants for all of them, the retry policies for every call, `hold_ttl` for
/// the saga, `leases` for the lease protocol, `sold_out` for the fast answer, and
/// `orders_outage` for re-asserting what an orders outage may have lost.
#[derive(Clone)]
pub struct Driver {
    /// The transaction log: the purchases, their steps, ownership and decisions.
    pub log: Log,
    /// The clients of inventory, orders, payments and the waiting room.
    pub participants: Participants,
    /// Timeouts, attempts and backoff of forward steps and of finishing calls.
    pub policies: Policies,
    /// How long a saga holds its seats.
    pub hold_ttl: Duration,
    /// The lease protocol's Redis side.
    pub leases: Leases,
    /// Events inventory recently called sold out (the fast path).
    pub sold_out: Arc<crate::sold_out::SoldOut>,
    /// What recovery must re-check after a call to orders ended with an unknown outcome.
    pub orders_outage: OrdersOutage,
}

/// The lease protocol's locks and fencing tokens in Redis.
#[derive(Clone)]
pub struct Leases {
    pub redis: redis::aio::ConnectionManager,
    /// How long a lease lasts unrenewed.
    pub ttl: Duration,
    /// The lab's negative control only: lease writes carry no fencing token.
    pub unsafe_no_fencing: bool,
}

/// An outage of orders that may have cost acknowledged writes (see `reassert`).
#[derive(Clone, Default)]
pub struct OrdersOutage {
    /// How far before the first failed call to orders an acknowledged orders write may
    /// have been lost.
    pub window: Duration,
    /// When (on this process's monotonic clock) a call to orders that ended with an
    /// unknown outcome began, until recovery has verified the orders decided around it.
    pub since: Arc<Mutex<Option<Instant>>>,
}

/// One purchase being driven by this coordinator, which owns it: its step sequence
/// and phase timings.
pub struct Run {
    pub driver: Driver,
    pub txid: String,
    /// The purchase's ownership, at the epoch this run drives it.
    pub owned: Owned,
    /// The purchase's event, and whether it buys best-available seats.
    pub event_id: String,
    pub best_available: bool,
    sequence: AtomicU32,
    phases: Mutex<Vec<PhaseTiming>>,
    started: Instant,
    /// Operations with an attempt whose outcome is unknown: they may have applied.
    uncertain: Mutex<HashSet<(i32, String)>>,
    /// Attempts each call had in earlier runs of the transaction (before a restart).
    earlier_attempts: Vec<((String, String, bool), u32)>,
    /// The run ended with the purchase parked: aborted with its undo unfinished, or its
    /// outcome unknown. It is not over yet (recovery finishes it).
    parked: std::sync::atomic::AtomicBool,
}

impl Run {
    /// A run of a purchase found in the log (recovery): its steps and attempts are
    /// numbered on from the earlier runs'.
    pub async fn new(driver: &Driver, txn: &TxnRecord, owned: Owned) -> crate::error::Result<Self> {
        let earlier = driver.log.earlier_steps(&txn.txid).await?;
        let mut run = Self::fresh(driver, txn, owned);
        run.sequence = AtomicU32::new(earlier.next_sequence);
        run.earlier_attempts = earlier.attempts;
        Ok(run)
    }

    /// A run of a purchase just logged: its steps start at 1.
    pub fn fresh(driver: &Driver, txn: &TxnRecord, owned: Owned) -> Self {
        Self {
            driver: driver.clone(),
            txid: txn.txid.clone(),
            owned,
            event_id: txn.purchase.event_id.clone(),
            best_available: txn.purchase.quantity > 0,
            sequence: AtomicU32::new(1),
            phases: Mutex::new(Vec::new()),
            started: Instant::now(),
            uncertain: Mutex::new(HashSet::new()),
            earlier_attempts: Vec::new(),
            parked: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Notes that the run parks the purchase (it is not over).
    pub fn parked(&self) {
        self.parked.store(true, Ordering::Relaxed);
    }

    /// Whether the run left the purchase parked.
    pub fn is_parked(&self) -> bool {
        self.parked.load(Ordering::Relaxed)
    }

    pub fn log(&self) -> &Log {
        &self.driver.log
    }

    /// The log's id, which every branch of this purchase at a participant carries.
    pub fn log_id(&self) -> String {
        self.driver.log.log_id().to_owned()
    }

    /// Whether another coordinator took the purchase over while this run drove it.
    pub fn is_lost(&self) -> bool {
        self.owned.is_lost()
    }

    /// Whether any attempt of `operation` at `participant` left its outcome unknown (it
    /// may have applied even if a later attempt was refused).
    pub fn uncertain(&self, participant: Participant, operation: &str) -> bool {
        self.uncertain
            .lock()
            .expect("uncertain lock")
            .contains(&(participant as i32, operation.to_owned()))
    }

    /// Records how long a phase took, for the purchase's answer.
    pub fn phase(&self, name: &str, since: Instant) {
        self.phases.lock().expect("phases lock").push(PhaseTiming {
            phase: name.to_owned(),
            duration: Some(server_kit::convert::duration(since.elapsed())),
        });
    }

    pub fn phases(&self) -> Vec<PhaseTiming> {
        self.phases.lock().expect("phases lock").clone()
    }

    pub fn total(&self) -> prost_types::Duration {
        server_kit::convert::duration(self.started.elapsed())
    }

    /// Whether this coordinator may act on the purchase now: its ownership renewed
    /// within the ttl, or, when not, renewed in the log right now. Never true again once
    /// another coordinator has it.
    pub async fn still_owned(&self) -> bool {
        match self.owned.standing() {
            Standing::Current => true,
            Standing::Lost => false,
            Standing::Unconfirmed => match self.driver.log.confirm(&self.owned).await {
                Ok(owned) => owned,
                Err(error) => {
                    // The log cannot say: acting could race a takeover, so do not.
                    warn!(txid = %self.txid, %error, "could not confirm ownership; not acting");
                    false
                }
            },
        }
    }

    /// Calls a participant under `policy`, logging every attempt as a step. No attempt
    /// is made unless the purchase is still this coordinator's.
    pub async fn call<T, F, Fut>(
        &self,
        step: Step,
        policy: RetryPolicy,
        mut attempt_call: F,
    ) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let mut attempt = 1;
        // The attempt as logged: numbered on from an earlier run's attempts.
        let name = crate::log::participant_name(step.participant);
        let earlier = self
            .earlier_attempts
            .iter()
            .find(|((p, o, c), _)| p == name && o == step.operation && *c == step.is_compensation())
            .map_or(0, |(_, attempts)| *attempts);
        loop {
            if !self.still_owned().await {
                return Err(CallError::NotOwner(Status::aborted(format!(
                    "{} is owned by another coordinator now; {} {} not sent",
                    self.txid, name, step.operation
                ))));
            }
            let started_at = chrono::Utc::now();
            let began = Instant::now();
            let result = match tokio::time::timeout(policy.timeout, attempt_call()).await {
                Ok(result) => result.map(Response::into_inner),
                Err(_) => Err(Status::deadline_exceeded(format!(
                    "no answer within {:?}",
                    policy.timeout
                ))),
            };
            let (outcome, error) = match &result {
                Ok(_) => (StepOutcome::Ok, None),
                Err(status) if is_unknown(status, policy) => {
                    (StepOutcome::Unknown, Some(describe(status)))
                }
                Err(status) => (StepOutcome::Failed, Some(describe(status))),
            };
            if outcome == StepOutcome::Unknown {
                self.uncertain
                    .lock()
                    .expect("uncertain lock")
                    .insert((step.participant as i32, step.operation.to_owned()));
                if step.participant == Participant::Orders {
                    crate::reassert::note_outage(&self.driver, began);
                }
            }
            self.record(
                step,
                earlier + attempt,
                started_at,
                outcome,
                error.as_deref(),
            )
            .await;
            match result {
                Ok(value) => return Ok(value),
                Err(status) if outcome == StepOutcome::Failed => {
                    return Err(CallError::Refused(status));
                }
                Err(status) if attempt >= policy.attempts => {
                    warn!(txid = %self.txid, operation = step.operation, attempt,
                          error = %describe(&status),
                          "participant call gave up after its last attempt");
                    return Err(CallError::Unknown(status));
                }
                Err(_) => {
                    tokio::time::sleep(policy.backoff(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Logs one attempt of `step` (a gRPC call, or the coordinator's own work such as
    /// Redis leases). A row the log refuses (another coordinator owns the purchase now)
    /// makes the run lost: it calls no participant again.
    pub async fn record(
        &self,
        step: Step,
        attempt: u32,
        started_at: chrono::DateTime<chrono::Utc>,
        outcome: StepOutcome,
        error: Option<&str>,
    ) {
        crate::metrics::step(
            step.participant,
            step.operation,
            attempt,
            step.is_compensation(),
            outcome,
        );
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let written = self
            .driver
            .log
            .record_step(
                &self.owned,
                Attempt {
                    sequence,
                    participant: step.participant,
                    operation: step.operation,
                    attempt,
                    compensation: step.is_compensation(),
                    started_at,
                    outcome,
                    error,
                },
            )
            .await;
        if let Err(log_error) = written
            && !matches!(log_error, crate::error::Error::NotOwner { .. })
        {
            // The step row is for people; the decision and state rows are what recovery
            // relies on, and those errors are not swallowed.
            warn!(txid = %self.txid, operation = step.operation, error = %log_error,
                  "could not log a step");
        }
    }
}

/// Whether a failed attempt is worth repeating: its outcome is unknown (proto's one
/// classification), or it was a conflict and the policy retries conflicts.
fn is_unknown(status: &Status, policy: RetryPolicy) -> bool {
    Outcome::of(status) == Outcome::Unknown
        || (status.code() == Code::Aborted && policy.retry_conflicts)
}

/// An error as one line for the log: the code and the message.
pub fn describe(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::v1::ErrorReason;

    fn policy(retry_conflicts: bool) -> RetryPolicy {
        RetryPolicy {
            timeout: Duration::from_secs(1),
            attempts: 3,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            retry_conflicts,
        }
    }

    #[test]
    fn an_attempt_is_repeated_when_its_outcome_is_unknown_or_a_conflict_the_policy_retries() {
        let forward = policy(false);
        let finish = policy(true);
        // No answer, or an answer that says nothing of the outcome: unknown.
        for code in [Code::DeadlineExceeded, Code::Unavailable, Code::Internal] {
            assert!(
                is_unknown(&Status::new(code, "no answer"), forward),
                "{code:?}"
            );
        }
        let unknown = proto::error::with_reason(
            Code::FailedPrecondition,
            ErrorReason::OutcomeUnknown,
            "the outcome is unknown",
            [],
        );
        assert!(
            is_unknown(&unknown, forward),
            "by its reason, whatever the code"
        );
        // A conflict: an answer for a forward step, retried in phase two.
        let conflict = Status::aborted("write conflict");
        assert!(!is_unknown(&conflict, forward));
        assert!(is_unknown(&conflict, finish));
        // A seat taken is an answer to a forward step; in phase two every ABORTED is a
        // conflict to wait out, whatever its reason.
        let taken = proto::error::refusal::seats_taken(
            Code::Aborted,
            "seats already taken: A-1-1".into(),
            &["A-1-1".to_owned()],
            None,
        );
        assert!(!is_unknown(&taken, forward));
        assert!(is_unknown(&taken, finish));
        // A certain refusal that is not a conflict is never repeated.
        let aborted = proto::error::refusal::txn_aborted("tx-1 was aborted".into(), "tx-1".into());
        assert!(!is_unknown(&aborted, forward));
        assert!(!is_unknown(&aborted, finish));
        assert!(!is_unknown(&Status::invalid_argument("bad"), finish));
    }
}
