//! Validated requests: prost messages become these at the edge (`TryFrom`), so the rest
//! of the crate never sees an empty seat id or a quantity of 11. Every failure names
//! the field.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use proto::error::FieldError;
use proto::v1 as pb;
use server_kit::convert;
use server_kit::validate;

/// Most seats one request may hold, prepare or sell.
use proto::MAX_SEATS;
/// Most seats one event may have.
pub const MAX_CAPACITY: u64 = 100_000;
const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 2_000;
const MAX_ROWS: u32 = 200;
const MAX_SEATS_PER_ROW: u32 = 200;
const MIN_HOLD_TTL: Duration = Duration::from_secs(1);
const MAX_HOLD_TTL: Duration = Duration::from_secs(3_600);

/// Which seats a request wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatSelection {
    /// These seats, sorted, no duplicates (sorted so that rows lock in one order).
    Named(Vec<String>),
    /// The best N available seats.
    BestAvailable(u32),
}

impl SeatSelection {
    pub fn parse(seat_ids: &[String], quantity: u32) -> Result<Self, FieldError> {
        match (seat_ids.is_empty(), quantity) {
            (false, 0) => Ok(Self::Named(seat_list("seat_ids", seat_ids)?)),
            (true, 0) => Err(FieldError::new(
                "seat_ids",
                "give seat_ids or a quantity (both are empty)",
            )),
            (true, n) if (1..=MAX_SEATS as u32).contains(&n) => Ok(Self::BestAvailable(n)),
            (true, n) => Err(FieldError::new(
                "quantity",
                format!("must be between 1 and {MAX_SEATS}, got {n}"),
            )),
            (false, _) => Err(FieldError::new(
                "quantity",
                "give seat_ids or quantity, not both",
            )),
        }
    }
}

/// A list of 1 to 10 distinct, well-formed seat ids, sorted.
pub fn seat_list(field: &str, seat_ids: &[String]) -> Result<Vec<String>, FieldError> {
    if seat_ids.is_empty() {
        return Err(FieldError::new(field, "must name at least one seat"));
    }
    if seat_ids.len() > MAX_SEATS {
        return Err(FieldError::new(
            field,
            format!(
                "at most {MAX_SEATS} seats per request, got {}",
                seat_ids.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for (i, seat) in seat_ids.iter().enumerate() {
        seat_id(&format!("{field}[{i}]"), seat)?;
        if !seen.insert(seat.as_str()) {
            return Err(FieldError::new(
                field,
                format!("seat {seat} is listed twice"),
            ));
        }
    }
    let mut sorted = seat_ids.to_vec();
    sorted.sort();
    Ok(sorted)
}

/// A seat id: `section-row-number`, such as `A-12-7`.
pub fn seat_id(field: &str, value: &str) -> Result<(), FieldError> {
    validate::id(field, value)?;
    let parts: Vec<&str> = value.split('-').collect();
    let well_formed = parts.len() == 3
        && section_name_ok(parts[0])
        && parts[1..].iter().all(|n| {
            n.parse::<u32>()
                .is_ok_and(|n| (1..=MAX_ROWS.max(MAX_SEATS_PER_ROW)).contains(&n))
        });
    if well_formed {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{value:?} is not a seat id of the form section-row-number, such as A-12-7"),
        ))
    }
}

fn section_name_ok(name: &str) -> bool {
    (1..=8).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric())
}

/// A validated CreateEvent request.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: Option<String>,
    pub name: String,
    pub starts_at: DateTime<Utc>,
    pub description: String,
    pub currency: String,
    pub venue_name: String,
    pub sections: Vec<NewSection>,
}

/// One section of a new event with its tier's price.
#[derive(Debug, Clone)]
pub struct NewSection {
    pub name: String,
    pub rows: u32,
    pub seats_per_row: u32,
    pub price_tier: String,
    pub price_cents: i64,
}

impl NewEvent {
    pub fn capacity(&self) -> u64 {
        self.sections
            .iter()
            .map(|s| u64::from(s.rows) * u64::from(s.seats_per_row))
            .sum()
    }
}

impl TryFrom<pb::CreateEventRequest> for NewEvent {
    type Error = FieldError;

    fn try_from(request: pb::CreateEventRequest) -> Result<Self, FieldError> {
        let event_id = match request.event_id.as_str() {
            "" => None,
            id => Some(validate::id("event_id", id)?),
        };
        let name = validate::text("name", &request.name, MAX_NAME)?;
        let starts_at = convert::from_timestamp(
            "starts_at",
            request
                .starts_at
                .as_ref()
                .ok_or_else(|| FieldError::new("starts_at", "is required"))?,
        )?;
        if request.description.chars().count() > MAX_DESCRIPTION {
            return Err(FieldError::new(
                "description",
                format!("must be at most {MAX_DESCRIPTION} characters"),
            ));
        }
        let currency = match request.currency.as_str() {
            "" => "EUR".to_owned(),
            code => validate::currency("currency", code)?,
        };
        let venue = request
            .venue
            .ok_or_else(|| FieldError::new("venue", "is required"))?;
        let venue_name = validate::text("venue.venue_name", &venue.venue_name, MAX_NAME)?;

        if venue.price_tiers.is_empty() {
            return Err(FieldError::new(
                "venue.price_tiers",
                "must have at least one tier",
            ));
        }
        let mut tiers = std::collections::HashMap::new();
        for (i, tier) in venue.price_tiers.iter().enumerate() {
            let field = format!("venue.price_tiers[{i}]");
            let name = validate::text(&format!("{field}.name"), &tier.name, 64)?;
            if tier.price_cents <= 0 {
                return Err(FieldError::new(
                    format!("{field}.price_cents"),
                    format!("must be > 0, got {}", tier.price_cents),
                ));
            }
            if tiers.insert(name.clone(), tier.price_cents).is_some() {
                return Err(FieldError::new(
                    field,
                    format!("tier {name} is listed twice"),
                ));
            }
        }

        if venue.sections.is_empty() {
            return Err(FieldError::new(
                "venue.sections",
                "must have at least one section",
            ));
        }
        let mut sections = Vec::with_capacity(venue.sections.len());
        let mut section_names = HashSet::new();
        for (i, section) in venue.sections.iter().enumerate() {
            let field = format!("venue.sections[{i}]");
            if !section_name_ok(&section.name) {
                return Err(FieldError::new(
                    format!("{field}.name"),
                    "must be 1 to 8 letters or digits",
                ));
            }
            if !section_names.insert(section.name.clone()) {
                return Err(FieldError::new(
                    format!("{field}.name"),
                    format!("section {} is listed twice", section.name),
                ));
            }
            if !(1..=MAX_ROWS).contains(&section.rows) {
                return Err(FieldError::new(
                    format!("{field}.rows"),
                    format!("must be between 1 and {MAX_ROWS}"),
                ));
            }
            if !(1..=MAX_SEATS_PER_ROW).contains(&section.seats_per_row) {
                return Err(FieldError::new(
                    format!("{field}.seats_per_row"),
                    format!("must be between 1 and {MAX_SEATS_PER_ROW}"),
                ));
            }
            let price_cents = *tiers.get(&section.price_tier).ok_or_else(|| {
                FieldError::new(
                    format!("{field}.price_tier"),
                    format!(
                        "names no tier of venue.price_tiers: {:?}",
                        section.price_tier
                    ),
                )
            })?;
            sections.push(NewSection {
                name: section.name.clone(),
                rows: section.rows,
                seats_per_row: section.seats_per_row,
                price_tier: section.price_tier.clone(),
                price_cents,
            });
        }
        let event = Self {
            event_id,
            name,
            starts_at,
            description: request.description.trim().to_owned(),
            currency,
            venue_name,
            sections,
        };
        if event.capacity() > MAX_CAPACITY {
            return Err(FieldError::new(
                "venue.sections",
                format!(
                    "at most {MAX_CAPACITY} seats per event, got {}",
                    event.capacity()
                ),
            ));
        }
        Ok(event)
    }
}

/// A validated HoldSeats request.
#[derive(Debug, Clone)]
pub struct Hold {
    pub saga_id: String,
    pub event_id: String,
    pub selection: SeatSelection,
    pub ttl: Duration,
}

impl Hold {
    pub fn parse(
        request: &pb::HoldSeatsRequest,
        default_ttl: Duration,
    ) -> Result<Self, FieldError> {
        let ttl = match &request.hold_ttl {
            None => default_ttl,
            Some(ttl) => convert::from_duration("hold_ttl", ttl)?,
        };
        if !(MIN_HOLD_TTL..=MAX_HOLD_TTL).contains(&ttl) {
            return Err(FieldError::new(
                "hold_ttl",
                format!("must be between 1 s and 1 h, got {ttl:?}"),
            ));
        }
        Ok(Self {
            saga_id: validate::id("saga_id", &request.saga_id)?,
            event_id: validate::id("event_id", &request.event_id)?,
            selection: SeatSelection::parse(&request.seat_ids, request.quantity)?,
            ttl,
        })
    }
}

/// A validated PrepareSale request.
#[derive(Debug, Clone)]
pub struct Prepare {
    pub txid: String,
    pub event_id: String,
    pub order_id: String,
    pub selection: SeatSelection,
    /// The coordinator log that owns the branch.
    pub log_id: Option<String>,
}

impl TryFrom<&pb::PrepareSaleRequest> for Prepare {
    type Error = FieldError;

    fn try_from(request: &pb::PrepareSaleRequest) -> Result<Self, FieldError> {
        Ok(Self {
            txid: validate::id("txid", &request.txid)?,
            event_id: validate::id("event_id", &request.event_id)?,
            order_id: validate::id("order_id", &request.order_id)?,
            selection: SeatSelection::parse(&request.seat_ids, request.quantity)?,
            log_id: validate::optional_id("log_id", &request.log_id)?,
        })
    }
}

/// A validated SellFenced or UnsellFenced request.
#[derive(Debug, Clone)]
pub struct FencedWrite {
    pub txid: String,
    pub event_id: String,
    pub order_id: String,
    pub seat_ids: Vec<String>,
    pub fencing_token: u64,
}

impl FencedWrite {
    pub fn parse(
        txid: &str,
        event_id: &str,
        order_id: &str,
        seat_ids: &[String],
        fencing_token: u64,
    ) -> Result<Self, FieldError> {
        // 0 is an unfenced write: only the coordinator's --unsafe-no-fencing sends it.
        if i64::try_from(fencing_token).is_err() {
            return Err(FieldError::new("fencing_token", "must be at most 2^63-1"));
        }
        Ok(Self {
            txid: validate::id("txid", txid)?,
            event_id: validate::id("event_id", event_id)?,
            order_id: validate::id("order_id", order_id)?,
            seat_ids: seat_list("seat_ids", seat_ids)?,
            fencing_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(seats: &[&str]) -> Vec<String> {
        seats.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn selection_needs_exactly_one_of_seats_or_quantity() {
        assert_eq!(
            SeatSelection::parse(&ids(&["B-1-2", "A-1-1"]), 0),
            Ok(SeatSelection::Named(ids(&["A-1-1", "B-1-2"])))
        );
        assert_eq!(
            SeatSelection::parse(&[], 3),
            Ok(SeatSelection::BestAvailable(3))
        );
        assert_eq!(SeatSelection::parse(&[], 0).unwrap_err().field, "seat_ids");
        assert_eq!(SeatSelection::parse(&[], 11).unwrap_err().field, "quantity");
        assert_eq!(
            SeatSelection::parse(&ids(&["A-1-1"]), 1).unwrap_err().field,
            "quantity"
        );
    }

    #[test]
    fn seat_lists_reject_bad_ids_duplicates_and_too_many() {
        assert_eq!(
            seat_list("seat_ids", &ids(&["A-1-1", ""]))
                .unwrap_err()
                .field,
            "seat_ids[1]"
        );
        assert_eq!(
            seat_list("seat_ids", &ids(&["A-1-1", "A-1-1"]))
                .unwrap_err()
                .field,
            "seat_ids"
        );
        assert_eq!(
            seat_list("seat_ids", &ids(&["A-1"])).unwrap_err().field,
            "seat_ids[0]"
        );
        assert_eq!(
            seat_list("seat_ids", &ids(&["A-0-1"])).unwrap_err().field,
            "seat_ids[0]"
        );
        let eleven: Vec<String> = (1..=11).map(|n| format!("A-1-{n}")).collect();
        assert_eq!(
            seat_list("seat_ids", &eleven).unwrap_err().field,
            "seat_ids"
        );
        let long = format!("A-1-{}", "1".repeat(70));
        assert!(
            seat_list("seat_ids", &[long])
                .unwrap_err()
                .reason
                .contains("at most 64")
        );
    }
}
