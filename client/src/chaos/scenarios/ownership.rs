//! Several coordinators on one log: one killed or paused while it drives purchases, its
//! purchases taken over by another; and a second cluster with a log of its own on the
//! same participants.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::{Faults, lab_log, wait_for};
use crate::chaos::lab::{Lab, Target};
use crate::chaos::workload::Op;
use crate::load::stats::percentile_of;

/// Purchases of `event` still running and owned by the coordinator listening on `addr`
/// (a log without owners, from before coordinators shared logs: any running purchase).
async fn owned_running(lab: &Lab, event: &str, addr: &str) -> i64 {
    let Some(log) = lab_log(lab).await else {
        return 0;
    };
    let owned = log
        .query_one(
            "SELECT count(*) FROM transactions t JOIN coordinators c ON c.instance_id = t.owner
              WHERE t.event_id = $1 AND c.listen = $2 AND t.state = 'RUNNING'",
            &[&event, &addr],
        )
        .await;
    match owned {
        Ok(row) => row.get(0),
        Err(_) => log
            .query_one(
                "SELECT count(*) FROM transactions WHERE event_id = $1 AND state = 'RUNNING'",
                &[&event],
            )
            .await
            .map_or(0, |row| row.get(0)),
    }
}

/// What the log says happened to the purchases begun by the coordinator on `addr`: how
/// many another coordinator took over, the milliseconds from `since` to each takeover,
/// and how many of its writes the log refused once it had lost them.
pub(super) struct Takeovers {
    pub taken_over: usize,
    pub after_ms: Vec<f64>,
    pub refused: i64,
}

pub(super) async fn takeovers(
    lab: &Lab,
    event: &str,
    addr: &str,
    since: chrono::DateTime<chrono::Utc>,
) -> Takeovers {
    let mut found = Takeovers {
        taken_over: 0,
        after_ms: Vec::new(),
        refused: 0,
    };
    let Some(log) = lab_log(lab).await else {
        return found;
    };
    if let Ok(rows) = log
        .query(
            "SELECT (extract(epoch FROM min(e.at) - $3) * 1000)::float8
               FROM ownership_events e
               JOIN transactions t USING (txid)
               JOIN coordinators c ON c.instance_id = t.began_by
              WHERE t.event_id = $1 AND c.listen = $2 AND e.event = 'takeover'
                AND e.instance_id <> t.began_by
              GROUP BY e.txid",
            &[&event, &addr, &since],
        )
        .await
    {
        found.taken_over = rows.len();
        found.after_ms = rows.iter().map(|row| row.get(0)).collect();
    }
    if let Ok(row) = log
        .query_one(
            "SELECT count(*) FROM ownership_events e
               JOIN transactions t USING (txid)
               JOIN coordinators c ON c.instance_id = e.instance_id
              WHERE t.event_id = $1 AND c.listen = $2 AND e.event = 'refused'",
            &[&event, &addr],
        )
        .await
    {
        found.refused = row.get(0);
    }
    found
}

/// Waits (up to 10 s) until the coordinator on `addr` drives a purchase of `event`; false
/// when it never did.
pub(super) async fn until_driving(lab: &Lab, event: &str, addr: &str) -> bool {
    wait_for(Duration::from_secs(10), || async {
        owned_running(lab, event, addr).await > 0
    })
    .await
}

pub(super) fn p50_p99(values: &[f64]) -> String {
    format!(
        "{:.0} / {:.0} ms",
        percentile_of(values, 0.5),
        percentile_of(values, 0.99)
    )
}

/// Three coordinators on one log; the third is SIGKILLed while it drives a purchase and
/// stays down until the lab heals. Evidence: the signal it died of, and its purchases
/// taken over by the others (with the time from the kill to each takeover).
pub(super) async fn kill_one_of_three(
    lab: &mut Lab,
    event: &str,
    started: Instant,
    faults: &mut Faults,
    workload: &JoinHandle<Vec<Op>>,
) -> anyhow::Result<()> {
    let victim = lab
        .peers
        .len()
        .checked_sub(1)
        .expect("two peers were started");
    let addr = lab.peers[victim].addr().to_string();
    let driving = until_driving(lab, event, &addr).await;
    faults.begin(started);
    let killed_at = chrono::Utc::now();
    let status = lab.peers[victim].kill().await?;
    faults.note(
        started,
        format!(
            "SIGKILL the coordinator on {addr}{}: {status}",
            if driving { ", driving purchases" } else { "" }
        ),
    );
    while !workload.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    faults.heal(started);
    let seen = wait_for(Duration::from_secs(10), || async {
        takeovers(lab, event, &addr, killed_at).await.taken_over > 0
    })
    .await;
    let found = takeovers(lab, event, &addr, killed_at).await;
    faults.note(
        started,
        format!(
            "{} of its purchases taken over by the others, {} after the kill (p50 / p99)",
            found.taken_over,
            p50_p99(&found.after_ms)
        ),
    );
    faults.takeover_ms = found.after_ms;
    faults.injected = driving && seen && status_is_sigkill(&status);
    if faults.injected {
        faults.evidence.push(format!(
            "the coordinator on {addr} died of SIGKILL while driving purchases; {} of them \
             taken over",
            found.taken_over
        ));
    }
    Ok(())
}

fn status_is_sigkill(status: &std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

/// Two coordinators on one log; the lab's own is SIGSTOPped while it drives a purchase,
/// for twice its ownership; the peer takes its purchases over; SIGCONT. Evidence: the
/// takeovers, and the log's refusal of the woken coordinator's writes.
pub(super) async fn pause_past_ownership(
    lab: &mut Lab,
    event: &str,
    started: Instant,
    faults: &mut Faults,
    workload: &JoinHandle<Vec<Op>>,
) -> anyhow::Result<()> {
    let addr = lab.coordinator.addr().to_string();
    let driving = until_driving(lab, event, &addr).await;
    faults.begin(started);
    let paused_at = chrono::Utc::now();
    lab.pause(Target::Coordinator)?;
    faults.note(
        started,
        format!(
            "SIGSTOP the coordinator on {addr}{}",
            if driving { ", driving purchases" } else { "" }
        ),
    );
    let taken = wait_for(crate::chaos::lab::OWNERSHIP_TTL * 4, || async {
        takeovers(lab, event, &addr, paused_at).await.taken_over > 0
    })
    .await;
    tokio::time::sleep(crate::chaos::lab::OWNERSHIP_TTL).await;
    lab.resume(Target::Coordinator)?;
    faults.note(started, "SIGCONT: the paused coordinator wakes");
    while !workload.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    faults.heal(started);
    let refused = wait_for(Duration::from_secs(10), || async {
        takeovers(lab, event, &addr, paused_at).await.refused > 0
    })
    .await;
    let found = takeovers(lab, event, &addr, paused_at).await;
    faults.note(
        started,
        format!(
            "{} of its purchases taken over ({} after the SIGSTOP, p50 / p99); {} of its \
             writes refused after it woke",
            found.taken_over,
            p50_p99(&found.after_ms),
            found.refused
        ),
    );
    faults.takeover_ms = found.after_ms;
    faults.injected = driving && taken && refused;
    if faults.injected {
        faults.evidence.push(format!(
            "the coordinator on {addr}, stopped while driving purchases, had {} taken over \
             and {} of its late writes refused by the log",
            found.taken_over, found.refused
        ));
    }
    Ok(())
}

/// The coordinator is SIGSTOPped while it drives a purchase; a second coordinator starts
/// on the same log and takes its purchases over; SIGCONT. Evidence as above.
pub(super) async fn second_on_the_same_log(
    lab: &mut Lab,
    event: &str,
    started: Instant,
    faults: &mut Faults,
    workload: &JoinHandle<Vec<Op>>,
) -> anyhow::Result<()> {
    let addr = lab.coordinator.addr().to_string();
    let driving = until_driving(lab, event, &addr).await;
    faults.begin(started);
    let paused_at = chrono::Utc::now();
    lab.pause(Target::Coordinator)?;
    faults.note(
        started,
        format!(
            "SIGSTOP the coordinator on {addr}{}",
            if driving { ", driving purchases" } else { "" }
        ),
    );
    let peer = lab.start_peer().await?;
    faults.note(
        started,
        format!(
            "a second coordinator starts on the same log ({})",
            lab.peers[peer].addr()
        ),
    );
    let taken = wait_for(crate::chaos::lab::OWNERSHIP_TTL * 4, || async {
        takeovers(lab, event, &addr, paused_at).await.taken_over > 0
    })
    .await;
    lab.resume(Target::Coordinator)?;
    faults.note(started, "SIGCONT: the first coordinator wakes");
    while !workload.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    faults.heal(started);
    let found = takeovers(lab, event, &addr, paused_at).await;
    faults.note(
        started,
        format!(
            "{} of its purchases taken over by the second ({} after the SIGSTOP, p50 / p99); \
             {} of its writes refused after it woke",
            found.taken_over,
            p50_p99(&found.after_ms),
            found.refused
        ),
    );
    faults.takeover_ms = found.after_ms;
    faults.injected = driving && taken;
    if faults.injected {
        faults.evidence.push(format!(
            "the coordinator on {addr}, stopped while driving purchases, had {} taken over by \
             the second one",
            found.taken_over
        ));
    }
    Ok(())
}

/// Committed purchases of `event` in each log.
async fn sold_by_each_log(lab: &Lab, event: &str) -> Vec<(&'static str, i64)> {
    let mut sold = Vec::new();
    for db in lab.logs() {
        let Ok(log) = crate::stores::postgres("coordinator", &lab.pg.url(db)).await else {
            continue;
        };
        if let Ok(row) = log
            .query_one(
                "SELECT count(*) FROM transactions WHERE event_id = $1 AND state = 'COMMITTED'",
                &[&event],
            )
            .await
        {
            sold.push((db, row.get(0)));
        }
    }
    sold
}

/// Two clusters sell the event at once. Evidence: both logs committed purchases.
pub(super) async fn second_log(
    lab: &mut Lab,
    event: &str,
    started: Instant,
    faults: &mut Faults,
    workload: &JoinHandle<Vec<Op>>,
) -> anyhow::Result<()> {
    faults.begin(started);
    faults.note(
        started,
        "two clusters sell the event at once; cards take 300-600 ms",
    );
    while !workload.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    faults.heal(started);
    let sold = sold_by_each_log(lab, event).await;
    faults.note(
        started,
        format!(
            "purchases committed by each log: {}",
            sold.iter()
                .map(|(log, n)| format!("{log} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    // The fault is real only when both clusters sold.
    faults.injected = sold.len() == 2 && sold.iter().all(|(_, n)| *n > 0);
    if faults.injected {
        faults.evidence.push(format!(
            "both clusters committed purchases: {}",
            sold.iter()
                .map(|(log, n)| format!("{log} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}
