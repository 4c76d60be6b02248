//! Processes crashed and killed: a failpoint that aborts a service at a precise protocol
//! step, SIGKILL of a store, a participant that loses its answers.

use std::time::{Duration, Instant};

use proto::v1::Protocol;
use tokio::task::JoinHandle;

use super::leases::leases_held;
use super::{CRASH_WAIT, DOWN, Faults, in_flight, wait_for};
use crate::chaos::lab::{Lab, Target, signal_of};
use crate::chaos::workload::Op;

/// Waits for the armed failpoint to crash `target`, keeps it down for [`DOWN`], and
/// starts it again without failpoints. Evidence: the process died of SIGABRT, and its log
/// says which failpoint crashed it.
pub(super) async fn crash_and_restart(
    lab: &mut Lab,
    target: Target,
    failpoint: &str,
    started: Instant,
    faults: &mut Faults,
    workload: &JoinHandle<Vec<Op>>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + CRASH_WAIT;
    while lab.is_running(target) {
        if Instant::now() > deadline || workload.is_finished() {
            faults.note(
                started,
                format!("{} never reached its failpoint {failpoint}", target.name()),
            );
            return lab.set_failpoints(target, None).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    faults.begin(started);
    let status = lab.exit_status(target);
    let aborted = status.as_ref().and_then(signal_of) == Some(6);
    let logged = lab
        .log(target)
        .lines()
        .any(|line| line.contains("crashing the process") && line.contains(failpoint));
    let how = status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
    if aborted && logged {
        faults.injected = true;
        faults.prove(
            started,
            format!(
                "{} died at failpoint {failpoint} ({how}; its log: crashing the process)",
                target.name()
            ),
        );
    } else {
        faults.note(
            started,
            format!(
                "{} stopped ({how}), but not at failpoint {failpoint} as far as its log says",
                target.name()
            ),
        );
    }
    tokio::time::sleep(DOWN).await;
    lab.set_failpoints(target, None).await?;
    faults.note(started, format!("{} restarted", target.name()));
    faults.heal(started);
    Ok(())
}

/// SIGKILL, `down`, start again; whether the kill is proven (the process died of it).
async fn down_and_up(
    lab: &mut Lab,
    target: Target,
    down: Duration,
    started: Instant,
    faults: &mut Faults,
) -> anyhow::Result<bool> {
    faults.begin(started);
    let killed = lab.kill(target).await?;
    match &killed {
        Some(how) => faults.prove(started, format!("SIGKILL {how}")),
        None => faults.note(
            started,
            format!("{} was not running to be killed", target.name()),
        ),
    }
    tokio::time::sleep(down).await;
    lab.start_again(target).await?;
    faults.note(started, format!("{} started again", target.name()));
    faults.heal(started);
    Ok(killed.is_some())
}

/// Payments loses the answers of three committed captures (a failpoint armed from the
/// start). Evidence: payments' count of the answers it lost.
pub(super) async fn lose_capture_answers(
    lab: &mut Lab,
    started: Instant,
    faults: &mut Faults,
    workload: &JoinHandle<Vec<Op>>,
) -> anyhow::Result<()> {
    // The failpoint is the fault, armed from the start: it is in force for the
    // whole workload. Payments counts each answer it lost.
    faults.begin(started);
    faults.note(started, "payments is to lose the answers of three captures");
    while !workload.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    faults.heal(started);
    let lost = lab
        .payments
        .metric_total("ticketdrop_failpoint_fired_total")
        .await
        .unwrap_or(0);
    if lost > 0 {
        faults.injected = true;
        faults.prove(
            started,
            format!(
                "payments lost the answers of {lost} committed captures \
                 (ticketdrop_failpoint_fired_total)"
            ),
        );
    } else {
        faults.note(
            started,
            "payments lost no answer: the failpoint never fired",
        );
    }
    Ok(())
}

/// PostgreSQL SIGKILLed mid-drop (under 2pc once prepared transactions exist) and
/// restarted 1.5 s later.
pub(super) async fn kill_postgres(
    lab: &mut Lab,
    protocol: Protocol,
    event: &str,
    started: Instant,
    faults: &mut Faults,
) -> anyhow::Result<()> {
    // Under 2pc the fault is a kill with prepared transactions; under the others,
    // a kill with purchases in flight.
    let ready = if protocol == Protocol::TwoPhaseCommit {
        wait_for(Duration::from_secs(10), || prepared_exists(lab, event)).await
    } else {
        wait_for(Duration::from_secs(10), || in_flight(lab, event)).await
    };
    let what = if protocol == Protocol::TwoPhaseCommit {
        "prepared transactions"
    } else {
        "purchases in flight"
    };
    if ready {
        faults.prove(started, format!("{what} of the event exist at the kill"));
    } else {
        faults.note(started, format!("no {what} seen within 10 s"));
    }
    let killed = down_and_up(
        lab,
        Target::Postgres,
        Duration::from_millis(1_500),
        started,
        faults,
    )
    .await?;
    faults.injected = ready && killed;
    Ok(())
}

/// DynamoDB Local SIGKILLed with purchases in flight, restarted 1.5 s later.
pub(super) async fn kill_dynamodb(
    lab: &mut Lab,
    event: &str,
    started: Instant,
    faults: &mut Faults,
) -> anyhow::Result<()> {
    let ready = wait_for(Duration::from_secs(10), || in_flight(lab, event)).await;
    if ready {
        faults.prove(started, "purchases of the event in flight at the kill");
    }
    let killed = down_and_up(
        lab,
        Target::Dynamodb,
        Duration::from_millis(1_500),
        started,
        faults,
    )
    .await?;
    faults.injected = ready && killed;
    Ok(())
}

/// Redis SIGKILLed while seat leases are held, restarted 1 s later.
pub(super) async fn kill_redis(
    lab: &mut Lab,
    event: &str,
    started: Instant,
    faults: &mut Faults,
) -> anyhow::Result<()> {
    let held = wait_for(Duration::from_secs(10), || leases_held(lab, event)).await;
    if held {
        faults.prove(started, "seat leases of the event are held at the kill");
    } else {
        faults.note(started, "no lease seen within 10 s");
    }
    let killed = down_and_up(lab, Target::Redis, DOWN, started, faults).await?;
    faults.injected = held && killed;
    Ok(())
}

async fn prepared_exists(lab: &Lab, event: &str) -> bool {
    let Ok(sql) = crate::stores::postgres("inventory", &lab.pg.url("inventory")).await else {
        return false;
    };
    sql.query_one(
        "SELECT count(*) FROM txn_prepared p
           JOIN pg_prepared_xacts x ON x.gid = 'td-' || p.txid
          WHERE p.event_id = $1",
        &[&event],
    )
    .await
    .is_ok_and(|row| row.get::<_, i64>(0) > 0)
}
