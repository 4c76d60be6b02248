//! The proxy between the coordinator and each participant: a link black-holed, slowed or
//! reset; and the random nemesis, which mixes those with kills and pauses.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::{Faults, in_flight, wait_for};
use crate::chaos::lab::{Lab, Link, Target};
use crate::chaos::proxy::Mode;
use crate::chaos::workload::Op;

/// The link to one participant (picked by the seed) holds every byte for 2 s, then heals.
/// Evidence: the proxy held bytes of a connection.
pub(super) async fn blackhole_participant(
    lab: &mut Lab,
    seed: u64,
    event: &str,
    started: Instant,
    faults: &mut Faults,
) -> anyhow::Result<()> {
    let link = [Link::Inventory, Link::Orders, Link::Payments][(seed % 3) as usize];
    wait_for(Duration::from_secs(10), || in_flight(lab, event)).await;
    faults.begin(started);
    let before = lab.proxy(link)?.counts();
    lab.proxy(link)?.set(Mode::Blackhole);
    faults.note(started, format!("black-hole the link to {link:?}"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = lab.proxy(link)?.counts().held - before.held;
    lab.proxy(link)?.set(Mode::Pass);
    faults.note(started, format!("the link to {link:?} heals"));
    faults.heal(started);
    if held > 0 {
        faults.injected = true;
        faults.prove(
            started,
            format!("the black hole held bytes of {held} connection direction(s) to {link:?}"),
        );
    } else {
        faults.note(
            started,
            format!("no traffic to {link:?} during the black hole"),
        );
    }
    Ok(())
}

/// Every 0.3-1 s, a random fault (a process killed or paused, a link cut, slowed or
/// reset) undone 0.5-1.5 s later, until the workload ends (at most six faults).
pub(super) async fn random(
    lab: &mut Lab,
    seed: u64,
    started: Instant,
    faults: &mut Faults,
    workload: &JoinHandle<Vec<Op>>,
) -> anyhow::Result<()> {
    let mut rng = fastrand::Rng::with_seed(seed);
    for fault in 0..6 {
        let pause = if fault == 0 { 50..=200 } else { 300..=1_000 };
        tokio::time::sleep(Duration::from_millis(rng.u64(pause))).await;
        if workload.is_finished() {
            break;
        }
        let target = Target::ALL[rng.usize(..Target::ALL.len())];
        let link = [Link::Inventory, Link::Orders, Link::Payments][rng.usize(..3)];
        let down = Duration::from_millis(rng.u64(500..=1_500));
        faults.begin(started);
        let before = lab.proxy(link)?.counts();
        match rng.u8(0..10) {
            0..=3 => {
                match lab.kill(target).await? {
                    Some(how) => faults.prove(started, format!("SIGKILL {how}")),
                    None => faults.note(started, format!("{} was not running", target.name())),
                }
                tokio::time::sleep(down).await;
                lab.start_again(target).await?;
                faults.note(started, format!("{} started again", target.name()));
            }
            4..=6 => {
                match lab.pause(target) {
                    Ok(()) => faults.prove(started, format!("SIGSTOP {}: stopped", target.name())),
                    Err(error) => faults.note(
                        started,
                        format!("SIGSTOP {} failed: {error:#}", target.name()),
                    ),
                }
                tokio::time::sleep(down).await;
                lab.resume(target)?;
                faults.note(started, format!("SIGCONT {}", target.name()));
            }
            // The link to one participant: black-holed, slowed, or reset.
            mode => {
                let (set, what) = match mode {
                    7 => (Mode::Blackhole, "black-hole"),
                    8 => (Mode::Delay(Duration::from_millis(300)), "delay by 300 ms"),
                    _ => (Mode::Reset, "reset every connection of"),
                };
                lab.proxy(link)?.set(set);
                faults.note(started, format!("{what} the link to {link:?}"));
                tokio::time::sleep(down).await;
                let after = lab.proxy(link)?.counts();
                lab.proxy(link)?.set(Mode::Pass);
                faults.note(started, format!("the link to {link:?} heals"));
                let touched = (after.held - before.held)
                    + (after.delayed - before.delayed)
                    + (after.reset - before.reset);
                if touched > 0 {
                    faults.prove(
                        started,
                        format!("{what} the link to {link:?}: {touched} connection(s) or chunk(s) affected"),
                    );
                }
            }
        }
        faults.heal(started);
    }
    faults.injected = !faults.evidence.is_empty();
    Ok(())
}
