//! The event a load buys: created with its seats when missing, kept when it exists.

use proto::v1::*;
use tonic::Code;

use crate::endpoints::{self, Endpoints};

/// Creates the event with `seats` seats (rows of up to 100, A-1-1 first) unless it exists.
pub async fn ensure_event(endpoints: &Endpoints, event: &str, seats: u32) -> anyhow::Result<()> {
    let mut inventory = endpoints.inventory().await?;
    match inventory
        .get_event(GetEventRequest {
            event_id: event.to_owned(),
            include_seats: false,
            consistent_read: false,
        })
        .await
    {
        Ok(_) => return Ok(()),
        Err(status) if status.code() == Code::NotFound => {}
        Err(status) => anyhow::bail!(endpoints::describe(&status)),
    }
    // Section A: rows of up to 100 seats (A-1-1 is always a seat); the rest in B.
    let mut sections = vec![SectionLayout {
        name: "A".into(),
        rows: (seats / 100).max(1),
        seats_per_row: seats.min(100),
        price_tier: "std".into(),
    }];
    if seats > 100 && !seats.is_multiple_of(100) {
        sections.push(SectionLayout {
            name: "B".into(),
            rows: 1,
            seats_per_row: seats % 100,
            price_tier: "std".into(),
        });
    }
    inventory
        .create_event(CreateEventRequest {
            event_id: event.to_owned(),
            name: format!("Ticket drop {event}"),
            starts_at: Some(server_kit::convert::timestamp(
                chrono::Utc::now() + chrono::Duration::days(30),
            )),
            description: "a ticket drop run by ticketdrop drop".into(),
            currency: "EUR".into(),
            venue: Some(VenueLayout {
                venue_name: "Drop Arena".into(),
                price_tiers: vec![PriceTier {
                    name: "std".into(),
                    price_cents: 5_000,
                }],
                sections,
            }),
        })
        .await
        .map_err(|s| anyhow::anyhow!("creating {event}: {}", endpoints::describe(&s)))?;
    Ok(())
}
