//! Everything the audit looks at for one event, read from the stores themselves — the
//! inventory, payments, notifier and log databases, the orders table and Redis — never
//! through the services whose correctness it checks. The checks (`checks.rs`) are pure
//! functions of a snapshot, so each is tested on data, and the stores are read once.

mod orders;
mod room;

use crate::stores::{self, Stores};
use anyhow::Context;
use chrono::{DateTime, Utc};
pub use orders::{get_orders, orders_by_keys};
use orders::{orders_in_doubt, scan_orders};
use room::{read_room, redis_config};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A seat as inventory keeps it.
#[derive(Debug, Clone, Default)]
pub struct Seat {
    pub status: String,
    pub order_id: Option<String>,
    pub holder: Option<String>,
    pub price_cents: i64,
    /// HELD past its expiry by more than the sweeper's grace.
    pub hold_expired: bool,
}

/// An order as the orders table keeps it.
#[derive(Debug, Clone, Default)]
pub struct Order {
    pub status: String,
    pub seats: Vec<String>,
    pub total_cents: i64,
    pub txid: String,
    pub idempotency_key: Option<String>,
    /// The seat of each ticket the order carries.
    pub ticket_seats: Vec<String>,
}

impl Order {
    pub fn is_confirmed(&self) -> bool {
        self.status == "ORDER_STATUS_CONFIRMED"
    }

    /// Written by a purchase that has not decided yet: a saga's PENDING, a 2PC branch's
    /// PREPARED.
    pub fn is_undecided(&self) -> bool {
        matches!(
            self.status.as_str(),
            "ORDER_STATUS_PENDING" | "ORDER_STATUS_PREPARED"
        )
    }
}

/// A payment as payments keeps it.
#[derive(Debug, Clone)]
pub struct Payment {
    pub payment_id: String,
    pub order_id: String,
    pub state: String,
    /// Captured − refunded.
    pub net_cents: i64,
}

/// A purchase as one coordinator log records it.
#[derive(Debug, Clone)]
pub struct Purchase {
    /// The log's database, as the audit was given it.
    pub log: usize,
    pub txid: String,
    pub state: String,
    pub order_id: String,
    pub idempotency_key: String,
    /// The buyer asked to be confirmed (an email or a phone number).
    pub has_contact: bool,
    pub finished_at: Option<DateTime<Utc>>,
    /// The ErrorInfo reason of the refusal it ended with, if any.
    pub refusal: Option<String>,
    pub outbox: Option<Outbox>,
}

impl Purchase {
    pub fn is_finished(&self) -> bool {
        matches!(self.state.as_str(), "COMMITTED" | "ABORTED")
    }
}

/// The purchase's row in the log's confirmation outbox.
#[derive(Debug, Clone, Copy)]
pub struct Outbox {
    pub relayed: bool,
}

/// A prepared branch a participant still holds.
#[derive(Debug, Clone)]
pub struct Branch {
    pub txid: String,
    pub participant: &'static str,
}

/// A seat lease in Redis.
#[derive(Debug, Clone)]
pub struct Lease {
    pub key: String,
    /// The txid holding it.
    pub holder: String,
    /// Milliseconds until it lapses; -1 when it never does.
    pub ttl_ms: i64,
}

/// The event's waiting room, as Redis keeps it.
#[derive(Debug, Clone, Default)]
pub struct Room {
    pub state: String,
    pub max_active: i64,
    pub max_purchasing_seen: i64,
    /// Fans told SOLD_OUT by the room.
    pub sold_out: i64,
    pub fans: Vec<Fan>,
}

/// One fan's record in the room.
#[derive(Debug, Clone, Default)]
pub struct Fan {
    pub user_id: String,
    pub state: String,
    /// Join number.
    pub seq: i64,
    pub admission_number: Option<i64>,
    /// The idempotency key of the purchase that claimed the admission.
    pub key: Option<String>,
    /// When the room gave the slot back (ms since the epoch, the room's clock).
    pub ended_at_ms: Option<i64>,
}

/// A confirmation the notifier accepted.
#[derive(Debug, Clone)]
pub struct Confirmation {
    pub txid: String,
    pub order_id: String,
}

/// Everything the checks read, for one event.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub event_id: String,
    pub capacity: i64,
    pub seats: BTreeMap<String, Seat>,
    /// The event's orders, and any other order a log names for the event.
    pub orders: BTreeMap<String, Order>,
    /// Payments of those orders, and every capture of an order the audit cannot place
    /// (`placed` says which exist somewhere).
    pub payments: Vec<Payment>,
    /// Order ids of captures outside this event that some order or log does name.
    pub placed: HashSet<String>,
    /// Every log's purchases of the event.
    pub purchases: Vec<Purchase>,
    pub prepared: Vec<Branch>,
    pub leases: Vec<Lease>,
    pub room: Option<Room>,
    /// None when the audit was given no notifier database.
    pub confirmations: Option<Vec<Confirmation>>,
}

impl Snapshot {
    /// Reads every store for `event_id`.
    pub async fn read(stores: &Stores, event_id: &str) -> anyhow::Result<Snapshot> {
        let mut snapshot = Snapshot {
            event_id: event_id.to_owned(),
            ..Snapshot::default()
        };
        let inventory = stores::postgres("inventory", &stores.inventory_db).await?;
        snapshot.read_inventory(&inventory).await?;
        for (log, url) in stores.coordinator_db.iter().enumerate() {
            let db = stores::postgres("coordinator", url).await?;
            snapshot.read_log(&db, log).await?;
        }
        snapshot.orders = scan_orders(stores, event_id).await?;
        // Orders a log names for the event that the scan did not find under the event (a
        // corrupted event id) are read by key.
        let named: Vec<String> = snapshot
            .purchases
            .iter()
            .map(|p| p.order_id.clone())
            .filter(|id| !snapshot.orders.contains_key(id))
            .collect();
        snapshot.orders.extend(get_orders(stores, &named).await?);
        let payments = stores::postgres("payments", &stores.payments_db).await?;
        snapshot
            .read_prepared(&inventory, &payments, stores)
            .await?;
        snapshot.read_payments(&payments, stores).await?;
        let mut redis = redis::Client::open(stores.redis_url.as_str())?
            .get_multiplexed_async_connection_with_config(&redis_config())
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach Redis at {}: {e}", stores.redis_url))?;
        snapshot.read_leases(&mut redis).await?;
        snapshot.room = read_room(&mut redis, &stores.room_prefix, event_id).await?;
        if let Some(url) = &stores.notifier_db {
            let notifier = stores::postgres("notifier", url).await?;
            snapshot.confirmations = Some(
                notifier
                    .query(
                        "SELECT txid, order_id FROM confirmations WHERE event_id = $1",
                        &[&event_id],
                    )
                    .await
                    .context("reading the notifier's confirmations")?
                    .iter()
                    .map(|row| Confirmation {
                        txid: row.get(0),
                        order_id: row.get(1),
                    })
                    .collect(),
            );
        }
        Ok(snapshot)
    }

    async fn read_inventory(&mut self, inventory: &tokio_postgres::Client) -> anyhow::Result<()> {
        let event_id = self.event_id.as_str();
        self.capacity = inventory
            .query_opt(
                "SELECT capacity FROM events WHERE event_id = $1",
                &[&event_id],
            )
            .await?
            .map(|row| i64::from(row.get::<_, i32>(0)))
            .ok_or_else(|| {
                anyhow::anyhow!("event {event_id} not found in the inventory database")
            })?;
        // The sweeper frees a lapsed hold within a few seconds: only one older than that
        // is stuck.
        for row in inventory
            .query(
                "SELECT seat_id, status, order_id, holder, price_cents,
                        coalesce(hold_expires_at < now() - interval '5 seconds', false)
                   FROM seats WHERE event_id = $1",
                &[&event_id],
            )
            .await?
        {
            self.seats.insert(
                row.get(0),
                Seat {
                    status: row.get(1),
                    order_id: row.get(2),
                    holder: row.get(3),
                    price_cents: row.get(4),
                    hold_expired: row.get(5),
                },
            );
        }
        Ok(())
    }

    async fn read_log(&mut self, log: &tokio_postgres::Client, index: usize) -> anyhow::Result<()> {
        let rows = log
            .query(
                "SELECT t.txid, t.state, t.order_id, t.idempotency_key,
                        coalesce(t.contact_email, '') <> '' OR coalesce(t.contact_phone, '') <> '',
                        t.finished_at, t.error_code, coalesce(t.error, ''), t.error_details,
                        o.txid IS NOT NULL, o.relayed_at IS NOT NULL
                   FROM transactions t LEFT JOIN outbox o USING (txid)
                  WHERE t.event_id = $1",
                &[&self.event_id],
            )
            .await
            .context("reading a coordinator log")?;
        for row in rows {
            let refusal = match (
                row.get::<_, Option<i32>>(6),
                row.get::<_, Option<Vec<u8>>>(8),
            ) {
                (Some(code), Some(details)) => {
                    let status = tonic::Status::with_details(
                        tonic::Code::from(code),
                        row.get::<_, String>(7),
                        details.into(),
                    );
                    proto::error::Refusal::of(&status)
                        .map(|refusal| refusal.reason.name().to_owned())
                }
                _ => None,
            };
            self.purchases.push(Purchase {
                log: index,
                txid: row.get(0),
                state: row.get(1),
                order_id: row.get(2),
                idempotency_key: row.get(3),
                has_contact: row.get(4),
                finished_at: row.get(5),
                refusal,
                outbox: row.get::<_, bool>(9).then(|| Outbox {
                    relayed: row.get(10),
                }),
            });
        }
        Ok(())
    }

    /// Prepared branches of the event's purchases (or of the event) that inventory,
    /// payments or orders still hold.
    async fn read_prepared(
        &mut self,
        inventory: &tokio_postgres::Client,
        payments: &tokio_postgres::Client,
        stores: &Stores,
    ) -> anyhow::Result<()> {
        let txids: Vec<&str> = self.purchases.iter().map(|p| p.txid.as_str()).collect();
        for row in inventory
            .query(
                "SELECT substr(x.gid, 4) FROM pg_prepared_xacts x
                   LEFT JOIN txn_prepared p ON p.txid = substr(x.gid, 4)
                  WHERE x.database = current_database() AND x.gid LIKE 'td-%'
                    AND (p.event_id = $1 OR substr(x.gid, 4) = ANY($2))",
                &[&self.event_id, &txids],
            )
            .await?
        {
            self.prepared.push(Branch {
                txid: row.get(0),
                participant: "inventory-pg",
            });
        }
        for row in payments
            .query(
                "SELECT txid FROM txn_participants WHERE state = 'PREPARED' AND txid = ANY($1)",
                &[&txids],
            )
            .await?
        {
            self.prepared.push(Branch {
                txid: row.get(0),
                participant: "payments",
            });
        }
        let in_doubt = orders_in_doubt(stores).await?;
        let ours: HashSet<&str> = txids.iter().copied().collect();
        for txid in in_doubt {
            if ours.contains(txid.as_str()) {
                self.prepared.push(Branch {
                    txid,
                    participant: "orders-dynamo",
                });
            }
        }
        Ok(())
    }

    /// Payments of every order of the event or named by its purchases — whatever their
    /// state or age — and every capture anywhere, whose order is then looked for.
    async fn read_payments(
        &mut self,
        payments: &tokio_postgres::Client,
        stores: &Stores,
    ) -> anyhow::Result<()> {
        let mut order_ids: Vec<&str> = self.orders.keys().map(String::as_str).collect();
        order_ids.extend(self.purchases.iter().map(|p| p.order_id.as_str()));
        for row in payments
            .query(
                "SELECT payment_id, order_id, state, captured_cents - refunded_cents
                   FROM payments
                  WHERE order_id = ANY($1) OR captured_cents > refunded_cents",
                &[&order_ids],
            )
            .await?
        {
            self.payments.push(Payment {
                payment_id: row.get(0),
                order_id: row.get(1),
                state: row.get(2),
                net_cents: row.get(3),
            });
        }
        let known: HashSet<&str> = order_ids.into_iter().collect();
        let foreign: Vec<String> = self
            .payments
            .iter()
            .filter(|p| !known.contains(p.order_id.as_str()))
            .map(|p| p.order_id.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        // Another event's order, or a purchase some log is still running, places it.
        let mut placed: HashSet<String> = get_orders(stores, &foreign).await?.into_keys().collect();
        for url in &stores.coordinator_db {
            let log = stores::postgres("coordinator", url).await?;
            for row in log
                .query(
                    "SELECT order_id FROM transactions WHERE order_id = ANY($1)",
                    &[&foreign],
                )
                .await?
            {
                placed.insert(row.get(0));
            }
        }
        self.placed = placed;
        Ok(())
    }

    async fn read_leases(
        &mut self,
        redis: &mut redis::aio::MultiplexedConnection,
    ) -> anyhow::Result<()> {
        let keys = scan(redis, &format!("lock:seat:{{{}}}:*", self.event_id)).await?;
        for key in keys {
            let (holder, ttl_ms): (Option<String>, i64) = redis::pipe()
                .get(&key)
                .cmd("PTTL")
                .arg(&key)
                .query_async(redis)
                .await?;
            // Gone between the scan and the read: released in time.
            if let Some(holder) = holder {
                self.leases.push(Lease {
                    key,
                    holder,
                    ttl_ms,
                });
            }
        }
        Ok(())
    }

    /// The purchases of every log by idempotency key.
    pub fn purchases_by_key(&self) -> HashMap<&str, &Purchase> {
        self.purchases
            .iter()
            .map(|p| (p.idempotency_key.as_str(), p))
            .collect()
    }
}

/// SCAN, not KEYS: Redis keeps serving while the keyspace is walked.
async fn scan(
    redis: &mut redis::aio::MultiplexedConnection,
    pattern: &str,
) -> anyhow::Result<Vec<String>> {
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(10_000)
            .query_async(redis)
            .await?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}
