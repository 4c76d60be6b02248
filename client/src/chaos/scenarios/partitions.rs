//! Real network partitions, on the lab's hosts of their own: iptables DROP rules inside
//! a host's namespace cut one host off, two hosts from each other, one direction of a
//! link, or one coordinator from the log, for a while; then the rules go and the links
//! heal. Evidence: what each rule dropped (its packet counter), and what the protocol
//! shows happened meanwhile (purchases in flight at the cut, log writes made during it,
//! payments applied whose answers were lost, a takeover by another coordinator).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::Context;
use local_mesh::netns::{Chain, Host, Rule};
use tokio::task::JoinHandle;

use super::ownership::{p50_p99, takeovers, until_driving};
use super::{Faults, in_flight, wait_for};
use crate::chaos::hosts::Dropped;
use crate::chaos::lab::{Lab, OWNERSHIP_TTL};
use crate::chaos::workload::Op;

/// How long a partition lasts (the log partition: at least this, and until a takeover).
const CUT: Duration = Duration::from_secs(3);

fn host_of(process: &local_mesh::ServiceProcess) -> anyhow::Result<Host> {
    process
        .host()
        .cloned()
        .with_context(|| format!("{} runs on a host of its own", process.name()))
}

/// Waits (up to 10 s) for a purchase of `event` in flight, and notes how many were.
async fn until_in_flight(lab: &Lab, event: &str, started: Instant, faults: &mut Faults) -> bool {
    let ready = wait_for(Duration::from_secs(10), || in_flight(lab, event)).await;
    if !ready {
        faults.note(started, "no purchase of the event in flight within 10 s");
    }
    ready
}

/// Removes every rule; notes what each dropped. The readings are the evidence.
fn heal(lab: &mut Lab, started: Instant, faults: &mut Faults) -> anyhow::Result<Vec<Dropped>> {
    let dropped = lab.hosts()?.heal()?;
    faults.note(started, "the rules are deleted: the links heal");
    faults.heal(started);
    for reading in &dropped {
        faults.note(started, reading.describe());
    }
    Ok(dropped)
}

/// Records as evidence every rule that dropped packets.
fn prove_dropped(faults: &mut Faults, dropped: &[Dropped]) {
    for reading in dropped.iter().filter(|d| d.counters.packets > 0) {
        faults.evidence.push(reading.describe());
    }
}

/// Whether the rule labelled `label` dropped packets.
fn dropped_by(dropped: &[Dropped], label: &str) -> bool {
    dropped
        .iter()
        .any(|d| d.rule.label == label && d.counters.packets > 0)
}

/// The inventory-pg host cut off from every other (all it sends and receives but on its
/// loopback) for [`CUT`], with purchases in flight.
pub(super) async fn inventory_host(
    lab: &mut Lab,
    event: &str,
    started: Instant,
    faults: &mut Faults,
) -> anyhow::Result<()> {
    let host = host_of(&lab.inventory)?;
    let ready = until_in_flight(lab, event, started, faults).await;
    faults.begin(started);
    let received = format!("everything {} receives", host.name);
    let sent = format!("everything {} sends", host.name);
    let hosts = lab.hosts()?;
    hosts.cut(&host, Rule::all_but_loopback(Chain::Input, &received))?;
    hosts.cut(&host, Rule::all_but_loopback(Chain::Output, &sent))?;
    faults.note(
        started,
        format!(
            "partition the {} host ({}) from every other{}",
            host.name,
            host.addr,
            if ready { ", purchases in flight" } else { "" }
        ),
    );
    tokio::time::sleep(CUT).await;
    let dropped = heal(lab, started, faults)?;
    prove_dropped(faults, &dropped);
    faults.injected = ready && (dropped_by(&dropped, &received) || dropped_by(&dropped, &sent));
    if ready {
        faults
            .evidence
            .push("purchases of the event were in flight at the cut".into());
    }
    Ok(())
}

/// The coordinator and payments cannot reach each other (each one's packets to the other
/// dropped) for [`CUT`]; both still reach PostgreSQL, the coordinator its log.
pub(super) async fn coordinator_from_payments(
    lab: &mut Lab,
    event: &str,
    started: Instant,
    faults: &mut Faults,
) -> anyhow::Result<()> {
    let coordinator = host_of(&lab.coordinator)?;
    let payments = host_of(&lab.payments)?;
    let ready = until_in_flight(lab, event, started, faults).await;
    faults.begin(started);
    let cut_at = chrono::Utc::now();
    let forth = format!("{} → {}", coordinator.name, payments.name);
    let back = format!("{} → {}", payments.name, coordinator.name);
    let hosts = lab.hosts()?;
    hosts.cut(&coordinator, Rule::to(payments.addr, &forth))?;
    hosts.cut(&payments, Rule::to(coordinator.addr, &back))?;
    faults.note(
        started,
        format!(
            "partition {} ({}) and {} ({}) from each other, both directions",
            coordinator.name, coordinator.addr, payments.name, payments.addr
        ),
    );
    tokio::time::sleep(CUT).await;
    let healed_at = chrono::Utc::now();
    let dropped = heal(lab, started, faults)?;
    let (logged, to_payments) = steps_logged(lab, event, cut_at, healed_at).await;
    faults.note(
        started,
        format!(
            "the coordinator wrote {logged} steps of the event to its log during the cut, \
             {to_payments} of them calls to payments that failed or stayed unknown"
        ),
    );
    prove_dropped(faults, &dropped);
    faults.injected = ready && dropped_by(&dropped, &forth) && logged > 0;
    if faults.injected {
        faults.evidence.push(format!(
            "the coordinator still reached its log during the cut: {logged} steps written, \
             {to_payments} of them failed or unknown calls to payments"
        ));
    }
    Ok(())
}

/// One way only: the payments host's packets to the coordinator are dropped for [`CUT`],
/// so the coordinator's calls arrive and are applied, and their answers are lost.
pub(super) async fn payments_answers_lost(
    lab: &mut Lab,
    event: &str,
    started: Instant,
    faults: &mut Faults,
) -> anyhow::Result<()> {
    let coordinator = host_of(&lab.coordinator)?;
    let payments = host_of(&lab.payments)?;
    let ready = until_in_flight(lab, event, started, faults).await;
    faults.begin(started);
    let cut_at = chrono::Utc::now();
    let answers = format!("{} → {} (its answers)", payments.name, coordinator.name);
    lab.hosts()?
        .cut(&payments, Rule::to(coordinator.addr, &answers))?;
    faults.note(
        started,
        format!(
            "drop what {} ({}) sends to {} ({}); the other direction passes",
            payments.name, payments.addr, coordinator.name, coordinator.addr
        ),
    );
    tokio::time::sleep(CUT).await;
    let healed_at = chrono::Utc::now();
    let dropped = heal(lab, started, faults)?;
    let applied = payments_written(lab, cut_at, healed_at).await;
    faults.note(
        started,
        format!("payments wrote {applied} payment rows during the cut"),
    );
    prove_dropped(faults, &dropped);
    faults.injected = ready && dropped_by(&dropped, &answers) && applied > 0;
    if faults.injected {
        faults.evidence.push(format!(
            "requests still arrived: payments applied {applied} changes to payments during \
             the cut, whose answers were dropped"
        ));
    }
    Ok(())
}

/// Two coordinators share the log; the one driving purchases loses PostgreSQL (its
/// packets to the log's forwarder dropped) for at least [`CUT`] and until the other has
/// taken its purchases over. It still reaches the participants, Redis and the fans.
pub(super) async fn coordinator_from_log(
    lab: &mut Lab,
    event: &str,
    started: Instant,
    faults: &mut Faults,
    workload: &JoinHandle<Vec<Op>>,
) -> anyhow::Result<()> {
    let host = host_of(&lab.coordinator)?;
    let addr = lab.coordinator.addr().to_string();
    let driving = until_driving(lab, event, &addr).await;
    faults.begin(started);
    let cut_at = chrono::Utc::now();
    let since = Instant::now();
    let hosts = lab.hosts()?;
    let log = hosts.postgres();
    let gateway = match log.ip() {
        std::net::IpAddr::V4(v4) => v4,
        std::net::IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    let label = format!("{} → the log (PostgreSQL, via {log})", host.name);
    hosts.cut(&host, Rule::to_port(gateway, log.port(), &label))?;
    faults.note(
        started,
        format!(
            "partition the coordinator on {addr} from the log{}",
            if driving { ", driving purchases" } else { "" }
        ),
    );
    let taken = wait_for(OWNERSHIP_TTL * 4, || async {
        takeovers(lab, event, &addr, cut_at).await.taken_over > 0
    })
    .await;
    if let Some(rest) = CUT.checked_sub(since.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let dropped = heal(lab, started, faults)?;
    while !workload.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Once it reaches the log again, its writes for purchases it no longer owns are refused.
    wait_for(Duration::from_secs(10), || async {
        takeovers(lab, event, &addr, cut_at).await.refused > 0
    })
    .await;
    let found = takeovers(lab, event, &addr, cut_at).await;
    faults.note(
        started,
        format!(
            "{} of its purchases taken over by the other coordinator ({} after the cut, \
             p50 / p99); {} of its writes refused once it reached the log again",
            found.taken_over,
            p50_p99(&found.after_ms),
            found.refused
        ),
    );
    faults.takeover_ms = found.after_ms;
    prove_dropped(faults, &dropped);
    faults.injected = driving && taken && dropped_by(&dropped, &label);
    if faults.injected {
        faults.evidence.push(format!(
            "the coordinator on {addr}, cut from the log while driving purchases, had {} \
             taken over by the other; {} of its late writes refused",
            found.taken_over, found.refused
        ));
    }
    Ok(())
}

/// Steps of `event`'s purchases the lab's log received between `from` and `to`, and how
/// many of them were calls to payments that failed or stayed unknown.
async fn steps_logged(
    lab: &Lab,
    event: &str,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> (i64, i64) {
    let Some(log) = super::lab_log(lab).await else {
        return (0, 0);
    };
    log.query_one(
        "SELECT count(*),
                count(*) FILTER (WHERE s.participant ILIKE '%payment%'
                                   AND s.outcome IN ('FAILED', 'UNKNOWN'))
           FROM steps s JOIN transactions t USING (txid)
          WHERE t.event_id = $1 AND s.started_at BETWEEN $2 AND $3",
        &[&event, &from, &to],
    )
    .await
    .map_or((0, 0), |row| (row.get(0), row.get(1)))
}

/// Payment rows payments created or changed between `from` and `to`.
async fn payments_written(
    lab: &Lab,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> i64 {
    let Ok(sql) = crate::stores::postgres("payments", &lab.pg.url("payments")).await else {
        return 0;
    };
    sql.query_one(
        "SELECT count(*) FROM payments WHERE greatest(created_at, updated_at) BETWEEN $1 AND $2",
        &[&from, &to],
    )
    .await
    .map_or(0, |row| row.get(0))
}
