//! Group commit: the conditional writes of concurrent purchases go to DynamoDB together,
//! several to one `TransactWriteItems`, as a database groups the commits of concurrent
//! transactions into one log flush.
//!
//! DynamoDB Local runs one transaction at a time, and a transaction of a few items costs
//! it about as much again in fixed work as in item writes; grouping pays the fixed part
//! once for many purchases. Nothing about a single purchase changes:
//!
//! - A group is all or nothing, like each of its writes. No two writes of one group touch
//!   the same item (DynamoDB refuses that; the later write waits for the next group), and
//!   every condition is checked against the table as it was before the group.
//! - When conditions fail, DynamoDB names the failing item of each write. The writes
//!   whose own conditions failed get exactly the answer they would have had alone; the
//!   others, cancelled only for being in that group, go again in the next one. Every
//!   round removes at least one write, so a write is retried with others at most
//!   `MAX_REGROUPS` times before it is sent alone.
//! - Any other failure of a group of several writes (a malformed write, throttling) is
//!   found out by sending each write alone, so that one write's error is only its own. A
//!   failure with an unknown outcome (the connection cut mid-call) is every write's: each
//!   caller treats it as it always did, as unknown.
//!
//! A group forms from the writes that queued while the previous group was in flight: an
//! idle service sends each write at once, alone; under load groups grow by themselves.
//! A queued write whose caller has gone (it gave up waiting) is dropped unsent, as if its
//! request had been lost: the caller already treats that attempt as unknown.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{CancellationReason, TransactWriteItem};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::error::Error;
use crate::write::{Failed, Purpose, WriteError};

/// DynamoDB's limit on the items of one TransactWriteItems.
pub const MAX_ITEMS: usize = 100;
/// Times a write cancelled for another write's failed condition goes again with others.
const MAX_REGROUPS: u32 = 5;
/// Groups in flight at once: while one is in DynamoDB the next one forms and is sent.
const WRITERS: usize = 4;

/// One purchase's conditional write, as its caller built it.
pub struct Write {
    pub items: Vec<TransactWriteItem>,
    pub purposes: Vec<Purpose>,
    /// The (pk, sk) of each item, to keep two writes of one item apart.
    pub keys: Vec<(String, String)>,
}

struct Queued {
    write: Write,
    regroups: u32,
    reply: oneshot::Sender<Result<(), WriteError>>,
}

/// How many groups and writes went out: `writes / groups` is the mean group size.
#[derive(Debug, Default)]
pub struct Stats {
    pub groups: AtomicU64,
    pub writes: AtomicU64,
    pub regrouped: AtomicU64,
    /// Writes dropped unsent because their caller had gone.
    pub abandoned: AtomicU64,
}

/// The group committer of one table; cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::UnboundedSender<Queued>,
    pub stats: Arc<Stats>,
}

impl GroupCommit {
    /// Starts the writers. Without a Tokio runtime this panics, as spawning does.
    pub fn start(client: Client, max_group: usize) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        let shared = Arc::new(Shared {
            client,
            max_group: max_group.max(1),
            receiver: Mutex::new(Pending {
                receiver,
                carried: VecDeque::new(),
            }),
            requeue: queue.clone(),
            stats: stats.clone(),
        });
        for _ in 0..WRITERS {
            tokio::spawn(shared.clone().run());
        }
        tokio::spawn(report(stats.clone()));
        Self { queue, stats }
    }

    /// Writes `write` in the next group: Ok once it is in the table.
    pub async fn write(&self, write: Write) -> Result<(), WriteError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Queued {
                write,
                regroups: 0,
                reply,
            })
            .map_err(|_| WriteError::Other(Error::Dynamo("the group committer stopped".into())))?;
        answer.await.map_err(|_| {
            WriteError::Other(Error::Dynamo(
                "the group committer dropped the write".into(),
            ))
        })?
    }
}

/// Logs how the writes were grouped, every ten seconds that saw writes.
async fn report(stats: Arc<Stats>) {
    let mut last = (0, 0, 0, 0);
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        let now = (
            stats.groups.load(Ordering::Relaxed),
            stats.writes.load(Ordering::Relaxed),
            stats.regrouped.load(Ordering::Relaxed),
            stats.abandoned.load(Ordering::Relaxed),
        );
        if now.1 > last.1 {
            let (groups, writes) = (now.0 - last.0, now.1 - last.1);
            tracing::info!(
                writes,
                transactions = groups,
                per_transaction = format!("{:.1}", writes as f64 / groups.max(1) as f64),
                regrouped = now.2 - last.2,
                abandoned = now.3 - last.3,
                "group commit"
            );
        } else if now.3 > last.3 {
            tracing::info!(abandoned = now.3 - last.3, "group commit");
        }
        last = now;
    }
}

struct Pending {
    receiver: mpsc::UnboundedReceiver<Queued>,
    /// Writes that did not fit the last group, first in line for the next.
    carried: VecDeque<Queued>,
}

struct Shared {
    client: Client,
    max_group: usize,
    receiver: Mutex<Pending>,
    requeue: mpsc::UnboundedSender<Queued>,
    stats: Arc<Stats>,
}

impl Shared {
    async fn run(self: Arc<Self>) {
        while let Some(group) = self.next_group().await {
            self.send(group).await;
        }
    }

    /// Waits for a write, then takes every queued write that fits beside it.
    async fn next_group(&self) -> Option<Vec<Queued>> {
        let mut pending = self.receiver.lock().await;
        let first = loop {
            let first = match pending.carried.pop_front() {
                Some(first) => first,
                None => pending.receiver.recv().await?,
            };
            if !self.abandoned(&first) {
                break first;
            }
        };
        let mut keys: HashSet<(String, String)> = first.write.keys.iter().cloned().collect();
        let mut items = first.write.items.len();
        let mut group = vec![first];
        let mut skipped = VecDeque::new();
        loop {
            if group.len() >= self.max_group {
                break;
            }
            let next = match pending.carried.pop_front() {
                Some(next) => next,
                None => match pending.receiver.try_recv() {
                    Ok(next) => next,
                    Err(_) => break,
                },
            };
            if self.abandoned(&next) {
                continue;
            }
            let fits = items + next.write.items.len() <= MAX_ITEMS
                && next.write.keys.iter().all(|key| !keys.contains(key));
            if fits {
                keys.extend(next.write.keys.iter().cloned());
                items += next.write.items.len();
                group.push(next);
            } else {
                skipped.push_back(next);
                // A full group, or writes of the same items: the rest waits its turn.
                if items >= MAX_ITEMS || skipped.len() >= self.max_group {
                    break;
                }
            }
        }
        // Skipped writes go first next time, in their order.
        while let Some(write) = skipped.pop_back() {
            pending.carried.push_front(write);
        }
        Some(group)
    }

    /// Whether the write's caller has gone (its client gave up on the call, or its
    /// deadline passed): then the write is not sent, exactly as if the request had been
    /// lost on the way, and a busy table spends no transaction on an answer nobody
    /// awaits. Under overload this keeps retried calls from piling up behind the
    /// abandoned attempts they replace.
    fn abandoned(&self, queued: &Queued) -> bool {
        let gone = queued.reply.is_closed();
        if gone {
            self.stats.abandoned.fetch_add(1, Ordering::Relaxed);
        }
        gone
    }

    async fn send(&self, group: Vec<Queued>) {
        self.stats.groups.fetch_add(1, Ordering::Relaxed);
        self.stats
            .writes
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        if group.len() > 1 {
            tracing::debug!(writes = group.len(), "group commit");
        }
        let items: Vec<TransactWriteItem> = group
            .iter()
            .flat_map(|q| q.write.items.iter().cloned())
            .collect();
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            // A lost answer retried by the SDK is the same transaction, applied once.
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .send()
            .await;
        let error = match result {
            Ok(_) => {
                for queued in group {
                    let _ = queued.reply.send(Ok(()));
                }
                return;
            }
            Err(error) => error,
        };
        let rejected = match error {
            SdkError::ServiceError(rejected) => rejected.into_err(),
            // No answer came (connection cut, timeout): whether the group was written is
            // unknown, to every write of it.
            unknown => {
                let message = DisplayErrorContext(unknown).to_string();
                for queued in group {
                    let error = Error::Dynamo(message.clone());
                    let _ = queued.reply.send(Err(WriteError::Other(error)));
                }
                return;
            }
        };
        match rejected {
            TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                self.cancelled(group, cancelled.cancellation_reasons());
            }
            // Rejected as a whole, so nothing was written: find whose error it was.
            _ if group.len() > 1 => {
                for queued in group {
                    self.alone(queued);
                }
            }
            other => {
                for queued in group {
                    let _ = queued.reply.send(Err(WriteError::Other(classify(&other))));
                }
            }
        }
    }

    /// Answers the writes whose conditions failed; the others go again.
    fn cancelled(&self, group: Vec<Queued>, reasons: &[CancellationReason]) {
        let mut offset = 0;
        let mut blamed = 0;
        let mut innocent = Vec::new();
        for queued in group {
            let count = queued.write.items.len();
            let mine = reasons.get(offset..offset + count).unwrap_or_default();
            offset += count;
            match blame(&queued.write.purposes, mine) {
                Some(error) => {
                    blamed += 1;
                    let _ = queued.reply.send(Err(error));
                }
                None => innocent.push(queued),
            }
        }
        if blamed == 0 {
            // DynamoDB named no write: none can be blamed, so each goes alone.
            for queued in innocent {
                self.alone(queued);
            }
            return;
        }
        for mut queued in innocent {
            queued.regroups += 1;
            self.stats.regrouped.fetch_add(1, Ordering::Relaxed);
            if queued.regroups > MAX_REGROUPS {
                self.alone(queued);
            } else if let Err(mpsc::error::SendError(queued)) = self.requeue.send(queued) {
                let _ = queued.reply.send(Err(WriteError::Other(Error::Dynamo(
                    "the group committer stopped".into(),
                ))));
            }
        }
    }

    /// Sends one write in a transaction of its own, and answers it.
    fn alone(&self, queued: Queued) {
        let client = self.client.clone();
        let stats = self.stats.clone();
        tokio::spawn(async move {
            stats.groups.fetch_add(1, Ordering::Relaxed);
            stats.writes.fetch_add(1, Ordering::Relaxed);
            let result = client
                .transact_write_items()
                .set_transact_items(Some(queued.write.items))
                .client_request_token(uuid::Uuid::new_v4().to_string())
                .send()
                .await;
            let answer = match result {
                Ok(_) => Ok(()),
                Err(SdkError::ServiceError(rejected)) => Err(match rejected.into_err() {
                    TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                        own_failure(&queued.write.purposes, cancelled.cancellation_reasons())
                    }
                    other => WriteError::Other(classify(&other)),
                }),
                Err(unknown) => Err(WriteError::Other(unknown.into())),
            };
            let _ = queued.reply.send(answer);
        });
    }
}

/// The failure of one write, from the cancellation reasons of its own items; None when
/// none of them failed (it was cancelled for another write of its group).
fn blame(purposes: &[Purpose], reasons: &[CancellationReason]) -> Option<WriteError> {
    let code = |reason: &CancellationReason| reason.code().unwrap_or("None").to_owned();
    if reasons.iter().any(|r| code(r) == "TransactionConflict") {
        return Some(WriteError::Other(Error::Conflict));
    }
    let failed: Vec<Failed> = reasons
        .iter()
        .zip(purposes)
        .filter(|(reason, _)| code(reason) == "ConditionalCheckFailed")
        .map(|(reason, purpose)| Failed {
            purpose: purpose.clone(),
            old: reason.item().cloned(),
        })
        .collect();
    if !failed.is_empty() {
        return Some(WriteError::Cancelled(failed));
    }
    let codes: Vec<String> = reasons.iter().map(code).collect();
    codes
        .iter()
        .any(|c| c != "None")
        .then(|| WriteError::Other(Error::Dynamo(format!("transaction cancelled: {codes:?}"))))
}

/// The answer of a write sent alone whose transaction was cancelled.
fn own_failure(purposes: &[Purpose], reasons: &[CancellationReason]) -> WriteError {
    blame(purposes, reasons).unwrap_or_else(|| {
        WriteError::Other(Error::Dynamo(
            "transaction cancelled without a reason".into(),
        ))
    })
}

/// The error of a transaction DynamoDB rejected for a reason other than a condition.
fn classify(error: &TransactWriteItemsError) -> Error {
    match error {
        TransactWriteItemsError::IdempotentParameterMismatchException(_) => {
            Error::IdempotencyMismatch
        }
        TransactWriteItemsError::TransactionInProgressException(_) => Error::Conflict,
        other => Error::Dynamo(DisplayErrorContext(other).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(codes: &[&str]) -> Vec<CancellationReason> {
        codes
            .iter()
            .map(|code| CancellationReason::builder().code(*code).build())
            .collect()
    }

    #[test]
    fn only_a_write_whose_own_items_failed_is_blamed() {
        let purposes = [
            Purpose::Order,
            Purpose::Claim("A-1".into()),
            Purpose::Idempotency,
        ];
        // Cancelled for another write of the group: not this one's failure.
        assert!(blame(&purposes, &reasons(&["None", "None", "None"])).is_none());
        // Its own claim failed: exactly that claim is named.
        match blame(
            &purposes,
            &reasons(&["None", "ConditionalCheckFailed", "None"]),
        ) {
            Some(WriteError::Cancelled(failed)) => {
                assert_eq!(failed.len(), 1);
                assert_eq!(failed[0].purpose, Purpose::Claim("A-1".into()));
            }
            other => panic!("expected the claim's failure, got {other:?}"),
        }
        assert!(matches!(
            blame(
                &purposes,
                &reasons(&["TransactionConflict", "None", "None"])
            ),
            Some(WriteError::Other(Error::Conflict))
        ));
        assert!(matches!(
            blame(&purposes, &reasons(&["ValidationError", "None", "None"])),
            Some(WriteError::Other(Error::Dynamo(_)))
        ));
    }
}
