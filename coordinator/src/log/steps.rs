//! The step rows: one per attempt of every participant call, written when the attempt
//! ends, and only by the purchase's owner at its epoch.
//!
//! Group commit: written one by one, each row was a commit and a WAL flush of its own —
//! most of the coordinator database's work in a drop. The rows of purchases running at
//! the same time are written together instead: one multi-row INSERT, one commit, one
//! flush. Nothing waits less: `record` still returns only once its row is committed, so
//! a step is in the log before the purchase moves on; the rows of concurrent purchases
//! merely share the commit. A row is written alone when nobody else is recording.
//!
//! Each row is inserted only if its purchase's owner and epoch are still the writer's:
//! the INSERT joins the purchase rows and takes a key-share lock on them, which a
//! takeover (`FOR UPDATE`) waits for or skips, so a row never lands after a takeover
//! committed. A row refused that way answers `NotOwner` to its caller.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use proto::v1::{Participant, StepOutcome};
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::Log;
use super::record::{outcome_name, participant_name};
use crate::error::{Error, Result};
use crate::ownership::Owned;

/// What earlier runs of a transaction logged (see [`Log::earlier_steps`]).
pub struct EarlierSteps {
    pub next_sequence: u32,
    /// Attempts so far by (participant, operation, compensation), as the rows name them.
    pub attempts: Vec<((String, String, bool), u32)>,
}

/// One attempt of one participant call, as logged.
pub struct Attempt<'a> {
    pub sequence: u32,
    pub participant: Participant,
    pub operation: &'a str,
    pub attempt: u32,
    pub compensation: bool,
    pub started_at: DateTime<Utc>,
    pub outcome: StepOutcome,
    pub error: Option<&'a str>,
}

impl Log {
    /// What earlier runs of the transaction logged: the next free step sequence, and
    /// how many attempts each call (participant, operation, compensation) had, so a
    /// later run (recovery) numbers its steps and attempts on from there and a timeline
    /// reads #1, #2, ... across restarts. One query.
    pub async fn earlier_steps(&self, txid: &str) -> Result<EarlierSteps> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT participant, operation, compensation, max(attempt) AS attempts,
                        max(sequence) AS last
                   FROM steps WHERE txid = $1
                  GROUP BY participant, operation, compensation",
            )
            .await?;
        let rows = client.query(&statement, &[&txid]).await?;
        let count = |n: i32| u32::try_from(n).unwrap_or(0);
        Ok(EarlierSteps {
            next_sequence: rows.iter().map(|r| count(r.get("last"))).max().unwrap_or(0) + 1,
            attempts: rows
                .iter()
                .map(|r| {
                    (
                        (
                            r.get("participant"),
                            r.get("operation"),
                            r.get("compensation"),
                        ),
                        count(r.get("attempts")),
                    )
                })
                .collect(),
        })
    }

    /// Writes one step row of `owned`; returns once it is committed, or refused because
    /// the purchase has another owner now.
    pub async fn record_step(&self, owned: &Owned, step: Attempt<'_>) -> Result<()> {
        let row = StepRow {
            txid: owned.txid.clone(),
            epoch: owned.epoch,
            sequence: step.sequence as i32,
            participant: participant_name(step.participant),
            operation: step.operation.to_owned(),
            attempt: step.attempt as i32,
            compensation: step.compensation,
            started_at: step.started_at,
            outcome: outcome_name(step.outcome),
            error: step.error.map(str::to_owned),
        };
        match self.steps.record(row).await {
            Err(Error::NotOwner { .. }) => Err(self.refused(owned, "step").await),
            other => other,
        }
    }
}

struct StepRow {
    txid: String,
    epoch: i64,
    sequence: i32,
    participant: &'static str,
    operation: String,
    attempt: i32,
    compensation: bool,
    started_at: DateTime<Utc>,
    outcome: &'static str,
    error: Option<String>,
}

/// How a row's write ended, as its caller hears it.
enum Written {
    Inserted,
    /// The purchase is not the writer's at that epoch any more.
    NotOwner,
}

struct Queued {
    row: StepRow,
    reply: oneshot::Sender<Result<Written, String>>,
}

/// Most rows in one INSERT.
const MAX_GROUP: usize = 256;
/// Groups in flight at once: the next forms while one commits.
const WRITERS: usize = 2;

#[derive(Clone)]
pub struct StepWriter {
    queue: mpsc::UnboundedSender<Queued>,
}

impl StepWriter {
    pub fn start(pool: Pool, me: Arc<str>) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..WRITERS {
            tokio::spawn(write_groups(pool.clone(), me.clone(), receiver.clone()));
        }
        Self { queue }
    }

    /// Records one row; returns once it is committed (or refused).
    async fn record(&self, row: StepRow) -> Result<()> {
        let txid = row.txid.clone();
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Queued { row, reply })
            .map_err(|_| Error::StepLog("the step writer stopped".into()))?;
        match answer
            .await
            .map_err(|_| Error::StepLog("the step writer dropped a row".into()))?
            .map_err(Error::StepLog)?
        {
            Written::Inserted => Ok(()),
            Written::NotOwner => Err(Error::NotOwner { txid }),
        }
    }
}

async fn write_groups(
    pool: Pool,
    me: Arc<str>,
    receiver: Arc<Mutex<mpsc::UnboundedReceiver<Queued>>>,
) {
    loop {
        let group = {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match receiver.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            group
        };
        match insert(&pool, &me, &group).await {
            Ok(inserted) => {
                for queued in group {
                    let written = if inserted
                        .iter()
                        .any(|(txid, seq)| *txid == queued.row.txid && *seq == queued.row.sequence)
                    {
                        Written::Inserted
                    } else {
                        Written::NotOwner
                    };
                    let _ = queued.reply.send(Ok(written));
                }
            }
            // One bad row fails its group: each row goes again alone, so that the error
            // is only its own.
            Err(_) if group.len() > 1 => {
                for queued in group {
                    let result =
                        insert(&pool, &me, std::slice::from_ref(&queued))
                            .await
                            .map(|inserted| {
                                if inserted.is_empty() {
                                    Written::NotOwner
                                } else {
                                    Written::Inserted
                                }
                            });
                    let _ = queued.reply.send(result.map_err(|e| e.to_string()));
                }
            }
            Err(error) => {
                for queued in group {
                    let _ = queued.reply.send(Err(error.to_string()));
                }
            }
        }
    }
}

/// Inserts the rows whose purchase `me` still owns at the row's epoch; returns the
/// (txid, sequence) of the rows inserted.
async fn insert(pool: &Pool, me: &str, group: &[Queued]) -> Result<Vec<(String, i32)>> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO steps (txid, sequence, participant, operation, attempt, compensation,
                                started_at, finished_at, outcome, error)
             SELECT r.txid, r.sequence, r.participant, r.operation, r.attempt, r.compensation,
                    r.started_at, now(), r.outcome, r.error
               FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::int[],
                           $6::bool[], $7::timestamptz[], $8::text[], $9::text[], $10::int8[])
                 AS r(txid, sequence, participant, operation, attempt, compensation,
                      started_at, outcome, error, epoch)
               JOIN transactions t ON t.txid = r.txid AND t.owner = $11
                                  AND t.owner_epoch = r.epoch
                FOR KEY SHARE OF t
          RETURNING txid, sequence",
        )
        .await?;
    let rows = group.iter().map(|q| &q.row);
    let txids: Vec<&str> = rows.clone().map(|r| r.txid.as_str()).collect();
    let sequences: Vec<i32> = rows.clone().map(|r| r.sequence).collect();
    let participants: Vec<&str> = rows.clone().map(|r| r.participant).collect();
    let operations: Vec<&str> = rows.clone().map(|r| r.operation.as_str()).collect();
    let attempts: Vec<i32> = rows.clone().map(|r| r.attempt).collect();
    let compensations: Vec<bool> = rows.clone().map(|r| r.compensation).collect();
    let started: Vec<DateTime<Utc>> = rows.clone().map(|r| r.started_at).collect();
    let outcomes: Vec<&str> = rows.clone().map(|r| r.outcome).collect();
    let errors: Vec<Option<&str>> = rows.clone().map(|r| r.error.as_deref()).collect();
    let epochs: Vec<i64> = rows.map(|r| r.epoch).collect();
    Ok(client
        .query(
            &statement,
            &[
                &txids,
                &sequences,
                &participants,
                &operations,
                &attempts,
                &compensations,
                &started,
                &outcomes,
                &errors,
                &epochs,
                &me,
            ],
        )
        .await?
        .iter()
        .map(|row| (row.get("txid"), row.get("sequence")))
        .collect())
}
