//! `ticketdrop events create|list|search|show`: events and their seat maps.

use anyhow::Context;
use proto::v1::*;
use serde_json::json;

use crate::endpoints::{self, Endpoints};
use crate::json;

#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// Create an event with its seats (admin).
    Create(CreateArgs),
    /// List events by start time.
    List {
        /// Events per page.
        #[arg(long, default_value_t = 20)]
        page_size: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Full-text search over names and descriptions, ranked.
    Search {
        /// Words to look for.
        query: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show an event, its availability and its seat map.
    Show {
        /// Event id.
        event: String,
        /// Print JSON (with every seat).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Event id (generated when omitted).
    #[arg(long)]
    pub event_id: Option<String>,
    /// Event name.
    #[arg(long)]
    pub name: String,
    /// Start time, RFC 3339 (default: 30 days from now).
    #[arg(long)]
    pub starts_at: Option<String>,
    /// Description, searched by `events search`.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Venue name.
    #[arg(long, default_value = "TicketDrop Arena")]
    pub venue: String,
    /// ISO 4217 currency.
    #[arg(long, default_value = "EUR")]
    pub currency: String,
    /// A section as NAME:ROWSxSEATS:PRICE_CENTS, e.g. A:10x20:5000; repeat for more.
    #[arg(long = "section", required = true)]
    pub sections: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(endpoints: &Endpoints, command: EventsCommand) -> anyhow::Result<()> {
    let mut inventory = endpoints.inventory().await?;
    match command {
        EventsCommand::Create(args) => {
            let json_out = args.json;
            let request = create_request(args)?;
            let event = inventory
                .create_event(request)
                .await
                .map_err(|s| anyhow::anyhow!(endpoints::describe(&s)))?
                .into_inner()
                .event
                .context("no event in the answer")?;
            if json_out {
                json::print(&json::event(&event))
            } else {
                println!("created {} ({} seats)", event.event_id, event.capacity);
                Ok(())
            }
        }
        EventsCommand::List {
            page_size,
            json: json_out,
        } => {
            let page = inventory
                .list_events(ListEventsRequest {
                    page_size,
                    page_token: String::new(),
                })
                .await
                .map_err(|s| anyhow::anyhow!(endpoints::describe(&s)))?
                .into_inner();
            if json_out {
                return json::print(&json!({
                    "events": page.events.iter().map(json::event).collect::<Vec<_>>(),
                    "next_page_token": page.next_page_token,
                }));
            }
            for event in &page.events {
                println!(
                    "{:<24} {:<40} {:>6} seats",
                    event.event_id, event.name, event.capacity
                );
            }
            Ok(())
        }
        EventsCommand::Search {
            query,
            json: json_out,
        } => {
            let found = inventory
                .search_events(SearchEventsRequest {
                    query,
                    page_size: 20,
                    page_token: String::new(),
                })
                .await
                .map_err(|s| anyhow::anyhow!(endpoints::describe(&s)))?
                .into_inner();
            if json_out {
                return json::print(&json!({
                    "results": found.results.iter().map(|r| json!({
                        "rank": r.rank,
                        "event": r.event.as_ref().map(json::event),
                    })).collect::<Vec<_>>(),
                }));
            }
            for result in &found.results {
                if let Some(event) = &result.event {
                    println!(
                        "{:>6.3}  {:<24} {}",
                        result.rank, event.event_id, event.name
                    );
                }
            }
            Ok(())
        }
        EventsCommand::Show {
            event,
            json: json_out,
        } => {
            let shown = inventory
                .get_event(GetEventRequest {
                    event_id: event,
                    include_seats: true,
                    consistent_read: false,
                })
                .await
                .map_err(|s| anyhow::anyhow!(endpoints::describe(&s)))?
                .into_inner();
            if json_out {
                return json::print(&json!({
                    "event": shown.event.as_ref().map(json::event),
                    "availability": shown.availability.iter().map(json::availability).collect::<Vec<_>>(),
                    "total": shown.total.as_ref().map(json::availability),
                    "seats": shown.seats.iter().map(|s| json!({
                        "seat_id": s.seat_id, "status": json::short_enum(s.status().as_str_name(), "SEAT_STATUS_"),
                        "price_cents": s.price_cents, "order_id": s.order_id,
                    })).collect::<Vec<_>>(),
                }));
            }
            print_seat_map(&shown);
            Ok(())
        }
    }
}

fn create_request(args: CreateArgs) -> anyhow::Result<CreateEventRequest> {
    let starts_at = match &args.starts_at {
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .with_context(|| format!("--starts-at {text:?} is not RFC 3339"))?
            .with_timezone(&chrono::Utc),
        None => chrono::Utc::now() + chrono::Duration::days(30),
    };
    let mut tiers = Vec::new();
    let mut sections = Vec::new();
    for spec in &args.sections {
        let (name, rows, per_row, price) = parse_section(spec).with_context(|| {
            format!("--section {spec:?}: expected NAME:ROWSxSEATS:PRICE_CENTS, e.g. A:10x20:5000")
        })?;
        let tier = format!("{name}-{price}");
        tiers.push(PriceTier {
            name: tier.clone(),
            price_cents: price,
        });
        sections.push(SectionLayout {
            name,
            rows,
            seats_per_row: per_row,
            price_tier: tier,
        });
    }
    Ok(CreateEventRequest {
        event_id: args.event_id.unwrap_or_default(),
        name: args.name,
        starts_at: Some(server_kit::convert::timestamp(starts_at)),
        description: args.description,
        currency: args.currency,
        venue: Some(VenueLayout {
            venue_name: args.venue,
            price_tiers: tiers,
            sections,
        }),
    })
}

fn parse_section(spec: &str) -> Option<(String, u32, u32, i64)> {
    let mut parts = spec.split(':');
    let name = parts.next()?.to_owned();
    let (rows, per_row) = parts.next()?.split_once('x')?;
    let price = parts.next()?.parse().ok()?;
    Some((name, rows.parse().ok()?, per_row.parse().ok()?, price))
}

/// The seat map, one line per row: `.` available, `h` held, `X` sold.
fn print_seat_map(shown: &GetEventResponse) {
    if let Some(event) = &shown.event {
        println!(
            "{} — {} ({}), {} seats",
            event.event_id, event.name, event.venue_name, event.capacity
        );
    }
    for a in &shown.availability {
        println!(
            "  section {:<4} {:<12} {:>8.2} {}  available {:>5}  held {:>5}  sold {:>5}",
            a.section,
            a.price_tier,
            a.price_cents as f64 / 100.0,
            shown.event.as_ref().map_or("", |e| e.currency.as_str()),
            a.available,
            a.held,
            a.sold
        );
    }
    let mut current: Option<(String, u32)> = None;
    let mut line = String::new();
    for seat in &shown.seats {
        let key = (seat.section.clone(), seat.row);
        if current.as_ref() != Some(&key) {
            if !line.is_empty() {
                println!("{line}");
            }
            line = format!("  {:>4} {:>3} │ ", seat.section, seat.row);
            current = Some(key);
        }
        line.push(match seat.status() {
            SeatStatus::Available => '.',
            SeatStatus::Held => 'h',
            SeatStatus::Sold => 'X',
            SeatStatus::Unspecified => '?',
        });
    }
    if !line.is_empty() {
        println!("{line}");
    }
    if let Some(total) = &shown.total {
        println!(
            "  . available {}   h held {}   X sold {}",
            total.available, total.held, total.sold
        );
    }
}
