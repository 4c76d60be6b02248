//! Wakes the Watch streams of this process. An admission round wakes exactly the fans it
//! admitted (with their admission, so they need no Redis read), and a sold-out room wakes
//! everyone; nobody else is disturbed, so fifty thousand open streams cost nothing while
//! they wait. Watchers also re-read Redis on a slow timer, which is how they learn what
//! another instance of the service decided.
//!
//! It also keeps each room's recent admission rate, for estimated waits.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::store::Admitted;

/// What wakes a watcher.
#[derive(Debug, Clone)]
pub enum Signal {
    /// This fan was admitted.
    Admitted(Admitted),
    /// The room sold out while the fan waited.
    SoldOut { at_ms: i64, capacity: u64 },
    /// Something changed that this process did not see in full: read Redis again.
    Recheck,
}

/// How far back the admission rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(10);

#[derive(Default)]
struct RoomSignals {
    /// Every fan with a join number up to this one has been admitted or has left.
    through: u64,
    sold_out: Option<(i64, u64)>,
    waiting: BTreeMap<u64, Vec<oneshot::Sender<Signal>>>,
    /// The sale has opened (the pre-queue is placed).
    opened: bool,
    /// Pre-queued fans, woken by the opening.
    pre_queued: Vec<oneshot::Sender<Signal>>,
    /// (when, admitted so far), oldest first.
    samples: VecDeque<(Instant, u64)>,
}

#[derive(Default)]
pub struct Watchers {
    rooms: Mutex<HashMap<String, RoomSignals>>,
}

impl Watchers {
    /// A receiver that fires when the fan with `join_number` is admitted, the room sells
    /// out, or it already happened.
    pub fn wait(&self, event_id: &str, join_number: u64) -> oneshot::Receiver<Signal> {
        let (sender, receiver) = oneshot::channel();
        let mut rooms = self.rooms.lock().expect("watchers lock");
        let room = rooms.entry(event_id.to_owned()).or_default();
        if let Some((at_ms, capacity)) = room.sold_out {
            let _ = sender.send(Signal::SoldOut { at_ms, capacity });
        } else if join_number <= room.through {
            let _ = sender.send(Signal::Recheck);
        } else {
            room.waiting.entry(join_number).or_default().push(sender);
        }
        receiver
    }

    /// A receiver that fires when the room's sale opens (the pre-queue is placed), or at
    /// once if it has.
    pub fn wait_opening(&self, event_id: &str) -> oneshot::Receiver<Signal> {
        let (sender, receiver) = oneshot::channel();
        let mut rooms = self.rooms.lock().expect("watchers lock");
        let room = rooms.entry(event_id.to_owned()).or_default();
        if room.opened {
            let _ = sender.send(Signal::Recheck);
        } else {
            room.pre_queued.push(sender);
        }
        receiver
    }

    /// The room's sale opened: every pre-queued fan reads their new place.
    pub fn opened(&self, event_id: &str) {
        let mut rooms = self.rooms.lock().expect("watchers lock");
        let room = rooms.entry(event_id.to_owned()).or_default();
        room.opened = true;
        for sender in std::mem::take(&mut room.pre_queued) {
            let _ = sender.send(Signal::Recheck);
        }
    }

    /// An admission round admitted `admitted`; every join number up to `through` is done.
    pub fn admitted(&self, event_id: &str, admitted: &[Admitted], through: u64) {
        let mut rooms = self.rooms.lock().expect("watchers lock");
        let room = rooms.entry(event_id.to_owned()).or_default();
        room.through = room.through.max(through);
        for fan in admitted {
            for sender in room.waiting.remove(&fan.join_number).unwrap_or_default() {
                let _ = sender.send(Signal::Admitted(fan.clone()));
            }
        }
        // Anyone else at or below `through` left or was admitted elsewhere: recheck.
        let later = room.waiting.split_off(&(room.through + 1));
        for sender in std::mem::replace(&mut room.waiting, later)
            .into_values()
            .flatten()
        {
            let _ = sender.send(Signal::Recheck);
        }
    }

    pub fn sold_out(&self, event_id: &str, at_ms: i64, capacity: u64) {
        let mut rooms = self.rooms.lock().expect("watchers lock");
        let room = rooms.entry(event_id.to_owned()).or_default();
        room.sold_out = Some((at_ms, capacity));
        for sender in std::mem::take(&mut room.waiting).into_values().flatten() {
            let _ = sender.send(Signal::SoldOut { at_ms, capacity });
        }
    }

    /// Records how many fans the room has admitted so far.
    pub fn sample(&self, event_id: &str, admitted_total: u64) {
        let now = Instant::now();
        let mut rooms = self.rooms.lock().expect("watchers lock");
        let samples = &mut rooms.entry(event_id.to_owned()).or_default().samples;
        if samples.back().is_some_and(|(at, n)| {
            *n == admitted_total && now.duration_since(*at) < RATE_WINDOW / 10
        }) {
            return;
        }
        samples.push_back((now, admitted_total));
        while samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            samples.pop_front();
        }
    }

    /// Admissions per second over the last ten seconds (0 before two samples).
    pub fn rate(&self, event_id: &str) -> f64 {
        let rooms = self.rooms.lock().expect("watchers lock");
        let Some(samples) = rooms.get(event_id).map(|room| &room.samples) else {
            return 0.0;
        };
        match (samples.front(), samples.back()) {
            (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => {
                (n1 - n0) as f64 / t1.duration_since(*t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(join_number: u64) -> Admitted {
        Admitted {
            user_id: format!("fan-{join_number}"),
            join_number,
            admission_number: join_number,
            admitted_at_ms: 0,
            expires_at_ms: 0,
        }
    }

    #[test]
    fn an_admission_wakes_only_the_admitted_fan() {
        let watchers = Watchers::default();
        let mut first = watchers.wait("e", 1);
        let mut second = watchers.wait("e", 2);
        watchers.admitted("e", &[admitted(1)], 1);
        assert!(matches!(first.try_recv(), Ok(Signal::Admitted(a)) if a.join_number == 1));
        assert!(second.try_recv().is_err(), "fan 2 still waits");
        // A watcher registering after its admission was signalled rechecks at once.
        let mut late = watchers.wait("e", 1);
        assert!(matches!(late.try_recv(), Ok(Signal::Recheck)));
        watchers.sold_out("e", 7, 100);
        assert!(matches!(
            second.try_recv(),
            Ok(Signal::SoldOut {
                at_ms: 7,
                capacity: 100
            })
        ));
    }
}
