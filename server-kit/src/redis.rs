//! Redis: a managed connection (multiplexed, reconnecting), checked at start.

use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long a command may wait for its answer. Generous: a saturated machine delays
/// answers, and a timed-out write may still have been applied (its outcome is unknown).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a managed Redis connection and checks it with PING: up to `attempts` tries with
/// doubling backoff, each failure logged.
pub async fn connect(url: &str, attempts: u32) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url).with_context(|| format!("invalid Redis url {url:?}"))?;
    let mut backoff = Duration::from_millis(100);
    for attempt in 1..=attempts {
        let result = async {
            let config = ConnectionManagerConfig::new()
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_connection_timeout(Some(Duration::from_secs(2)));
            let mut connection = ConnectionManager::new_with_config(client.clone(), config).await?;
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await?;
            Ok::<_, redis::RedisError>(connection)
        }
        .await;
        match result {
            Ok(connection) => return Ok(connection),
            Err(error) if attempt < attempts => {
                tracing::warn!(attempt, %error, "redis not reachable yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("redis not reachable after {attempts} attempts"));
            }
        }
    }
    unreachable!("the loop returns on its last attempt")
}
