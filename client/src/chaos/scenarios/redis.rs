//! Redis restarted without its last second of writes: the fencing counter goes back, and
//! no token at or below one a seat already saw may be handed out again.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::{Faults, wait_for};
use crate::chaos::lab::Lab;
use crate::chaos::workload::{Op, Spec, Want};

/// The highest fencing token any seat of `event` has seen (inventory's own record).
async fn max_seat_token(lab: &Lab, event: &str) -> Option<i64> {
    let sql = crate::stores::postgres("inventory", &lab.pg.url("inventory"))
        .await
        .ok()?;
    sql.query_one(
        "SELECT coalesce(max(fencing_token), 0) FROM seats WHERE event_id = $1",
        &[&event],
    )
    .await
    .ok()
    .map(|row| row.get(0))
}

/// The event's fencing counter in Redis now.
async fn fencing_counter(lab: &Lab, event: &str) -> Option<i64> {
    let client = redis::Client::open(lab.redis.url()).ok()?;
    let mut redis = client.get_multiplexed_async_connection().await.ok()?;
    redis::cmd("GET")
        .arg(format!("fencing:{{{event}}}"))
        .query_async::<Option<i64>>(&mut redis)
        .await
        .ok()
        .map(Option::unwrap_or_default)
}

/// Redis loses its last writes: a copy of its append-only file is taken while lease
/// purchases run, they go on for half a second (within the second `appendfsync everysec`
/// may lose), then Redis is SIGKILLed and restarted from the copy, and the nemesis buys
/// the event's last seats itself (a token is taken whether or not the seat is still
/// free). Evidence: the counter after the restart is below the highest token a seat had
/// already seen, and tokens were handed out after it. The check: every one of them is
/// above that highest token.
pub(super) async fn redis_losing_last_second(
    lab: &mut Lab,
    spec: &Spec,
    started: Instant,
    faults: &mut Faults,
    workload: &JoinHandle<Vec<Op>>,
) -> anyhow::Result<()> {
    let event = spec.event.as_str();
    let leasing = wait_for(Duration::from_secs(10), || async {
        max_seat_token(lab, event).await.unwrap_or(0) > 0
    })
    .await;
    faults.begin(started);
    let snapshot = lab.redis.snapshot()?;
    faults.note(started, "copy of Redis's append-only file taken");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen_before = max_seat_token(lab, event).await.unwrap_or(0);
    lab.redis.restart_from(&snapshot)?;
    let restarted_at = chrono::Utc::now();
    let counter_after = fencing_counter(lab, event).await.unwrap_or(0);
    faults.note(
        started,
        format!(
            "SIGKILL Redis; restarted from the copy: the fencing counter is {counter_after}, \
             the seats had seen tokens up to {seen_before}"
        ),
    );
    let lab_coordinator = lab.coordinators()?[0].clone();
    for i in 0..3 {
        let seat = format!("A-1-{}", spec.seats.clamp(1, 100).saturating_sub(i).max(1));
        let op = crate::chaos::workload::purchase(
            spec,
            lab_coordinator.clone(),
            spec.fans + 10 + i,
            Want::Seat(seat.clone()),
            0,
            started,
        )
        .await;
        faults.note(
            started,
            format!(
                "after the restart, a purchase of {seat}: {}",
                op.completion.summary()
            ),
        );
        faults.ops.push(op);
    }
    while !workload.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    faults.heal(started);
    // Every token handed out after the restart, from the lab's log.
    let log = crate::stores::postgres("coordinator", &lab.pg.url("coordinator")).await?;
    let reissued: Vec<(String, i64)> = log
        .query(
            "SELECT txid, fencing_token FROM transactions
              WHERE event_id = $1 AND started_at > $2 AND fencing_token IS NOT NULL
                AND fencing_token <= $3
              ORDER BY fencing_token",
            &[&event, &restarted_at, &seen_before],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let issued_after: i64 = log
        .query_one(
            "SELECT count(*) FROM transactions
              WHERE event_id = $1 AND started_at > $2 AND fencing_token IS NOT NULL",
            &[&event, &restarted_at],
        )
        .await?
        .get(0);
    faults.note(
        started,
        format!(
            "{issued_after} lease tokens handed out after the restart, {} of them at or \
             below {seen_before}",
            reissued.len()
        ),
    );
    if !reissued.is_empty() {
        faults.violations.push(crate::chaos::checker::Violation {
            check: "fencing".to_owned(),
            kind: "token_reissued".to_owned(),
            ids: reissued.iter().map(|(txid, _)| txid.clone()).collect(),
            detail: format!(
                "tokens {} were handed out after Redis restarted, though the seats had seen \
                 tokens up to {seen_before}",
                reissued
                    .iter()
                    .map(|(_, token)| token.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            timeline: Vec::new(),
        });
    }
    // The fault happened: tokens were in use, and the counter really went back.
    faults.injected = leasing && counter_after < seen_before && issued_after > 0;
    if faults.injected {
        faults.evidence.push(format!(
            "Redis restarted with its fencing counter at {counter_after}, below the {seen_before} \
             the seats had seen; {issued_after} tokens handed out after"
        ));
    }
    Ok(())
}
