//! Lease holders paused past their lease: the fencing token is what refuses their late
//! writes (and, in the negative control, its absence what sells a seat twice).

use std::time::{Duration, Instant};

use super::{Faults, wait_for};
use crate::chaos::lab::{Lab, Target};
use crate::chaos::workload::{Spec, Want};

/// Whether seat leases of `event` are held in Redis now.
pub(super) async fn leases_held(lab: &Lab, event: &str) -> bool {
    let Ok(client) = redis::Client::open(lab.redis.url()) else {
        return false;
    };
    let Ok(mut redis) = client.get_multiplexed_async_connection().await else {
        return false;
    };
    redis::cmd("KEYS")
        .arg(format!("lock:seat:{{{event}}}:*"))
        .query_async::<Vec<String>>(&mut redis)
        .await
        .is_ok_and(|keys| !keys.is_empty())
}

/// The lease story, made to happen every run: a purchase of the event's last seat (the
/// one best-available fans reach last, so it is still free) goes to the lab coordinator,
/// which stops 1 s after taking its lease (failpoint); it is SIGSTOPped there, holding the
/// lease. Past the lease, the rival coordinator sells every seat the paused one leased.
/// Then SIGCONT: the paused holder writes on its stale lease — refused by fencing, or,
/// without fencing, a second sale of the seat.
pub(super) async fn pause_lease_holder(
    lab: &mut Lab,
    spec: &Spec,
    started: Instant,
    faults: &mut Faults,
) -> anyhow::Result<()> {
    let event = spec.event.as_str();
    let coordinators = lab.coordinators()?;
    let (holder, rival) = (coordinators[0].clone(), coordinators[1].clone());
    let seat = format!("A-1-{}", spec.seats.clamp(1, 100));
    let holder_op = {
        let (spec, seat) = (spec.clone(), seat.clone());
        let fan = spec.fans;
        tokio::spawn(async move {
            crate::chaos::workload::purchase(&spec, holder, fan, Want::Seat(seat), 0, started).await
        })
    };
    let holding = wait_for(Duration::from_secs(10), || intent_logged(lab, event)).await;
    if !holding {
        faults.note(
            started,
            format!("no lease intent seen within 10 s (wanted {seat})"),
        );
        faults.ops.push(holder_op.await?);
        return Ok(());
    }
    faults.begin(started);
    lab.pause(Target::Coordinator)?;
    let held = leased_seats(lab, event).await;
    let sold_before = sold_seats(lab, event, &held).await;
    faults.note(
        started,
        format!(
            "SIGSTOP coordinator, its purchases holding leases of 1.5 s on {}",
            held.join(", ")
        ),
    );
    tokio::time::sleep(LEASE_TTL + Duration::from_millis(300)).await;
    for (i, seat) in held.iter().enumerate() {
        let op = crate::chaos::workload::purchase(
            spec,
            rival.clone(),
            spec.fans + 1 + i as u32,
            Want::Seat(seat.clone()),
            1,
            started,
        )
        .await;
        faults.note(
            started,
            format!(
                "the rival sells {seat} past the lease: {}",
                op.completion.summary()
            ),
        );
        faults.ops.push(op);
    }
    // The fault: seats the stopped holder had leased were sold by someone else while it
    // was stopped (the nemesis's own purchase, or a fan's on the rival).
    let sold_after = sold_seats(lab, event, &held).await;
    faults.contested_seats = sold_after
        .into_iter()
        .filter(|seat| !sold_before.contains(seat))
        .collect();
    lab.resume(Target::Coordinator)?;
    faults.note(started, "SIGCONT coordinator: the paused holder writes");
    let op = holder_op.await?;
    faults.note(
        started,
        format!(
            "the paused holder's purchase of {seat}: {}",
            op.completion.summary()
        ),
    );
    faults.ops.push(op);
    faults.heal(started);
    if !faults.contested_seats.is_empty() {
        faults.injected = true;
        let contested = faults.contested_seats.join(", ");
        faults.prove(
            started,
            format!(
                "seat(s) {contested}, leased by the stopped holder, were sold by another \
                 buyer while it was stopped"
            ),
        );
    }
    Ok(())
}

/// Which of `seats` inventory has SOLD now.
async fn sold_seats(lab: &Lab, event: &str, seats: &[String]) -> Vec<String> {
    let Ok(sql) = crate::stores::postgres("inventory", &lab.pg.url("inventory")).await else {
        return Vec::new();
    };
    sql.query(
        "SELECT seat_id FROM seats WHERE event_id = $1 AND seat_id = ANY($2) AND status = 'SOLD'",
        &[&event, &seats],
    )
    .await
    .map(|rows| rows.iter().map(|row| row.get(0)).collect())
    .unwrap_or_default()
}

/// The lab coordinator's lease timing (its `--lease-ttl-ms`).
const LEASE_TTL: Duration = Duration::from_millis(1_500);

/// The seats the lab coordinator's running lease purchases have leased.
async fn leased_seats(lab: &Lab, event: &str) -> Vec<String> {
    let Ok(sql) = crate::stores::postgres("coordinator", &lab.pg.url("coordinator")).await else {
        return Vec::new();
    };
    let mut seats: Vec<String> = sql
        .query(
            "SELECT leased_seats FROM transactions
              WHERE event_id = $1 AND fencing_token IS NOT NULL AND state = 'RUNNING'",
            &[&event],
        )
        .await
        .map(|rows| {
            rows.iter()
                .flat_map(|row| row.get::<_, Option<Vec<String>>>(0).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    seats.sort();
    seats.dedup();
    seats
}

async fn intent_logged(lab: &Lab, event: &str) -> bool {
    let Ok(sql) = crate::stores::postgres("coordinator", &lab.pg.url("coordinator")).await else {
        return false;
    };
    sql.query_one(
        "SELECT count(*) FROM transactions
          WHERE event_id = $1 AND fencing_token IS NOT NULL AND state = 'RUNNING'",
        &[&event],
    )
    .await
    .is_ok_and(|row| row.get::<_, i64>(0) > 0)
}
