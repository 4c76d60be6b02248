use local_mesh::{ServiceProcess, TestDatabase, service_binary};
use proto::v1::inventory_service_client::InventoryServiceClient;
use proto::v1::*;
use server_kit::outgoing::MeshChannel;

/// A running inventory service on a database of its own.
pub struct Inventory {
    pub client: InventoryServiceClient<MeshChannel>,
    pub db: TestDatabase,
    #[allow(dead_code)] // kept alive for the test: dropping it kills the service
    pub process: ServiceProcess,
}

impl Inventory {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// With more flags for the service.
    pub async fn start_with(flags: &[&str]) -> Self {
        let db = TestDatabase::create("inventory")
            .await
            .expect("a test database");
        let process = start_service_with(&db.url(), flags).await;
        let client = client(&process).await;
        Self {
            client,
            db,
            process,
        }
    }

    pub async fn sql(&self) -> tokio_postgres::Client {
        self.db.connect().await.expect("a direct connection")
    }

    /// An event whose section "A" has `rows` x `per_row` seats at `price_cents`.
    pub async fn event(&self, event_id: &str, rows: u32, per_row: u32, price_cents: i64) -> Event {
        create_event(
            &mut self.client.clone(),
            event_id,
            "A",
            rows,
            per_row,
            price_cents,
        )
        .await
    }

    /// (status, holder, order_id, version, fencing_token) of one seat.
    pub async fn seat(&self, event_id: &str, seat_id: &str) -> SeatRow {
        let row = self
            .sql()
            .await
            .query_one(
                "SELECT status, holder, order_id, version, fencing_token FROM seats
                  WHERE event_id = $1 AND seat_id = $2",
                &[&event_id, &seat_id],
            )
            .await
            .expect("the seat exists");
        SeatRow {
            status: row.get(0),
            holder: row.get(1),
            order_id: row.get(2),
            version: row.get(3),
            fencing_token: row.get(4),
        }
    }

    /// A fingerprint of every table a request could change, to prove it changed nothing.
    pub async fn snapshot(&self) -> String {
        let sql = self.sql().await;
        let mut parts = Vec::new();
        for table in [
            "events",
            "venues",
            "seats",
            "saga_barrier",
            "txn_participants",
            "txn_prepared",
        ] {
            let row = sql
                .query_one(
                    &format!(
                        "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')
                           FROM {table} t"
                    ),
                    &[],
                )
                .await
                .expect("table readable");
            parts.push(format!(
                "{table}:{}:{}",
                row.get::<_, i64>(0),
                row.get::<_, String>(1)
            ));
        }
        let prepared: i64 = sql
            .query_one(
                "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()",
                &[],
            )
            .await
            .expect("pg_prepared_xacts readable")
            .get(0);
        parts.push(format!("prepared:{prepared}"));
        parts.join("\n")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatRow {
    pub status: String,
    pub holder: Option<String>,
    pub order_id: Option<String>,
    pub version: i64,
    pub fencing_token: i64,
}

pub async fn start_service(database_url: &str) -> ServiceProcess {
    start_service_with(database_url, &[]).await
}

pub async fn start_service_with(database_url: &str, flags: &[&str]) -> ServiceProcess {
    let mut args = vec!["--database-url", database_url, "--sweep-interval-ms", "50"];
    args.extend_from_slice(flags);
    ServiceProcess::start(service_binary("inventory-pg"), &args, &[])
        .await
        .expect("inventory-pg starts")
}

pub async fn client(process: &ServiceProcess) -> InventoryServiceClient<MeshChannel> {
    InventoryServiceClient::new(local_mesh::auth::channel(&process.endpoint()).await)
}

pub async fn create_event(
    client: &mut InventoryServiceClient<MeshChannel>,
    event_id: &str,
    section: &str,
    rows: u32,
    per_row: u32,
    price_cents: i64,
) -> Event {
    client
        .create_event(CreateEventRequest {
            event_id: event_id.into(),
            name: format!("Event {event_id}"),
            starts_at: Some(prost_types::Timestamp {
                seconds: 1_900_000_000,
                nanos: 0,
            }),
            description: String::new(),
            currency: "EUR".into(),
            venue: Some(VenueLayout {
                venue_name: "Test Hall".into(),
                price_tiers: vec![PriceTier {
                    name: "standard".into(),
                    price_cents,
                }],
                sections: vec![SectionLayout {
                    name: section.into(),
                    rows,
                    seats_per_row: per_row,
                    price_tier: "standard".into(),
                }],
            }),
        })
        .await
        .expect("event created")
        .into_inner()
        .event
        .expect("the event")
}

pub fn ids(seats: &[&str]) -> Vec<String> {
    seats.iter().map(|s| (*s).to_owned()).collect()
}

pub fn secs(seconds: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds, nanos: 0 })
}

/// The status's code, ErrorInfo reason and metadata, its words checked against its reason.
pub use local_mesh::details;

pub fn hold(saga_id: &str, event_id: &str, seats: &[&str], ttl_secs: i64) -> HoldSeatsRequest {
    HoldSeatsRequest {
        saga_id: saga_id.into(),
        event_id: event_id.into(),
        seat_ids: ids(seats),
        quantity: 0,
        hold_ttl: secs(ttl_secs),
    }
}

pub fn prepare(txid: &str, event_id: &str, order_id: &str, seats: &[&str]) -> PrepareSaleRequest {
    PrepareSaleRequest {
        log_id: String::new(),
        txid: txid.into(),
        event_id: event_id.into(),
        order_id: order_id.into(),
        seat_ids: ids(seats),
        quantity: 0,
    }
}
