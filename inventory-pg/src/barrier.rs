//! The saga barrier: one row per (saga id, step, operation) written in the same
//! transaction as the step's effect, which makes every step and compensation
//! idempotent and ordered:
//!
//! - a duplicate step or compensation is a no-op that replays the first answer;
//! - a compensation whose step never ran records a "null compensation" and also claims
//!   the step's row, so
//! - a step that arrives after its compensation is refused.
//!
//! Concurrent duplicates serialise on the primary key: the second insert waits for the
//! first transaction and then sees its row.

use deadpool_postgres::Transaction;

use crate::error::{Error, Result};

/// The saga steps inventory takes part in; each names its compensation's barrier too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// HoldSeats, compensated by ReleaseSeats.
    HoldSeats,
    /// ConfirmSeats, compensated by UnsellSeats.
    ConfirmSeats,
    /// The lease protocol's SellFenced, undone by UnsellFenced.
    SellFenced,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::HoldSeats => "hold_seats",
            Step::ConfirmSeats => "confirm_seats",
            Step::SellFenced => "sell_fenced",
        }
    }
}

/// What the barrier says about an operation about to run.
#[derive(Debug)]
pub enum Entry {
    /// First time: apply the effect, then [`record`] the answer.
    Fresh,
    /// Already done: replay this stored answer.
    Duplicate(Vec<u8>),
    /// A compensation whose step never ran: nothing to undo.
    NullCompensation,
}

/// Enters the barrier for the forward step. Refused once the step was compensated.
pub async fn enter_action(tx: &Transaction<'_>, saga_id: &str, step: Step) -> Result<Entry> {
    if insert(tx, saga_id, step, "action", "applied").await? {
        return Ok(Entry::Fresh);
    }
    let statement = tx
        .prepare_cached(
            "SELECT a.outcome, a.response,
                    EXISTS (SELECT 1 FROM saga_barrier c
                             WHERE c.gid = a.gid AND c.step = a.step AND c.operation = 'compensation')
               FROM saga_barrier a
              WHERE a.gid = $1 AND a.step = $2 AND a.operation = 'action'",
        )
        .await?;
    let row = tx.query_one(&statement, &[&saga_id, &step.name()]).await?;
    let outcome: String = row.get(0);
    let compensated: bool = row.get(2);
    if outcome == "null_compensation" || compensated {
        return Err(Error::StepCompensated {
            saga_id: saga_id.to_owned(),
            step: step.name(),
        });
    }
    Ok(Entry::Duplicate(
        row.get::<_, Option<Vec<u8>>>(1).unwrap_or_default(),
    ))
}

/// Enters the barrier for the step's compensation.
pub async fn enter_compensation(tx: &Transaction<'_>, saga_id: &str, step: Step) -> Result<Entry> {
    if !insert(tx, saga_id, step, "compensation", "applied").await? {
        let statement = tx
            .prepare_cached(
                "SELECT response FROM saga_barrier
                  WHERE gid = $1 AND step = $2 AND operation = 'compensation'",
            )
            .await?;
        let row = tx.query_one(&statement, &[&saga_id, &step.name()]).await?;
        return Ok(Entry::Duplicate(
            row.get::<_, Option<Vec<u8>>>(0).unwrap_or_default(),
        ));
    }
    // Claim the step's row: if that works, the step never ran.
    if insert(tx, saga_id, step, "action", "null_compensation").await? {
        let statement = tx
            .prepare_cached(
                "UPDATE saga_barrier SET outcome = 'null_compensation'
                  WHERE gid = $1 AND step = $2 AND operation = 'compensation'",
            )
            .await?;
        tx.execute(&statement, &[&saga_id, &step.name()]).await?;
        return Ok(Entry::NullCompensation);
    }
    Ok(Entry::Fresh)
}

/// Stores the answer of a fresh operation (or a null compensation) for replay.
pub async fn record(
    tx: &Transaction<'_>,
    saga_id: &str,
    step: Step,
    operation: &str,
    response: &[u8],
) -> Result<()> {
    let statement = tx
        .prepare_cached(
            "UPDATE saga_barrier SET response = $4
              WHERE gid = $1 AND step = $2 AND operation = $3",
        )
        .await?;
    tx.execute(&statement, &[&saga_id, &step.name(), &operation, &response])
        .await?;
    Ok(())
}

/// The stored answer of a step that ran, if it ran.
pub async fn answer_of(tx: &Transaction<'_>, saga_id: &str, step: Step) -> Result<Option<Vec<u8>>> {
    let statement = tx
        .prepare_cached(
            "SELECT response FROM saga_barrier
              WHERE gid = $1 AND step = $2 AND operation = 'action' AND outcome = 'applied'",
        )
        .await?;
    Ok(tx
        .query_opt(&statement, &[&saga_id, &step.name()])
        .await?
        .and_then(|row| row.get(0)))
}

/// Notes that the step of `gid` was undone: its step, if it arrives later, is refused
/// ([`compensated`]). Idempotent.
pub async fn mark_undone(tx: &Transaction<'_>, gid: &str, step: Step) -> Result<()> {
    insert(tx, gid, step, "compensation", "applied").await?;
    Ok(())
}

/// Whether the step of `gid` was undone already.
pub async fn compensated(tx: &Transaction<'_>, gid: &str, step: Step) -> Result<bool> {
    let statement = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM saga_barrier
                             WHERE gid = $1 AND step = $2 AND operation = 'compensation')",
        )
        .await?;
    Ok(tx
        .query_one(&statement, &[&gid, &step.name()])
        .await?
        .get(0))
}

async fn insert(
    tx: &Transaction<'_>,
    saga_id: &str,
    step: Step,
    operation: &str,
    outcome: &str,
) -> Result<bool> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO saga_barrier (gid, step, operation, outcome) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .await?;
    Ok(tx
        .execute(&statement, &[&saga_id, &step.name(), &operation, &outcome])
        .await?
        == 1)
}
