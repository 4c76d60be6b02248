//! The admission loop. Each round, for every room: read the room, ask inventory for the
//! event's definitive seat counts, run one atomic admission round in Redis (lapsed
//! admissions expire, fans are admitted in join order within max_active and the seats
//! that may still be sold, and never more than the seats free to buy right now), wake
//! the admitted fans' streams, and declare the room sold out when — and only when —
//! every seat is sold and no purchase was in flight at any moment between reading the
//! room and declaring.
//!
//! A round runs every tick, and at once when something happens in this process (a fan
//! joins, a purchase releases its slot), so a seat given back by a declined card goes to
//! the next fan within a round trip.
//!
//! A purchasing fan's slot comes back when the coordinator releases it, and never by the
//! clock: when a purchase lease passes without a release, the round asks the
//! coordinator's log whether that purchase ended (its release may have been lost) and
//! releases the slot only if it did; a purchase still in flight keeps it, and is looked
//! at again a lease later.

use std::sync::Arc;
use std::time::Duration;

use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use proto::v1::inventory_service_client::InventoryServiceClient;
use proto::v1::{GetPurchaseStateRequest, GetSeatCountsRequest, TransactionState};
use server_kit::outgoing::MeshChannel;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::model::RoomPhase;
use crate::shuffle;
use crate::store::{RoomRecord, SaleOpening, Seats, Store};
use crate::watchers::Watchers;

/// Most fans one round admits in one room (bounds the Lua script's run time).
const BATCH: u64 = 1_000;
/// Shortest time between two rounds, however often the loop is woken.
const MIN_INTERVAL: Duration = Duration::from_millis(2);

#[derive(Clone)]
pub struct Admitter {
    pub store: Store,
    pub inventory: InventoryServiceClient<MeshChannel>,
    /// Asked whether the purchase of an overdue claim has ended.
    pub coordinator: CoordinatorServiceClient<MeshChannel>,
    pub watchers: Arc<Watchers>,
    pub wake: Arc<Notify>,
    pub tick: Duration,
    /// Whether inventory failed to answer last time (to log an outage once).
    pub inventory_down: Arc<std::sync::atomic::AtomicBool>,
}

impl Admitter {
    /// Runs rounds until the task is aborted.
    pub async fn run(self) {
        let mut failing = false;
        loop {
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.tick) => {}
            }
            match self.round_all().await {
                Ok(()) if failing => {
                    info!("admission rounds work again");
                    failing = false;
                }
                Ok(()) => {}
                // Logged once per outage, not once per tick.
                Err(error) if !failing => {
                    warn!(%error, "admission round failed; retrying every tick");
                    failing = true;
                }
                Err(_) => {}
            }
            tokio::time::sleep(MIN_INTERVAL).await;
        }
    }

    async fn round_all(&self) -> Result<()> {
        for event_id in self.store.rooms().await? {
            self.round(&event_id).await?;
        }
        Ok(())
    }

    /// One round for one room.
    pub async fn round(&self, event_id: &str) -> Result<()> {
        let Some(before) = self.store.room(event_id).await? else {
            return Ok(());
        };
        if before.phase == RoomPhase::PreQueue {
            return self.open_sale(event_id, &before).await;
        }
        if before.phase == RoomPhase::SoldOut {
            if let Some(at_ms) = before.sold_out_at_ms {
                self.watchers.sold_out(event_id, at_ms, before.capacity);
            }
            return Ok(());
        }
        // Read after the room: a purchase that ended before `before` was read has
        // finished its writes, so these counts include them. Not needed while every slot
        // is taken by purchases in flight: nobody can be admitted, nor can the room be
        // sold out.
        let full = before.active >= u64::from(before.max_active) && before.purchasing > 0;
        let seats = if (before.waiting > 0 || before.active > 0) && !full {
            self.seat_counts(event_id).await
        } else {
            None
        };
        let round = self.store.admit(event_id, seats, BATCH).await?;
        room_metrics(event_id, &round);
        for user_id in &round.overdue {
            self.settle_overdue(event_id, user_id).await;
        }
        if !round.admitted.is_empty() {
            self.watchers
                .admitted(event_id, &round.admitted, round.admitted_through);
        }
        self.watchers
            .sample(event_id, before.admitted + round.admitted.len() as u64);
        if let Some(seats) = seats
            && seats.sold >= seats.capacity
            && before.purchasing == 0
            && round.purchasing == 0
            && self.store.declare_sold_out(event_id, before.claims).await?
        {
            let room = self.store.room(event_id).await?.unwrap_or_default();
            info!(
                event_id,
                capacity = seats.capacity,
                told = room.sold_out,
                "sold out: every seat is sold and no purchase is in flight"
            );
            self.watchers.sold_out(
                event_id,
                room.sold_out_at_ms.unwrap_or_default(),
                seats.capacity,
            );
        }
        Ok(())
    }

    /// Opens the sale once opens_at has passed: the pre-queued fans, in the fair order of
    /// the room's seed (or one drawn now), take the first places (see `shuffle`).
    async fn open_sale(&self, event_id: &str, room: &RoomRecord) -> Result<()> {
        let due = room
            .opens_at_ms
            .is_none_or(|at| chrono::Utc::now().timestamp_millis() >= at);
        if !due {
            return Ok(());
        }
        // Drawn now, from the operating system, so that nobody knew the order before.
        let seed = match room.requested_seed {
            0 => getrandom::u64()
                .map_err(|error| Error::Unexpected(format!("no random seed: {error}")))?
                .max(1),
            seed => seed,
        };
        let order = shuffle::fair_order(self.store.pre_queue(event_id).await?, seed);
        match self.store.open_sale(event_id, seed, &order).await? {
            SaleOpening::Opened(placed) => {
                info!(
                    event_id,
                    placed, seed, "the sale opened: the pre-queue is placed in the seed's order"
                );
                self.watchers.opened(event_id);
                self.wake.notify_one();
            }
            SaleOpening::NotPreQueue => self.watchers.opened(event_id),
            // Redis's clock is behind ours, or a fan slipped in: next round.
            SaleOpening::Early | SaleOpening::Stale => {}
        }
        Ok(())
    }

    /// A purchase claim past its lease: releases the slot if the coordinator's log says
    /// the purchase ended (or never began), keeps it otherwise — also when the log
    /// cannot be asked.
    async fn settle_overdue(&self, event_id: &str, user_id: &str) {
        let Ok(Some((admission_id, key))) = self.store.purchase_of(event_id, user_id).await else {
            return;
        };
        let state = match self
            .coordinator
            .clone()
            .get_purchase_state(GetPurchaseStateRequest {
                idempotency_key: key.clone(),
            })
            .await
        {
            Ok(answer) => answer.into_inner(),
            Err(status) => {
                warn!(event_id, user_id, error = %status.message(),
                      "purchase lease passed; the coordinator did not say whether it ended, the slot stays");
                return;
            }
        };
        let ended = match state.state() {
            _ if !state.logged => Some(false),
            TransactionState::Committed => Some(true),
            TransactionState::Aborted => Some(false),
            _ => None,
        };
        let Some(committed) = ended else {
            info!(event_id, user_id, txid = %state.txid,
                  "purchase lease passed, the purchase is still in flight: the slot stays");
            return;
        };
        match self
            .store
            .release(event_id, user_id, &admission_id, &key, committed)
            .await
        {
            Ok(true) => {
                info!(event_id, user_id, txid = %state.txid,
                      "purchase lease passed and the purchase had ended: slot released");
                self.wake.notify_one();
            }
            Ok(false) => {}
            Err(error) => {
                warn!(event_id, user_id, %error, "could not release an ended purchase's slot")
            }
        }
    }

    /// Inventory's definitive counts; None (no admission this round) when it does not
    /// answer.
    async fn seat_counts(&self, event_id: &str) -> Option<Seats> {
        match self
            .inventory
            .clone()
            .get_seat_counts(GetSeatCountsRequest {
                event_id: event_id.to_owned(),
            })
            .await
        {
            Ok(counts) => {
                if self
                    .inventory_down
                    .swap(false, std::sync::atomic::Ordering::Relaxed)
                {
                    info!("inventory answers again; admitting");
                }
                let counts = counts.into_inner();
                Some(Seats {
                    capacity: counts.capacity,
                    sold: counts.sold,
                    available: counts.available,
                })
            }
            Err(status) => {
                if !self
                    .inventory_down
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    warn!(event_id, error = %Error::Inventory(status),
                          "no seat counts from inventory; nobody is admitted until it answers");
                }
                None
            }
        }
    }
}

/// The room's depth and pace after a round: fans waiting, admitted and buying, and the
/// admissions this round made (their rate is the admission rate).
fn room_metrics(event_id: &str, round: &crate::store::Round) {
    let event = event_id.to_owned();
    metrics::gauge!("ticketdrop_waiting_room_waiting", "event" => event.clone())
        .set(round.waiting as f64);
    metrics::gauge!("ticketdrop_waiting_room_active", "event" => event.clone())
        .set(round.active as f64);
    metrics::gauge!("ticketdrop_waiting_room_purchasing", "event" => event.clone())
        .set(round.purchasing as f64);
    metrics::counter!("ticketdrop_waiting_room_admitted_total", "event" => event)
        .increment(round.admitted.len() as u64);
}
