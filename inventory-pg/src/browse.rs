//! Events and seat maps: CreateEvent (admin), ListEvents with keyset paging,
//! SearchEvents (ranked full text), GetEvent with availability per section and tier.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use proto::error::FieldError;
use proto::v1::{Availability, Event, GetEventResponse, SearchResult, Seat, SeatStatus};
use server_kit::convert;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use crate::error::{Error, Result};
use crate::model::NewEvent;

const EVENT_COLUMNS: &str = "e.event_id, e.name, v.name, e.starts_at, e.description, e.currency,
                             e.capacity, e.created_at";

pub async fn create_event(pool: &Pool, event: NewEvent) -> Result<Event> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let event_id = event
        .event_id
        .clone()
        .unwrap_or_else(|| format!("evt-{}", uuid::Uuid::new_v4().simple()));
    let venue_id: i64 = tx
        .query_one(
            "INSERT INTO venues (name) VALUES ($1)
             ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING venue_id",
            &[&event.venue_name],
        )
        .await?
        .get(0);
    let capacity = i32::try_from(event.capacity()).expect("capacity is bounded");
    let inserted = tx
        .execute(
            "INSERT INTO events (event_id, name, venue_id, starts_at, description, currency, capacity)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &event_id,
                &event.name,
                &venue_id,
                &event.starts_at,
                &event.description,
                &event.currency,
                &capacity,
            ],
        )
        .await;
    match inserted {
        Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            return Err(Error::EventExists(event_id));
        }
        other => other?,
    };
    let names: Vec<&str> = event.sections.iter().map(|s| s.name.as_str()).collect();
    let rows: Vec<i32> = event.sections.iter().map(|s| s.rows as i32).collect();
    let per_row: Vec<i32> = event
        .sections
        .iter()
        .map(|s| s.seats_per_row as i32)
        .collect();
    let tiers: Vec<&str> = event
        .sections
        .iter()
        .map(|s| s.price_tier.as_str())
        .collect();
    let prices: Vec<i64> = event.sections.iter().map(|s| s.price_cents).collect();
    // Every seat of every section in one statement.
    tx.execute(
        "INSERT INTO seats (event_id, seat_id, section, row_no, seat_no, price_tier, price_cents)
         SELECT $1, s.name || '-' || r || '-' || n, s.name, r, n, s.tier, s.price
           FROM unnest($2::text[], $3::int[], $4::int[], $5::text[], $6::bigint[])
                AS s(name, rows, per_row, tier, price)
          CROSS JOIN LATERAL generate_series(1, s.rows) AS r
          CROSS JOIN LATERAL generate_series(1, s.per_row) AS n",
        &[&event_id, &names, &rows, &per_row, &tiers, &prices],
    )
    .await?;
    let row = tx
        .query_one(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events e JOIN venues v USING (venue_id)
                  WHERE e.event_id = $1"
            ),
            &[&event_id],
        )
        .await?;
    tx.commit().await?;
    tracing::info!(event_id, capacity, "event created");
    Ok(event_from_row(&row))
}

/// One page of events by (starts_at, event_id), after `page_token`.
pub async fn list_events(
    pool: &Pool,
    page_size: i64,
    page_token: &str,
) -> Result<(Vec<Event>, String)> {
    let after = parse_list_token(page_token)?;
    let client = pool.get().await?;
    let (after_time, after_id) = match after {
        Some((time, id)) => (Some(time), id),
        None => (None, String::new()),
    };
    let statement = client
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events e JOIN venues v USING (venue_id)
              WHERE $1::timestamptz IS NULL OR (e.starts_at, e.event_id) > ($1, $2)
              ORDER BY e.starts_at, e.event_id LIMIT $3"
        ))
        .await?;
    let rows = client
        .query(&statement, &[&after_time, &after_id, &(page_size + 1)])
        .await?;
    let mut events: Vec<Event> = rows.iter().map(event_from_row).collect();
    let next = if events.len() as i64 > page_size {
        events.truncate(page_size as usize);
        let last = rows[page_size as usize - 1].get::<_, DateTime<Utc>>(3);
        format!(
            "{}.{}",
            last.timestamp_micros(),
            events.last().expect("a full page").event_id
        )
    } else {
        String::new()
    };
    Ok((events, next))
}

/// A ranked page of events matching `query` (web-search syntax), from `page_token`.
pub async fn search_events(
    pool: &Pool,
    query: &str,
    page_size: i64,
    page_token: &str,
) -> Result<(Vec<SearchResult>, String)> {
    let offset: i64 =
        match page_token {
            "" => 0,
            token => token.parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
                FieldError::new("page_token", "is not a token this service issued")
            })?,
        };
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS}, ts_rank(e.search, q) AS rank
               FROM events e JOIN venues v USING (venue_id),
                    websearch_to_tsquery('english', $1) q
              WHERE e.search @@ q
              ORDER BY rank DESC, e.event_id
              LIMIT $2 OFFSET $3"
        ))
        .await?;
    let rows = client
        .query(&statement, &[&query, &(page_size + 1), &offset])
        .await?;
    let mut results: Vec<SearchResult> = rows
        .iter()
        .map(|row| SearchResult {
            event: Some(event_from_row(row)),
            rank: row.get(8),
        })
        .collect();
    let next = if results.len() as i64 > page_size {
        results.truncate(page_size as usize);
        (offset + page_size).to_string()
    } else {
        String::new()
    };
    Ok((results, next))
}

/// The event, its availability and (with `include_seats`) every seat, read in one
/// read-only snapshot; `as_of` is the transaction's start by the database's clock, so
/// every write committed before it is in the map.
pub async fn get_event(
    pool: &Pool,
    event_id: &str,
    include_seats: bool,
) -> Result<GetEventResponse> {
    let mut client = pool.get().await?;
    let client = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let now = client.prepare_cached("SELECT now()").await?;
    let as_of: DateTime<Utc> = client.query_one(&now, &[]).await?.get(0);
    let statement = client
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events e JOIN venues v USING (venue_id)
              WHERE e.event_id = $1"
        ))
        .await?;
    let event = client
        .query_opt(&statement, &[&event_id])
        .await?
        .map(|row| event_from_row(&row))
        .ok_or_else(|| Error::EventNotFound(event_id.to_owned()))?;

    let statement = client
        .prepare_cached(
            "SELECT section, price_tier, price_cents,
                    count(*) FILTER (WHERE status = 'AVAILABLE'),
                    count(*) FILTER (WHERE status = 'HELD'),
                    count(*) FILTER (WHERE status = 'SOLD')
               FROM seats WHERE event_id = $1
              GROUP BY section, price_tier, price_cents
              ORDER BY section, price_tier",
        )
        .await?;
    let availability: Vec<Availability> = client
        .query(&statement, &[&event_id])
        .await?
        .iter()
        .map(|row| Availability {
            section: row.get(0),
            price_tier: row.get(1),
            price_cents: row.get(2),
            available: count(row, 3),
            held: count(row, 4),
            sold: count(row, 5),
        })
        .collect();
    let total = Availability {
        section: String::new(),
        price_tier: String::new(),
        price_cents: 0,
        available: availability.iter().map(|a| a.available).sum(),
        held: availability.iter().map(|a| a.held).sum(),
        sold: availability.iter().map(|a| a.sold).sum(),
    };

    let seats = if include_seats {
        let statement = client
            .prepare_cached(
                "SELECT seat_id, section, row_no, seat_no, price_tier, price_cents, status,
                        holder, hold_expires_at, order_id, version, fencing_token
                   FROM seats WHERE event_id = $1
                  ORDER BY section, row_no, seat_no",
            )
            .await?;
        client
            .query(&statement, &[&event_id])
            .await?
            .iter()
            .map(seat_from_row)
            .collect()
    } else {
        Vec::new()
    };
    client.commit().await?;
    Ok(GetEventResponse {
        event: Some(event),
        seats,
        availability,
        total: Some(total),
        as_of: Some(convert::timestamp(as_of)),
        cached: false,
    })
}

fn parse_list_token(token: &str) -> Result<Option<(DateTime<Utc>, String)>> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || FieldError::new("page_token", "is not a token this service issued");
    let (micros, event_id) = token.split_once('.').ok_or_else(invalid)?;
    let micros: i64 = micros.parse().map_err(|_| invalid())?;
    let time = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(invalid)?;
    Ok(Some((time, event_id.to_owned())))
}

fn event_from_row(row: &Row) -> Event {
    Event {
        event_id: row.get(0),
        name: row.get(1),
        venue_name: row.get(2),
        starts_at: Some(convert::timestamp(row.get(3))),
        description: row.get(4),
        currency: row.get(5),
        capacity: u32::try_from(row.get::<_, i32>(6)).unwrap_or(0),
        created_at: Some(convert::timestamp(row.get(7))),
    }
}

fn seat_from_row(row: &Row) -> Seat {
    let status = match row.get::<_, &str>(6) {
        "AVAILABLE" => SeatStatus::Available,
        "HELD" => SeatStatus::Held,
        "SOLD" => SeatStatus::Sold,
        _ => SeatStatus::Unspecified,
    };
    Seat {
        seat_id: row.get(0),
        section: row.get(1),
        row: u32::try_from(row.get::<_, i32>(2)).unwrap_or(0),
        number: u32::try_from(row.get::<_, i32>(3)).unwrap_or(0),
        price_tier: row.get(4),
        price_cents: row.get(5),
        status: status.into(),
        holder: row.get::<_, Option<String>>(7).unwrap_or_default(),
        hold_expires_at: row
            .get::<_, Option<DateTime<Utc>>>(8)
            .map(convert::timestamp),
        order_id: row.get::<_, Option<String>>(9).unwrap_or_default(),
        version: row.get(10),
        fencing_token: u64::try_from(row.get::<_, i64>(11)).unwrap_or(0),
    }
}

fn count(row: &Row, index: usize) -> u32 {
    u32::try_from(row.get::<_, i64>(index)).unwrap_or(u32::MAX)
}

/// The event's seats by definitive state, for the waiting room's admission and
/// sold-out decisions.
pub async fn seat_counts(pool: &Pool, event_id: &str) -> Result<crate::seats::SeatCounts> {
    let client = pool.get().await?;
    crate::seats::counts(&client, event_id).await
}
