//! The hold-expiry sweeper: returns expired holds to AVAILABLE, in batches, at least
//! once a second. Its update is conditional on the hold still being HELD and expired,
//! and ConfirmSeats' update on it being HELD and unexpired: both lock the row, so
//! whichever runs second re-checks and does nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use tracing::{info, warn};

/// Most holds released per statement, so one sweep never holds many row locks long.
const BATCH: i64 = 1_000;

/// Counters since start, read by GetSweeperStats.
#[derive(Debug, Default)]
pub struct SweeperStats {
    pub released_total: AtomicU64,
    pub runs: AtomicU64,
    /// Unix milliseconds of the last run, 0 before the first.
    pub last_run_ms: AtomicI64,
}

/// Sweeps every `interval` until the task is dropped; a sweep that released holds
/// invalidates the cached seat maps.
pub async fn run(
    pool: Pool,
    interval: Duration,
    stats: Arc<SweeperStats>,
    maps: Arc<crate::seat_map::SeatMaps>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match sweep(&pool).await {
            Ok(released) => {
                stats.released_total.fetch_add(released, Ordering::Relaxed);
                if released > 0 {
                    maps.changed();
                    info!(released, "released expired holds");
                }
            }
            // Logged and retried on the next tick; the sweeper never stops. A batch may
            // have committed before the failure.
            Err(error) => {
                maps.changed();
                warn!(%error, "hold sweep failed");
            }
        }
        stats.runs.fetch_add(1, Ordering::Relaxed);
        stats
            .last_run_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }
}

/// Releases every expired hold; returns how many.
pub async fn sweep(pool: &Pool) -> anyhow::Result<u64> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE seats s
                SET status = 'AVAILABLE', holder = NULL, hold_expires_at = NULL,
                    version = s.version + 1
               FROM (SELECT event_id, seat_id FROM seats
                      WHERE status = 'HELD' AND hold_expires_at <= now()
                      LIMIT $1 FOR UPDATE SKIP LOCKED) expired
              WHERE s.event_id = expired.event_id AND s.seat_id = expired.seat_id
                AND s.status = 'HELD' AND s.hold_expires_at <= now()",
        )
        .await?;
    let mut released = 0;
    loop {
        let n = client.execute(&statement, &[&BATCH]).await?;
        released += n;
        if n < BATCH as u64 {
            return Ok(released);
        }
    }
}
