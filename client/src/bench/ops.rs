//! What the stores did over a drop, counted by the stores themselves, for the store
//! operations a sale and a fan cost (docs/capacity.md derives its figures from them):
//!
//! - PostgreSQL: commits per database (`pg_stat_database.xact_commit`) and the WAL
//!   written (`pg_current_wal_lsn()`), for the whole server;
//! - DynamoDB: the requests orders-dynamo sent, by operation, retries included (its
//!   `ticketdrop_dynamodb_requests_total`);
//! - Redis: commands processed (`INFO stats`), and what the drop's room holds in memory
//!   (`MEMORY USAGE` of every key of its event, read once the drop ended).
//!
//! PostgreSQL backends report their counters when idle, at most once a second and at the
//! latest ten seconds later, so the second reading waits for them (`SETTLE`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::endpoints::Endpoints;
use crate::stores::Stores;

/// The DynamoDB operations orders-dynamo sends (its write paths, reads, lists).
const DYNAMODB_OPERATIONS: [&str; 8] = [
    "TransactWriteItems",
    "GetItem",
    "BatchGetItem",
    "Query",
    "Scan",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
];

/// How long after a drop PostgreSQL's counters are complete.
pub const SETTLE: Duration = Duration::from_secs(11);

/// Counters of every store at one moment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Commits per PostgreSQL database.
    pub pg_commits: BTreeMap<String, u64>,
    pub wal_bytes: u64,
    /// DynamoDB requests by operation.
    pub dynamodb: BTreeMap<String, u64>,
    pub redis_commands: u64,
}

/// What the stores did between two snapshots.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ops {
    pub pg_commits: BTreeMap<String, u64>,
    pub wal_bytes: u64,
    pub dynamodb: BTreeMap<String, u64>,
    pub redis_commands: u64,
    /// What the event's room holds in Redis after the drop (its fans' records live a
    /// day): `MEMORY USAGE` summed over its keys. Set by [`room_bytes`].
    pub redis_room_bytes: u64,
}

impl Snapshot {
    pub async fn take(endpoints: &Endpoints, stores: &Stores) -> anyhow::Result<Self> {
        let pg = crate::stores::postgres("postgresql", &stores.inventory_db).await?;
        let mut pg_commits = BTreeMap::new();
        for row in pg
            .query(
                "SELECT datname, xact_commit FROM pg_stat_database
                  WHERE datname IN ('coordinator', 'inventory', 'payments', 'notifier')",
                &[],
            )
            .await?
        {
            pg_commits.insert(row.get::<_, String>(0), row.get::<_, i64>(1).max(0) as u64);
        }
        let wal: i64 = pg
            .query_one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint", &[])
            .await?
            .get(0);

        let mut dynamodb = BTreeMap::new();
        let url = crate::live::metrics_url("TICKETDROP_ORDERS_METRICS_URL", &endpoints.orders);
        let text = crate::live::scrape(&reqwest::Client::new(), url.as_deref())
            .await
            .ok_or_else(|| anyhow::anyhow!("orders-dynamo's metrics at {url:?} did not answer"))?;
        for operation in DYNAMODB_OPERATIONS {
            let n = crate::live::sum(
                &text,
                "ticketdrop_dynamodb_requests_total",
                &[("operation", operation)],
            );
            dynamodb.insert(operation.to_owned(), n);
        }

        let mut redis = redis::Client::open(stores.redis_url.as_str())?
            .get_multiplexed_async_connection()
            .await?;
        let stats: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut redis)
            .await?;
        Ok(Self {
            pg_commits,
            wal_bytes: wal.max(0) as u64,
            dynamodb,
            redis_commands: info_field(&stats, "total_commands_processed"),
        })
    }

    pub fn since(&self, before: &Snapshot) -> Ops {
        let delta = |after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>| {
            after
                .iter()
                .map(|(k, v)| (k.clone(), v.saturating_sub(*before.get(k).unwrap_or(&0))))
                .collect()
        };
        Ops {
            pg_commits: delta(&self.pg_commits, &before.pg_commits),
            wal_bytes: self.wal_bytes.saturating_sub(before.wal_bytes),
            dynamodb: delta(&self.dynamodb, &before.dynamodb),
            // The INFO of the first reading is the bench's own.
            redis_commands: self
                .redis_commands
                .saturating_sub(before.redis_commands + 1),
            redis_room_bytes: 0,
        }
    }
}

/// What the stores do with nothing to do (renewals, takeover passes, relays and
/// pollers): measured over [`SETTLE`] before the drops, once the counters of earlier
/// work have been reported.
#[derive(Debug, Clone, Serialize)]
pub struct Idle {
    pub seconds: f64,
    pub ops: Ops,
}

pub async fn idle(endpoints: &Endpoints, stores: &Stores) -> anyhow::Result<Idle> {
    tokio::time::sleep(SETTLE).await;
    let before = Snapshot::take(endpoints, stores).await?;
    let started = std::time::Instant::now();
    tokio::time::sleep(SETTLE).await;
    let after = Snapshot::take(endpoints, stores).await?;
    Ok(Idle {
        seconds: started.elapsed().as_secs_f64(),
        ops: after.since(&before),
    })
}

/// `MEMORY USAGE` summed over every key of `event`'s room (its hash, queues and fans'
/// records), read with SCAN in pages and pipelined.
pub async fn room_bytes(stores: &Stores, event: &str) -> anyhow::Result<u64> {
    let mut redis = redis::Client::open(stores.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let pattern = format!("{}:{{{event}}}*", stores.room_prefix);
    let mut cursor: u64 = 0;
    let mut bytes = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1_000)
            .query_async(&mut redis)
            .await?;
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("MEMORY").arg("USAGE").arg(key);
            }
            let sizes: Vec<Option<u64>> = pipe.query_async(&mut redis).await?;
            bytes += sizes.into_iter().flatten().sum::<u64>();
        }
        if next == 0 {
            return Ok(bytes);
        }
        cursor = next;
    }
}

fn info_field(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

/// What a sale and a fan cost under each protocol: the headline drops' store operations
/// and CPU, divided by the seats they sold (store work, the services) or by their fans
/// (the room, the fans' client, Redis). The work of fans who bought nothing is in it.
pub fn markdown(
    w: &mut String,
    drops: &[super::Measured],
    idle: Option<&Idle>,
) -> std::fmt::Result {
    use std::fmt::Write;
    let measured: Vec<(&super::Measured, &Ops)> = drops
        .iter()
        .filter_map(|m| m.ops.as_ref().map(|ops| (m, ops)))
        .collect();
    if measured.is_empty() {
        return Ok(());
    }
    writeln!(w, "\n### What a sale and a fan cost\n")?;
    writeln!(
        w,
        "Each headline drop's work as the stores count it (PostgreSQL's `pg_stat_database` and \
         WAL position, orders-dynamo's count of DynamoDB requests, Redis's `INFO`), and each \
         process's CPU, divided by the seats sold or by the fans. A sale carries the work of \
         the fans who bought nothing. docs/capacity.md builds on these rows.\n"
    )?;
    let header: Vec<&str> = measured.iter().map(|(m, _)| m.drop.protocol).collect();
    writeln!(w, "| per | {} |", header.join(" | "))?;
    writeln!(w, "| --- |{}", " ---: |".repeat(header.len()))?;
    let row = |w: &mut String, label: &str, value: &dyn Fn(&super::Measured, &Ops) -> String| {
        let cells: Vec<String> = measured.iter().map(|(m, ops)| value(m, ops)).collect();
        writeln!(w, "| {label} | {} |", cells.join(" | "))
    };
    let sold = |m: &super::Measured| m.drop.sold.max(1) as f64;
    let fans = |m: &super::Measured| f64::from(m.drop.fans.max(1));
    for db in ["coordinator", "inventory", "payments", "notifier"] {
        row(
            w,
            &format!("PostgreSQL commits per sale, {db}"),
            &|m, ops| {
                format!(
                    "{:.1}",
                    *ops.pg_commits.get(db).unwrap_or(&0) as f64 / sold(m)
                )
            },
        )?;
    }
    row(w, "PostgreSQL WAL bytes per sale", &|m, ops| {
        format!("{:.0}", ops.wal_bytes as f64 / sold(m))
    })?;
    for operation in DYNAMODB_OPERATIONS {
        if measured
            .iter()
            .all(|(_, ops)| ops.dynamodb.get(operation).copied().unwrap_or(0) == 0)
        {
            continue;
        }
        row(w, &format!("DynamoDB {operation} per sale"), &|m, ops| {
            format!(
                "{:.2}",
                *ops.dynamodb.get(operation).unwrap_or(&0) as f64 / sold(m)
            )
        })?;
    }
    row(w, "Redis commands per fan", &|m, ops| {
        format!("{:.1}", ops.redis_commands as f64 / fans(m))
    })?;
    row(
        w,
        "Redis memory per fan (bytes, the room's keys)",
        &|m, ops| format!("{:.0}", ops.redis_room_bytes as f64 / fans(m)),
    )?;
    for process in [
        "coordinator",
        "inventory-pg",
        "orders-dynamo",
        "payments",
        "postgresql",
        "dynamodb-local",
    ] {
        row(w, &format!("CPU ms per sale, {process}"), &|m, _| {
            format!(
                "{:.2}",
                m.usage.get(process).map_or(0.0, |u| u.cpu_s) * 1e3 / sold(m)
            )
        })?;
    }
    for process in ["waiting-room", "redis", "fans (ticketdrop)"] {
        row(w, &format!("CPU µs per fan, {process}"), &|m, _| {
            format!(
                "{:.0}",
                m.usage.get(process).map_or(0.0, |u| u.cpu_s) * 1e6 / fans(m)
            )
        })?;
    }
    if let Some(idle) = idle {
        let per_s = |n: u64| n as f64 / idle.seconds.max(1e-9);
        writeln!(
            w,
            "\nWith nothing to do, over {:.1} s before the drops (ownership renewals, takeover \
             and reconciliation passes, the relay's and the notifier's polls), the same \
             counters ran at: PostgreSQL commits/s {}; WAL {:.0} bytes/s; DynamoDB requests/s \
             {:.1}; Redis commands/s {:.1}. Part of each row above is this background, over \
             the drop and the {} s the counters take to settle after it.",
            idle.seconds,
            idle.ops
                .pg_commits
                .iter()
                .map(|(db, n)| format!("{db} {:.1}", per_s(*n)))
                .collect::<Vec<_>>()
                .join(", "),
            per_s(idle.ops.wal_bytes),
            per_s(idle.ops.dynamodb.values().sum()),
            per_s(idle.ops.redis_commands),
            SETTLE.as_secs()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_info_field_is_read_by_its_whole_name() {
        let info = "# Stats\r\ntotal_commands_processed_x:9\r\ntotal_commands_processed:1234\r\n";
        assert_eq!(info_field(info, "total_commands_processed"), 1234);
        assert_eq!(info_field(info, "used_memory"), 0);
    }
}
