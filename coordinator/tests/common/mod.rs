//! Shared by the coordinator's test binaries: the mesh, clients, and the invariants of
//! shared/DESIGN.md checked across all three databases.

#![allow(dead_code)] // each test binary uses its own part

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use local_mesh::{Mesh, MeshOptions, ServiceProcess};
use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use proto::v1::inventory_service_client::InventoryServiceClient;
use proto::v1::payments_service_client::PaymentsServiceClient;
use proto::v1::waiting_room_service_client::WaitingRoomServiceClient;
use proto::v1::*;
use server_kit::outgoing::MeshChannel;

pub struct World {
    pub mesh: Mesh,
    pub coordinator: CoordinatorServiceClient<MeshChannel>,
    pub inventory: InventoryServiceClient<MeshChannel>,
    pub room: WaitingRoomServiceClient<MeshChannel>,
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl World {
    pub async fn start(options: MeshOptions<'_>) -> Self {
        let mesh = Mesh::start(options).await.expect("the mesh starts");
        let coordinator = coordinator_client(&mesh.coordinator).await;
        let inventory = InventoryServiceClient::new(
            local_mesh::auth::channel(&mesh.inventory.endpoint()).await,
        );
        let room = WaitingRoomServiceClient::new(
            local_mesh::auth::channel(&mesh.waiting_room.endpoint()).await,
        );
        let dynamodb = local_mesh::dynamodb_client(&local_mesh::dynamodb_endpoint());
        Self {
            mesh,
            coordinator,
            inventory,
            room,
            dynamodb,
        }
    }

    pub async fn reconnect(&mut self) {
        self.coordinator = coordinator_client(&self.mesh.coordinator).await;
    }

    /// An event with one section of `rows` x `per_row` seats at `price_cents` each.
    pub async fn event(&self, event_id: &str, rows: u32, per_row: u32, price_cents: i64) {
        self.inventory
            .clone()
            .create_event(CreateEventRequest {
                event_id: event_id.into(),
                name: format!("Show {event_id}"),
                starts_at: Some(prost_types::Timestamp {
                    seconds: 1_900_000_000,
                    nanos: 0,
                }),
                description: String::new(),
                currency: "EUR".into(),
                venue: Some(VenueLayout {
                    venue_name: "Mesh Hall".into(),
                    price_tiers: vec![PriceTier {
                        name: "standard".into(),
                        price_cents,
                    }],
                    sections: vec![SectionLayout {
                        name: "A".into(),
                        rows,
                        seats_per_row: per_row,
                        price_tier: "standard".into(),
                    }],
                }),
            })
            .await
            .expect("event created");
    }

    pub async fn buy(
        &self,
        protocol: Protocol,
        event_id: &str,
        seats: &[&str],
        card: &str,
        key: &str,
    ) -> Result<PurchaseResponse, tonic::Status> {
        self.coordinator
            .clone()
            .purchase(purchase(protocol, event_id, seats, card, key))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Opens the event's waiting room.
    pub async fn open_room(&self, event_id: &str, max_active: u32, admission_ttl: Duration) {
        self.room
            .clone()
            .open_room(OpenRoomRequest {
                event_id: event_id.into(),
                max_active,
                admission_ttl: Some(prost_types::Duration {
                    seconds: i64::try_from(admission_ttl.as_secs()).expect("short"),
                    nanos: i32::try_from(admission_ttl.subsec_nanos()).expect("nanos"),
                }),
                ..Default::default()
            })
            .await
            .expect("room opened");
    }

    /// Every card-network call of payments takes `latency` from now on.
    pub async fn slow_card_network(&self, latency: Duration) {
        let latency = server_kit::convert::duration(latency);
        PaymentsServiceClient::new(local_mesh::auth::channel(&self.mesh.payments.endpoint()).await)
            .set_faults(SetFaultsRequest {
                faults: Some(FaultSettings {
                    latency: Some(LatencyDistribution {
                        min: Some(latency),
                        max: Some(latency),
                    }),
                    ..Default::default()
                }),
            })
            .await
            .expect("faults set");
    }

    /// Joins the room as `user` and follows the Watch stream to its final message.
    pub async fn wait_in_room(&self, event_id: &str, user: &str) -> watch_response::Update {
        let mut room = self.room.clone();
        room.join(JoinRequest {
            event_id: event_id.into(),
            user_id: user.into(),
        })
        .await
        .expect("joined");
        let mut stream = room
            .watch(WatchRequest {
                event_id: event_id.into(),
                user_id: user.into(),
                join: false,
            })
            .await
            .expect("watching")
            .into_inner();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), stream.message())
                .await
                .expect("the room answers within 30 s")
                .expect("the stream stays healthy")
                .expect("a final message before the stream ends");
            match message.update.expect("an update") {
                watch_response::Update::Waiting(_) => continue,
                last => return last,
            }
        }
    }

    /// Waits in the room until admitted; the admission token.
    pub async fn admitted(&self, event_id: &str, user: &str) -> String {
        match self.wait_in_room(event_id, user).await {
            watch_response::Update::Admitted(admission) => admission.token,
            other => panic!("{user} was not admitted: {other:?}"),
        }
    }

    /// Rows the coordinator logged for the event.
    pub async fn logged(&self, event_id: &str) -> i64 {
        self.mesh
            .coordinator_db
            .connect()
            .await
            .expect("connects")
            .query_one(
                "SELECT count(*) FROM transactions WHERE event_id = $1",
                &[&event_id],
            )
            .await
            .expect("count")
            .get(0)
    }

    /// The txids of the event's purchases with a confirmation in the outbox.
    pub async fn outbox(&self, event_id: &str) -> Vec<String> {
        self.mesh
            .coordinator_db
            .connect()
            .await
            .expect("connects")
            .query(
                "SELECT o.txid FROM outbox o JOIN transactions t USING (txid)
                  WHERE t.event_id = $1 ORDER BY o.txid",
                &[&event_id],
            )
            .await
            .expect("outbox")
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    /// (status, order_id) of every seat of the event.
    pub async fn seats(&self, event_id: &str) -> HashMap<String, (String, Option<String>)> {
        let sql = self.mesh.inventory_db.connect().await.expect("connects");
        sql.query(
            "SELECT seat_id, status, order_id FROM seats WHERE event_id = $1",
            &[&event_id],
        )
        .await
        .expect("seats")
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect()
    }

    /// Every order of the event: order id -> (status, seat ids, tickets, total).
    pub async fn orders(&self, event_id: &str) -> HashMap<String, OrderRow> {
        let mut orders = HashMap::new();
        let mut start = None;
        loop {
            let page = self
                .dynamodb
                .scan()
                .table_name(&self.mesh.orders_table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            for item in page.items() {
                if text(item, "sk") != "ORDER" || text(item, "event_id") != event_id {
                    continue;
                }
                let seats = item
                    .get("seats")
                    .and_then(|v| v.as_l().ok())
                    .map(|l| {
                        l.iter()
                            .filter_map(|s| s.as_m().ok().map(|m| text(m, "seat_id")))
                            .collect()
                    })
                    .unwrap_or_default();
                let tickets = item
                    .get("tickets")
                    .and_then(|v| v.as_l().ok())
                    .map_or(0, Vec::len);
                orders.insert(
                    text(item, "order_id"),
                    OrderRow {
                        status: text(item, "status"),
                        seats,
                        tickets,
                        total_cents: text_n(item, "total_cents"),
                    },
                );
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return orders;
            }
        }
    }

    /// Every payment of the mesh: order id -> [(state, amount, captured)].
    pub async fn payments(&self) -> HashMap<String, Vec<(String, i64, i64)>> {
        let sql = self.mesh.payments_db.connect().await.expect("connects");
        let mut payments: HashMap<String, Vec<(String, i64, i64)>> = HashMap::new();
        for row in sql
            .query(
                "SELECT order_id, state, amount_cents, captured_cents FROM payments",
                &[],
            )
            .await
            .expect("payments")
        {
            payments
                .entry(row.get(0))
                .or_default()
                .push((row.get(1), row.get(2), row.get(3)));
        }
        payments
    }

    /// Waits until the coordinator has no unfinished purchase (recovery included).
    /// The log's state of the event's purchase (its only one, or the latest begun).
    pub async fn logged_state(&self, event_id: &str) -> String {
        self.mesh
            .coordinator_db
            .connect()
            .await
            .expect("connects")
            .query_one(
                "SELECT state FROM transactions WHERE event_id = $1 ORDER BY started_at DESC LIMIT 1",
                &[&event_id],
            )
            .await
            .expect("a logged purchase")
            .get(0)
    }

    pub async fn settle(&self) {
        let sql = self.mesh.coordinator_db.connect().await.expect("connects");
        for _ in 0..200 {
            let unfinished: i64 = sql
                .query_one(
                    "SELECT count(*) FROM transactions WHERE state NOT IN ('COMMITTED', 'ABORTED')",
                    &[],
                )
                .await
                .expect("count")
                .get(0);
            if unfinished == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("purchases still unfinished after 20 s");
    }

    /// Every invariant of shared/DESIGN.md for one event: the audit (`ticketdrop audit`'s
    /// library) over the mesh's stores finds nothing, the event has `capacity` seats,
    /// and none is left HELD once every purchase finished.
    pub async fn assert_invariants(&self, event_id: &str, capacity: usize) {
        self.assert_invariants_across(event_id, capacity, &[]).await;
    }

    /// The same, when other clusters (coordinators with logs of their own) sold the
    /// event too: every log is audited.
    pub async fn assert_invariants_across(
        &self,
        event_id: &str,
        capacity: usize,
        other_logs: &[&local_mesh::TestDatabase],
    ) {
        let mut stores = ticketdrop::stores::Stores::of_mesh(&self.mesh);
        stores
            .coordinator_db
            .extend(other_logs.iter().map(|db| db.url()));
        let report = ticketdrop::audit::audit(&stores, event_id)
            .await
            .expect("the audit reads the stores");
        assert!(
            report.violations.is_empty(),
            "{event_id}: {:#?}",
            report.violations
        );
        assert_eq!(report.capacity, capacity as i64, "{event_id}: capacity");
        assert_eq!(report.held, 0, "{event_id}: a seat is left HELD");
    }
}

#[derive(Debug, Clone)]
pub struct OrderRow {
    pub status: String,
    pub seats: Vec<String>,
    pub tickets: usize,
    pub total_cents: i64,
}

/// A mesh whose coordinator tries each participant call once, for 300 ms, before and
/// after the decision: a frozen participant is given up on at once (and the purchase
/// parked for recovery when its undo or finish cannot reach it).
pub fn impatient_coordinator() -> MeshOptions<'static> {
    MeshOptions {
        coordinator_args: vec![
            "--call-timeout-ms",
            "300",
            "--forward-attempts",
            "1",
            "--finish-attempts",
            "1",
        ],
        ..MeshOptions::default()
    }
}

pub async fn coordinator_client(process: &ServiceProcess) -> CoordinatorServiceClient<MeshChannel> {
    CoordinatorServiceClient::new(local_mesh::auth::channel(&process.endpoint()).await)
}

pub fn purchase(
    protocol: Protocol,
    event_id: &str,
    seats: &[&str],
    card: &str,
    key: &str,
) -> PurchaseRequest {
    PurchaseRequest {
        user_id: user(key),
        event_id: event_id.into(),
        seat_ids: seats.iter().map(|s| (*s).to_owned()).collect(),
        quantity: 0,
        card_token: card.into(),
        idempotency_key: key.into(),
        protocol: protocol.into(),
        deadline: None,
        admission_token: String::new(),
        contact: None,
    }
}

/// The buyer `purchase` names for an idempotency key.
pub fn user(key: &str) -> String {
    format!("user-{key}")
}

pub const PROTOCOLS: [Protocol; 3] = [Protocol::TwoPhaseCommit, Protocol::Saga, Protocol::Lease];

pub fn short(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::TwoPhaseCommit => "2pc",
        Protocol::Saga => "saga",
        Protocol::Lease => "lease",
        Protocol::Unspecified => "none",
    }
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

fn text_n(item: &HashMap<String, AttributeValue>, name: &str) -> i64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The code, ErrorInfo reason and metadata of a refusal, once its message is checked
/// against its reason.
// Not every test binary that shares this module reads reasons.
#[allow(unused_imports)]
pub use local_mesh::details as reason;

/// Waits until an admission token's expiry (its `exp` claim) has passed: a test waits for
/// the admission's own end, not for a length of time guessed from its TTL.
pub async fn until_expired(token: &str) {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64"),
    )
    .expect("json claims");
    let expires_ms = claims["exp"].as_i64().expect("an exp claim") * 1_000;
    local_mesh::eventually(
        "the admission to expire",
        Duration::from_secs(60),
        || async {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970");
            i64::try_from(now.as_millis()).unwrap_or(i64::MAX) > expires_ms
        },
    )
    .await;
}
