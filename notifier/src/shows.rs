//! The events as fans know them — name, date and venue — for the text of every
//! confirmation, read from inventory once per event (an event's name, date and venue
//! never change) and kept. A confirmation whose event inventory cannot describe now is a
//! failed attempt like any other, retried with the delivery's backoff: a fan never gets
//! a mail that names the event by its id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use proto::v1::GetEventRequest;
use proto::v1::inventory_service_client::InventoryServiceClient;
use server_kit::outgoing::MeshChannel;

/// Most events kept; past it the cache starts again (events are read once each).
const KEPT: usize = 10_000;

/// One event, as its confirmation names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Show {
    pub name: String,
    pub venue: String,
    pub starts_at: Option<DateTime<Utc>>,
}

impl Show {
    /// "Sun 17 Mar 2030, 17:46 UTC".
    pub fn when(&self) -> String {
        self.starts_at.map_or_else(
            || "date to be announced".to_owned(),
            |at| at.format("%a %-d %b %Y, %H:%M UTC").to_string(),
        )
    }

    /// "Midnight Lanterns, Sun 17 Mar 2030, 17:46 UTC".
    pub fn title(&self) -> String {
        format!("{}, {}", self.name, self.when())
    }
}

pub struct Shows {
    inventory: InventoryServiceClient<MeshChannel>,
    known: Mutex<HashMap<String, Arc<Show>>>,
}

impl Shows {
    pub fn new(inventory: InventoryServiceClient<MeshChannel>) -> Self {
        Self {
            inventory,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The event `event_id`, or why inventory could not say.
    pub async fn get(&self, event_id: &str) -> Result<Arc<Show>, String> {
        if let Some(show) = self.lock().get(event_id) {
            return Ok(show.clone());
        }
        let event = self
            .inventory
            .clone()
            .get_event(GetEventRequest {
                event_id: event_id.to_owned(),
                include_seats: false,
                consistent_read: false,
            })
            .await
            .map_err(|status| format!("inventory: event {event_id}: {}", status.message()))?
            .into_inner()
            .event
            .ok_or_else(|| format!("inventory: event {event_id} came without its details"))?;
        let show = Arc::new(Show {
            name: event.name,
            venue: event.venue_name,
            starts_at: event.starts_at.and_then(|at| {
                DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).unwrap_or(0))
            }),
        });
        let mut known = self.lock();
        if known.len() >= KEPT {
            known.clear();
        }
        known.insert(event_id.to_owned(), show.clone());
        Ok(show)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Show>>> {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_show_is_named_by_its_name_date_and_time_in_utc() {
        let show = Show {
            name: "Midnight Lanterns".into(),
            venue: "Harbour Hall".into(),
            starts_at: DateTime::from_timestamp(1_900_000_000, 0),
        };
        assert_eq!(
            show.title(),
            "Midnight Lanterns, Sun 17 Mar 2030, 17:46 UTC"
        );
    }
}
