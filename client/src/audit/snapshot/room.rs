//! The waiting room's records of an event, as the audit reads them from Redis.
use super::{Fan, Room, scan};
use std::collections::HashMap;

/// Generous timeouts: the audit may run on a loaded machine, and the answer matters more
/// than its speed.
pub(super) fn redis_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(std::time::Duration::from_secs(5)))
        .set_response_timeout(Some(std::time::Duration::from_secs(30)))
}

/// The event's room (None when the event has none) and every fan record it keeps.
pub(super) async fn read_room(
    redis: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    event_id: &str,
) -> anyhow::Result<Option<Room>> {
    let room_key = format!("{prefix}:{{{event_id}}}");
    let fields: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&room_key)
        .query_async(redis)
        .await?;
    if fields.is_empty() {
        return Ok(None);
    }
    let number = |name: &str| fields.get(name).and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut room = Room {
        state: fields.get("state").cloned().unwrap_or_default(),
        max_active: number("max_active"),
        max_purchasing_seen: number("max_purchasing_seen"),
        sold_out: number("sold_out"),
        fans: Vec::new(),
    };
    let fan_prefix = format!("{room_key}:fan:");
    let keys = scan(redis, &format!("{fan_prefix}*")).await?;
    for chunk in keys.chunks(1_000) {
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.hgetall(key);
        }
        let records: Vec<HashMap<String, String>> = pipe.query_async(redis).await?;
        for (key, record) in chunk.iter().zip(records) {
            if record.is_empty() {
                continue;
            }
            let number = |name: &str| record.get(name).and_then(|v| v.parse::<i64>().ok());
            room.fans.push(Fan {
                user_id: key[fan_prefix.len()..].to_owned(),
                state: record.get("state").cloned().unwrap_or_default(),
                seq: number("seq").unwrap_or(0),
                admission_number: number("admission_number"),
                key: record.get("key").cloned(),
                ended_at_ms: number("ended_at"),
            });
        }
    }
    Ok(Some(room))
}
