//! The seat maps GetEvent serves, cached so that fifty thousand fans looking at one
//! event's map do not each query PostgreSQL.
//!
//! **Invalidated, with a bound.** Every call of this process that may write seats (a
//! hold, a sale, an undo, a sweep) bumps one generation when it ends — answered, failed,
//! or cancelled by its caller — and a map computed at an older generation is never
//! served again. So a map asked for after a
//! write was answered shows that write: a fan who was told "bought" and then loads the
//! map sees the seat sold. Writes made through another inventory process are not seen
//! here; for them a map is served for at most `max_age` after it was read, which is
//! the staleness bound the service states (`--seat-map-max-age-ms`).
//!
//! **One query per map, however many ask.** Requests that find no fresh map share the
//! one being computed (single flight) rather than each starting their own.
//!
//! `ticketdrop_seat_map_reads_total{source="cache"|"database"}` counts the answers.
//!
//! The generation is global rather than per event: CommitSale and AbortSale name only
//! the transaction, not its event, and a map costs a few milliseconds to read again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::v1::GetEventResponse;
use tokio::sync::OnceCell;
use tonic::Status;

use crate::error::Result;

/// Most maps kept; past it, maps no longer fresh are dropped.
const MAX_MAPS: usize = 1_024;

pub struct SeatMaps {
    max_age: Duration,
    generation: AtomicU64,
    maps: Mutex<HashMap<(String, bool), Arc<Slot>>>,
}

/// One map, read or being read; a failed read is shared with everyone who waited on it,
/// and the slot is dropped so that the next request reads again.
struct Slot {
    generation: u64,
    started: Instant,
    map: OnceCell<Result<Arc<GetEventResponse>, Status>>,
}

/// See [`SeatMaps::writing`].
pub struct Writing<'a>(&'a SeatMaps);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.changed();
    }
}

impl Slot {
    fn fresh(&self, generation: u64, max_age: Duration) -> bool {
        self.generation == generation && self.started.elapsed() <= max_age
    }
}

impl SeatMaps {
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            generation: AtomicU64::new(0),
            maps: Mutex::new(HashMap::new()),
        }
    }

    /// A write to seats returned: no map read before it is served again.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Held by a call that may write seats: when it drops — the call answered, failed,
    /// or was cancelled by its caller after its commit — maps read before are not
    /// served again.
    pub fn writing(&self) -> Writing<'_> {
        Writing(self)
    }

    /// The map of `event_id`: a fresh cached one, the one another request is reading
    /// now, or one `read` reads. With a zero max age every call reads.
    pub async fn get<F, Fut>(
        &self,
        event_id: &str,
        include_seats: bool,
        read: F,
    ) -> Result<GetEventResponse, Status>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<GetEventResponse>>,
    {
        if self.max_age.is_zero() {
            return read().await.map_err(Status::from);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let key = (event_id.to_owned(), include_seats);
        let slot = {
            let mut maps = self.maps.lock().expect("seat maps lock");
            match maps.get(&key) {
                Some(slot) if slot.fresh(generation, self.max_age) => slot.clone(),
                _ => {
                    if maps.len() >= MAX_MAPS {
                        maps.retain(|_, slot| slot.fresh(generation, self.max_age));
                    }
                    let slot = Arc::new(Slot {
                        generation,
                        started: Instant::now(),
                        map: OnceCell::new(),
                    });
                    maps.insert(key.clone(), slot.clone());
                    slot
                }
            }
        };
        let mut read_here = false;
        let read = slot
            .map
            .get_or_init(|| {
                read_here = true;
                async move { read().await.map(Arc::new).map_err(Status::from) }
            })
            .await;
        let map = match read {
            Ok(map) => map,
            Err(status) => {
                let mut maps = self.maps.lock().expect("seat maps lock");
                if maps.get(&key).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                    maps.remove(&key);
                }
                return Err(status.clone());
            }
        };
        metrics::counter!(
            "ticketdrop_seat_map_reads_total",
            "source" => if read_here { "database" } else { "cache" }
        )
        .increment(1);
        let mut map = GetEventResponse::clone(map);
        map.cached = !read_here;
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn map(sold: u32) -> GetEventResponse {
        GetEventResponse {
            total: Some(proto::v1::Availability {
                sold,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn sold(map: &GetEventResponse) -> u32 {
        map.total.as_ref().map_or(0, |t| t.sold)
    }

    #[tokio::test]
    async fn concurrent_readers_share_one_read_and_a_write_forces_the_next() {
        let maps = Arc::new(SeatMaps::new(Duration::from_secs(60)));
        let reads = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (maps, reads) = (maps.clone(), reads.clone());
            tasks.push(tokio::spawn(async move {
                maps.get("e", false, || async {
                    reads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok(map(1))
                })
                .await
            }));
        }
        for task in tasks {
            assert_eq!(sold(&task.await.unwrap().unwrap()), 1);
        }
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "one read for fifty readers"
        );

        let cached = maps.get("e", false, || async { Ok(map(9)) }).await.unwrap();
        assert!(cached.cached);
        assert_eq!(sold(&cached), 1);

        maps.changed();
        let after = maps.get("e", false, || async { Ok(map(2)) }).await.unwrap();
        assert!(!after.cached);
        assert_eq!(sold(&after), 2, "a write makes the next reader read");
        let other = maps.get("e", true, || async { Ok(map(3)) }).await.unwrap();
        assert_eq!(sold(&other), 3, "the map with seats is a map of its own");
    }

    #[tokio::test]
    async fn a_map_older_than_the_max_age_is_read_again_and_zero_means_never_cached() {
        let maps = SeatMaps::new(Duration::from_millis(30));
        maps.get("e", false, || async { Ok(map(1)) }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        let again = maps.get("e", false, || async { Ok(map(2)) }).await.unwrap();
        assert_eq!(sold(&again), 2);

        let uncached = SeatMaps::new(Duration::ZERO);
        uncached
            .get("e", false, || async { Ok(map(1)) })
            .await
            .unwrap();
        let read = uncached
            .get("e", false, || async { Ok(map(2)) })
            .await
            .unwrap();
        assert_eq!((sold(&read), read.cached), (2, false));
    }

    #[tokio::test]
    async fn a_failed_read_is_shared_by_its_waiters_and_not_cached() {
        let maps = Arc::new(SeatMaps::new(Duration::from_secs(60)));
        let reads = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (maps, reads) = (maps.clone(), reads.clone());
            tasks.push(tokio::spawn(async move {
                maps.get("e", false, || async {
                    reads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Err(crate::error::Error::EventNotFound("e".into()))
                })
                .await
            }));
        }
        for task in tasks {
            let status = task.await.unwrap().expect_err("the read failed");
            assert_eq!(status.code(), tonic::Code::NotFound);
        }
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "one failed read for ten waiters"
        );
        let read = maps.get("e", false, || async { Ok(map(4)) }).await.unwrap();
        assert_eq!(sold(&read), 4, "the next request reads again");
    }

    #[tokio::test]
    async fn a_write_guard_invalidates_when_it_drops_even_unanswered() {
        let maps = SeatMaps::new(Duration::from_secs(60));
        maps.get("e", false, || async { Ok(map(1)) }).await.unwrap();
        // A write whose call was cancelled after its commit: the guard still drops.
        let cancelled = async {
            let _written = maps.writing();
            std::future::pending::<()>().await;
        };
        let _ = tokio::time::timeout(Duration::from_millis(5), cancelled).await;
        let after = maps.get("e", false, || async { Ok(map(2)) }).await.unwrap();
        assert_eq!((sold(&after), after.cached), (2, false));
    }
}
