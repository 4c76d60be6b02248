//! The Redis side of the lease protocol: one lock key per seat (`lock:seat:{event}:seat`,
//! the txid as value, `SET NX PX`), the event's fencing counter (`fencing:{event}`), and
//! the scripts that take, renew and release leases. The `{event}` hash tag keeps an
//! event's keys in one Redis Cluster slot, so each script runs on one node.
//!
//! The fencing token is taken **in the same script** as the leases: token order is lease
//! order. Taken apart (leases, then `INCR` in a second call), a holder paused between the
//! two could wake with a token newer than the holder that leased the seats after its
//! lease lapsed — and its writes would win over the lease holder's.
//!
//! The counter never goes below `floor`: a token at least as high as any token the
//! participants accepted or this log issued for the event (`Redis` keeps the counter in
//! its append-only file with `appendfsync everysec`, so a crash may lose its last second
//! of increments; without the floor, tokens already used would be handed out again).

use std::time::Duration;

use redis::Script;

/// Takes leases in KEYS[2..] order until ARGV[3] are held (ARGV[4] = 1: every key or
/// none), value ARGV[1], ttl ARGV[2] ms. Returns {token, per key 1 taken, -1 held by
/// another, 0 not tried}. When enough were taken and ARGV[5] = 1 (fenced), the token is
/// the event's counter KEYS[1] raised to at least ARGV[6] (the floor), then incremented;
/// otherwise 0. When too few were taken, it gives back the ones it took.
const ACQUIRE: &str = "local taken, result, want = 0, {}, tonumber(ARGV[3]) \
    for i = 2, #KEYS do \
      local key = KEYS[i] \
      if taken == want then result[i - 1] = 0 \
      elseif redis.call('set', key, ARGV[1], 'NX', 'PX', ARGV[2]) then \
        taken = taken + 1; result[i - 1] = 1 \
      else result[i - 1] = -1; if ARGV[4] == '1' then break end end \
    end \
    for i = #result + 1, #KEYS - 1 do result[i] = 0 end \
    if taken < want then \
      for i = 2, #KEYS do \
        if result[i - 1] == 1 then redis.call('del', KEYS[i]); result[i - 1] = 0 end \
      end \
      table.insert(result, 1, 0) \
      return result \
    end \
    local token = 0 \
    if ARGV[5] == '1' then \
      local floor = tonumber(ARGV[6]) \
      if tonumber(redis.call('get', KEYS[1]) or '0') < floor then \
        redis.call('set', KEYS[1], floor) \
      end \
      token = redis.call('incr', KEYS[1]) \
    end \
    table.insert(result, 1, token) \
    return result";
static ACQUIRE_SCRIPT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(ACQUIRE));
/// Deletes the lease only while it is still ours.
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
                       return redis.call('del', KEYS[1]) else return 0 end";
/// Extends the lease only while it is still ours.
const RENEW: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
                     return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";

pub fn lock_key(event_id: &str, seat_id: &str) -> String {
    format!("lock:seat:{{{event_id}}}:{seat_id}")
}

pub fn fencing_key(event_id: &str) -> String {
    format!("fencing:{{{event_id}}}")
}

/// What one acquisition took.
pub struct Acquired {
    /// The candidates leased, in candidate order.
    pub held: Vec<String>,
    /// The candidates another purchase holds.
    pub refused: Vec<String>,
    /// The fencing token taken with the leases (0 when unfenced, or when too few seats
    /// were leased).
    pub token: i64,
}

/// How a lease acquisition is asked for.
pub struct Ask<'a> {
    pub event_id: &'a str,
    pub txid: &'a str,
    pub candidates: &'a [String],
    pub wanted: usize,
    /// Named seats: all of them or none.
    pub all_or_none: bool,
    pub ttl: Duration,
    /// Take a fencing token with the leases, at least one more than `floor`.
    pub fenced: bool,
    pub floor: i64,
}

/// Takes the first free leases among the candidates, in order, and the fencing token,
/// in one script. SET NX never waits, so no order can deadlock, and concurrent buyers
/// skip past each other's leases within one round trip.
pub async fn acquire(
    redis: &mut redis::aio::ConnectionManager,
    ask: &Ask<'_>,
) -> redis::RedisResult<Acquired> {
    let mut script = ACQUIRE_SCRIPT.prepare_invoke();
    script.key(fencing_key(ask.event_id));
    for seat in ask.candidates {
        script.key(lock_key(ask.event_id, seat));
    }
    let ttl_ms = u64::try_from(ask.ttl.as_millis()).unwrap_or(u64::MAX);
    let answer: Vec<i64> = script
        .arg(ask.txid)
        .arg(ttl_ms)
        .arg(ask.wanted)
        .arg(u8::from(ask.all_or_none))
        .arg(u8::from(ask.fenced))
        .arg(ask.floor)
        .invoke_async(redis)
        .await?;
    let (token, taken) = answer
        .split_first()
        .map_or((0, &[][..]), |(t, rest)| (*t, rest));
    let mut acquired = Acquired {
        held: Vec::new(),
        refused: Vec::new(),
        token,
    };
    for (seat, taken) in ask.candidates.iter().zip(taken) {
        match taken {
            1 => acquired.held.push(seat.clone()),
            -1 => acquired.refused.push(seat.clone()),
            _ => {}
        }
    }
    Ok(acquired)
}

/// Releases each lease still ours; an error names the last failure (a lease we could
/// not delete expires by itself; the audit lists orphans).
pub async fn release(
    redis: &mut redis::aio::ConnectionManager,
    event_id: &str,
    seats: &[String],
    txid: &str,
) -> Result<(), String> {
    let script = Script::new(RELEASE);
    let mut failed = None;
    for seat in seats {
        if let Err(error) = script
            .key(lock_key(event_id, seat))
            .arg(txid)
            .invoke_async::<i64>(redis)
            .await
        {
            failed = Some(error.to_string());
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Renews the leases every third of their ttl until the task is aborted.
pub async fn keep_renewed(
    mut redis: redis::aio::ConnectionManager,
    txid: String,
    event_id: String,
    seats: Vec<String>,
    ttl: Duration,
) {
    let script = Script::new(RENEW);
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    loop {
        tokio::time::sleep(ttl / 3).await;
        for seat in &seats {
            let renewed = script
                .key(lock_key(&event_id, seat))
                .arg(&txid)
                .arg(ttl_ms)
                .invoke_async::<i64>(&mut redis)
                .await;
            if !matches!(renewed, Ok(1)) {
                // Lost the lease: keep going; the fencing token guards the writes.
                tracing::warn!(%txid, seat, "lease lost while working");
            }
        }
    }
}
