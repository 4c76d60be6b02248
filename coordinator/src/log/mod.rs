//! The durable transaction log in the coordinator's PostgreSQL database: one row per
//! purchase (protocol, state, decision, what the participants answered, the answer, its
//! owner) and one row per attempt of every participant call.
//!
//! Several coordinators share one log. Each purchase row has an owner (a coordinator
//! instance), an epoch that grows at every takeover, and a time at which the ownership
//! lapses unless renewed. **Every write of a purchase's rows is conditional on the
//! writer being its owner at its epoch**, checked in the same statement as the write
//! (Temporal's range id, per purchase); a refused write marks the purchase lost in this
//! process (`ownership`), which then never calls a participant for it again. The
//! decision is written once: a second, different decision is refused.
//!
//! | module | what it holds |
//! | --- | --- |
//! | `record.rs` | the row, decoded by column name; unknown values are errors |
//! | `txn.rs` | BEGIN, reads, and the owner's writes: seats, payment, intent, decision, end |
//! | `steps.rs` | the step rows: group commit, each row conditional on its purchase's owner |
//! | `recovery.rs` | takeover of lapsed purchases, renewal, and what recovery reads |
//! | `outbox.rs` | the confirmation outbox and its relay's claims |

mod outbox;
mod record;
mod recovery;
mod steps;
mod txn;

use std::sync::Arc;

use deadpool_postgres::Pool;
use tracing::warn;

use crate::error::{Error, Result};
use crate::ownership::{Owned, Ownership};

pub use outbox::OutboxRow;
pub use record::{
    COLUMNS, Decision, State, TxnRecord, outcome_name, participant_from_name, participant_name,
};
pub use recovery::TakenOver;
pub use steps::{Attempt, EarlierSteps};
pub use txn::Begun;

#[derive(Clone)]
pub struct Log {
    pool: Pool,
    /// A small pool of its own for renewals and takeovers, so that ownership is never
    /// queued behind the purchases' statements on a busy coordinator.
    ownership_pool: Pool,
    steps: steps::StepWriter,
    /// This coordinator instance: the owner it writes as.
    me: Arc<str>,
    /// The log's own id, stored in the log (set once, when the log was created): every
    /// branch a participant holds for a purchase of this log carries it.
    log_id: Arc<str>,
    ownership: Arc<Ownership>,
}

impl Log {
    /// The log on `pool`, written as coordinator `instance_id` (serving on `listen`,
    /// recorded for people). Starts the step rows' group writer (needs a runtime).
    pub async fn open(
        pool: Pool,
        ownership_pool: Pool,
        instance_id: &str,
        listen: &str,
        ownership: Arc<Ownership>,
    ) -> Result<Self> {
        let client = pool.get().await?;
        let log_id: String = client
            .query_one("SELECT log_id FROM log_identity", &[])
            .await?
            .get("log_id");
        client
            .execute(
                "INSERT INTO coordinators (instance_id, listen) VALUES ($1, $2)
                 ON CONFLICT (instance_id) DO UPDATE SET listen = $2, last_seen_at = now()",
                &[&instance_id, &listen],
            )
            .await?;
        let me: Arc<str> = instance_id.into();
        Ok(Self {
            steps: steps::StepWriter::start(pool.clone(), me.clone()),
            pool,
            ownership_pool,
            me,
            log_id: log_id.into(),
            ownership,
        })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// This coordinator instance's id.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The log's id (the coordinator cluster the branches name).
    pub fn log_id(&self) -> &str {
        &self.log_id
    }

    pub fn ownership(&self) -> &Arc<Ownership> {
        &self.ownership
    }

    /// A write of `owned`'s rows, conditional on this coordinator owning it at its
    /// epoch: `sql` names the purchase `$1`, the owner `$2` and the epoch `$3` in its
    /// condition, then `params`. A refused write is logged, recorded as an ownership
    /// event, and makes the purchase lost here.
    async fn write_owned(
        &self,
        owned: &Owned,
        what: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<()> {
        if owned.is_lost() {
            // Known lost already (its refusal is recorded): no statement.
            return Err(Error::NotOwner {
                txid: owned.txid.clone(),
            });
        }
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(sql).await?;
        let me: &str = &self.me;
        let mut all: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            vec![&owned.txid, &me, &owned.epoch];
        all.extend_from_slice(params);
        match client.execute(&statement, &all).await? {
            0 => Err(self.refused(owned, what).await),
            _ => Ok(()),
        }
    }

    /// The log refused `what` of `owned`: another coordinator took the purchase over.
    async fn refused(&self, owned: &Owned, what: &str) -> Error {
        owned.lose();
        warn!(txid = %owned.txid, epoch = owned.epoch, write = what,
              "write refused: the purchase has another owner now");
        self.ownership_event(&owned.txid, owned.epoch, "refused", what)
            .await;
        Error::NotOwner {
            txid: owned.txid.clone(),
        }
    }

    /// Records what happened to a purchase's ownership (for people and the lab; the
    /// purchase's own rows are not touched). Best effort.
    pub(crate) async fn ownership_event(&self, txid: &str, epoch: i64, event: &str, detail: &str) {
        let recorded = async {
            let client = self.ownership_pool.get().await?;
            let me: &str = &self.me;
            client
                .execute(
                    "INSERT INTO ownership_events (txid, instance_id, epoch, event, detail)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&txid, &me, &epoch, &event, &detail],
                )
                .await?;
            Ok::<_, Error>(())
        }
        .await;
        if let Err(error) = recorded {
            warn!(txid, event, %error, "could not record an ownership event");
        }
    }
}
