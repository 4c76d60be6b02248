//! Group commit of step rows. Every participant call of every purchase adds a row to
//! `steps`; written one by one, each row was a commit and a WAL flush of its own — most
//! of the coordinator database's work in a drop. The rows of purchases running at the
//! same time are written together instead: one multi-row INSERT, one commit, one flush.
//!
//! Nothing waits less: `record` still returns only once its row is committed, so a step
//! is in the log before the purchase moves on, exactly as before; the rows of concurrent
//! purchases merely share the commit. A row is written alone when nobody else is
//! recording (an idle coordinator pays no delay).

use deadpool_postgres::Pool;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::error::{Error, Result};

/// One step row.
pub struct StepRow {
    pub txid: String,
    pub sequence: i32,
    pub participant: &'static str,
    pub operation: String,
    pub attempt: i32,
    pub compensation: bool,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub outcome: &'static str,
    pub error: Option<String>,
}

struct Queued {
    row: StepRow,
    reply: oneshot::Sender<Result<(), String>>,
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
    pub fn start(pool: Pool) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let receiver = std::sync::Arc::new(Mutex::new(receiver));
        for _ in 0..WRITERS {
            tokio::spawn(write_groups(pool.clone(), receiver.clone()));
        }
        Self { queue }
    }

    /// Records one row; returns once it is committed.
    pub async fn record(&self, row: StepRow) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Queued { row, reply })
            .map_err(|_| Error::StepLog("the step writer stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::StepLog("the step writer dropped a row".into()))?
            .map_err(Error::StepLog)
    }
}

async fn write_groups(
    pool: Pool,
    receiver: std::sync::Arc<Mutex<mpsc::UnboundedReceiver<Queued>>>,
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
        match insert(&pool, &group).await {
            Ok(()) => {
                for queued in group {
                    let _ = queued.reply.send(Ok(()));
                }
            }
            // One bad row fails its group: each row goes again alone, so that the error
            // is only its own.
            Err(_) if group.len() > 1 => {
                for queued in group {
                    let result = insert(&pool, std::slice::from_ref(&queued)).await;
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

async fn insert(pool: &Pool, group: &[Queued]) -> Result<()> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO steps (txid, sequence, participant, operation, attempt, compensation,
                                started_at, finished_at, outcome, error)
             SELECT txid, sequence, participant, operation, attempt, compensation,
                    started_at, now(), outcome, error
               FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::int[],
                           $6::bool[], $7::timestamptz[], $8::text[], $9::text[])
                 AS t(txid, sequence, participant, operation, attempt, compensation,
                      started_at, outcome, error)",
        )
        .await?;
    let rows = group.iter().map(|q| &q.row);
    let txids: Vec<&str> = rows.clone().map(|r| r.txid.as_str()).collect();
    let sequences: Vec<i32> = rows.clone().map(|r| r.sequence).collect();
    let participants: Vec<&str> = rows.clone().map(|r| r.participant).collect();
    let operations: Vec<&str> = rows.clone().map(|r| r.operation.as_str()).collect();
    let attempts: Vec<i32> = rows.clone().map(|r| r.attempt).collect();
    let compensations: Vec<bool> = rows.clone().map(|r| r.compensation).collect();
    let started: Vec<chrono::DateTime<chrono::Utc>> = rows.clone().map(|r| r.started_at).collect();
    let outcomes: Vec<&str> = rows.clone().map(|r| r.outcome).collect();
    let errors: Vec<Option<&str>> = rows.map(|r| r.error.as_deref()).collect();
    client
        .execute(
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
            ],
        )
        .await?;
    Ok(())
}
