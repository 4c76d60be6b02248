//! PostgreSQL: a connection pool and ordered, idempotent schema migrations.

use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tracing::{info, warn};

/// One schema change, applied once, in `version` order.
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// A database error with the server's own message ("db error" alone says nothing).
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

/// Builds a pool, waits for the database and applies `migrations`: what every
/// PostgreSQL-backed service does at start. The pool's saturation is a metric from then on.
pub async fn connect_and_migrate(
    url: &str,
    max_size: usize,
    connect_attempts: u32,
    migrations: &[Migration],
) -> anyhow::Result<Pool> {
    let pool = pool(url, max_size)?;
    wait_until_ready(&pool, connect_attempts).await?;
    migrate(&pool, migrations).await?;
    let database = url
        .parse::<tokio_postgres::Config>()
        .ok()
        .and_then(|config| config.get_dbname().map(str::to_owned))
        .unwrap_or_else(|| "postgres".into());
    crate::metrics::watch_pool(database, pool.clone());
    Ok(pool)
}

/// Builds a pool of at most `max_size` connections. Connections open lazily.
pub fn pool(url: &str, max_size: usize) -> anyhow::Result<Pool> {
    let config: tokio_postgres::Config = url
        .parse()
        .with_context(|| format!("invalid PostgreSQL url {url:?}"))?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .build()
        .context("building the PostgreSQL pool")
}

/// Waits for the database to accept a connection: up to `attempts` tries with
/// doubling backoff, each failure logged.
pub async fn wait_until_ready(pool: &Pool, attempts: u32) -> anyhow::Result<()> {
    let mut backoff = Duration::from_millis(100);
    for attempt in 1..=attempts {
        match pool.get().await {
            Ok(_) => return Ok(()),
            Err(error) if attempt < attempts => {
                warn!(attempt, %error, "database not reachable yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("database not reachable after {attempts} attempts"));
            }
        }
    }
    unreachable!("the loop returns on its last attempt")
}

/// Applies the migrations not applied yet, in one transaction, under an
/// advisory lock so that two instances starting at once do not race. A migration whose
/// text changed after it was applied is refused: the database and the code disagree.
pub async fn migrate(pool: &Pool, migrations: &[Migration]) -> anyhow::Result<()> {
    let mut client = pool.get().await.context("connecting for migrations")?;
    let tx = client.transaction().await?;
    // Any constant works: it only serialises migrations against each other.
    tx.execute("SELECT pg_advisory_xact_lock(7263616)", &[])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             checksum   text,
             applied_at timestamptz NOT NULL DEFAULT now()
         );
         ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text",
    )
    .await?;
    let applied: Vec<(i32, Option<String>)> = tx
        .query("SELECT version, checksum FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    for migration in migrations {
        let checksum = checksum(migration.sql);
        if let Some((_, stored)) = applied.iter().find(|(v, _)| *v == migration.version) {
            if stored.as_deref() != Some(checksum.as_str()) {
                anyhow::bail!(
                    "migration {} ({}) differs from the one applied to this database; \
                     reset the database (make stack-reset) or add a new migration",
                    migration.version,
                    migration.name
                );
            }
            continue;
        }
        tx.batch_execute(migration.sql)
            .await
            .with_context(|| format!("migration {} ({})", migration.version, migration.name))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&migration.version, &migration.name, &checksum],
        )
        .await?;
        info!(
            version = migration.version,
            name = migration.name,
            "migration applied"
        );
    }
    tx.commit().await?;
    Ok(())
}

fn checksum(sql: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(sql.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
