//! The raw pace of each store, measured in the bench's own run so that every protocol's
//! figure can be read against the physical limit of the machine it ran on.
//!
//! - DynamoDB Local: `TransactWriteItems` with the items a lease sale writes (the order,
//!   one fenced seat claim, the idempotency item), each conditional as the service writes
//!   it, sent by the Rust SDK at the drop's concurrency; then the same with several sales
//!   in one transaction, which is the ceiling group commit can reach.
//! - PostgreSQL: `INSERT` + `PREPARE TRANSACTION` + `COMMIT PREPARED`, the 2pc branch.
//! - Redis: `SET NX PX`, one lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, Put, ScalarAttributeType,
    TransactWriteItem,
};
use orders_dynamo::items::{self, OrderRecord, n, s};
use proto::v1::{OrderStatus, PricedSeat, Protocol};
use serde::Serialize;

use crate::load::stats::percentile;
use crate::stores::{self, Stores};

/// One store operation's measured pace.
#[derive(Debug, Clone, Serialize)]
pub struct Rate {
    pub what: String,
    /// Operations (transactions, commands) completed.
    pub operations: u64,
    /// Sales those operations carry (a grouped transaction carries several).
    pub sales: u64,
    pub concurrency: usize,
    pub seconds: f64,
    pub operations_per_s: f64,
    pub sales_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The raw rates of one run.
#[derive(Debug, Clone, Serialize)]
pub struct StoreRates {
    /// One TransactWriteItems per sale: the yardstick of the efficiency figure.
    pub dynamodb_sale: Rate,
    /// Several sales per TransactWriteItems.
    pub dynamodb_grouped: Vec<Rate>,
    pub postgres_prepared: Rate,
    pub redis_set_nx_px: Rate,
}

/// How long each measurement runs.
const WINDOW: Duration = Duration::from_secs(4);

pub async fn measure(stores: &Stores, concurrency: usize) -> anyhow::Result<StoreRates> {
    let dynamo = stores::dynamodb(&stores.dynamodb_endpoint);
    let table = format!("bench-raw-{}", uuid::Uuid::new_v4().simple());
    create_table(&dynamo, &table).await?;
    let result = async {
        // DynamoDB Local's JVM is cold after `make stack-reset`: the first seconds run
        // at half its pace. One window warms it; its figures are not kept.
        dynamodb(&dynamo, &table, concurrency, 1).await?;
        let dynamodb_sale = dynamodb(&dynamo, &table, concurrency, 1).await?;
        let mut dynamodb_grouped = Vec::new();
        for group in [8, 32] {
            dynamodb_grouped.push(dynamodb(&dynamo, &table, concurrency, group).await?);
        }
        anyhow::Ok((dynamodb_sale, dynamodb_grouped))
    }
    .await;
    // The table goes whatever happened: it must not age the store the drops run on.
    let dropped = dynamo.delete_table().table_name(&table).send().await;
    let (dynamodb_sale, dynamodb_grouped) = result?;
    dropped.with_context(|| format!("deleting the bench table {table}"))?;
    Ok(StoreRates {
        dynamodb_sale,
        dynamodb_grouped,
        postgres_prepared: postgres(&stores.inventory_db, concurrency.min(16)).await?,
        redis_set_nx_px: redis(&stores.redis_url, concurrency).await?,
    })
}

/// Runs `op` from `concurrency` tasks for WINDOW; each call returns the sales it carried.
async fn run<F, Fut>(what: String, concurrency: usize, op: F) -> anyhow::Result<Rate>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<u64>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + WINDOW;
    let workers = (0..concurrency).map(|_| {
        let op = op.clone();
        let next = next.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut sales = 0;
            while Instant::now() < deadline {
                let id = next.fetch_add(1, Ordering::Relaxed);
                let began = Instant::now();
                sales += op(id).await?;
                latencies.push(began.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok((latencies, sales))
        })
    });
    let mut latencies = Vec::new();
    let mut sales = 0;
    for worker in futures::future::join_all(workers).await {
        let (l, s) = worker??;
        latencies.extend(l);
        sales += s;
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let quantile = |q: f64| percentile(&latencies, q);
    let operations = latencies.len() as u64;
    Ok(Rate {
        what,
        operations,
        sales,
        concurrency,
        seconds,
        operations_per_s: operations as f64 / seconds,
        sales_per_s: sales as f64 / seconds,
        p50_ms: quantile(0.50),
        p99_ms: quantile(0.99),
    })
}

async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<()> {
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk")?)
        .attribute_definitions(attribute("sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .send()
        .await
        .with_context(|| format!("creating the bench table {table} (is `make up` running?)"))?;
    Ok(())
}

/// The three items of sale `id`, conditional as orders-dynamo writes a lease order.
fn sale_items(table: &str, run: &str, id: u64) -> anyhow::Result<Vec<TransactWriteItem>> {
    let order_id = format!("bench-order-{run}-{id}");
    let now = items::now();
    let record = OrderRecord {
        order_id: order_id.clone(),
        user_id: format!("bench-user-{id}"),
        event_id: format!("bench-event-{run}"),
        status: OrderStatus::Confirmed,
        seats: vec![PricedSeat {
            seat_id: format!("A-{}-{}", id / 1000, id % 1000),
            price_cents: 5_000,
        }],
        currency: "EUR".to_owned(),
        protocol: Protocol::Lease,
        txid: uuid::Uuid::new_v4().to_string(),
        payment_id: Some(format!("bench-payment-{id}")),
        idempotency_key: Some(format!("bench-key-{id}")),
        tickets: Vec::new(),
        fencing_token: id + 1,
        created_at: now.clone(),
        updated_at: now,
    };
    let seat = &record.seats[0].seat_id;
    let mut idempotency = items::idempotency_key(&format!("bench-key-{run}-{id}"));
    idempotency.insert("order_id".into(), s(&order_id));
    let put = |item, condition: &str, values: Vec<(&str, _)>| -> anyhow::Result<_> {
        let mut put = Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression(condition);
        for (name, value) in values {
            put = put.expression_attribute_values(name, value);
        }
        Ok(TransactWriteItem::builder().put(put.build()?).build())
    };
    Ok(vec![
        put(record.to_item(), "attribute_not_exists(pk)", vec![])?,
        put(
            orders_dynamo::store::claim_item(&record.event_id, seat, &order_id, Some(id + 1)),
            "(attribute_not_exists(pk) OR claim_status = :released OR order_id = :order) \
             AND (attribute_not_exists(fencing_token) OR fencing_token <= :token)",
            vec![
                (":released", s(orders_dynamo::store::RELEASED)),
                (":order", s(&order_id)),
                (":token", n(id + 1)),
            ],
        )?,
        put(
            idempotency,
            "attribute_not_exists(pk) OR order_id = :order",
            vec![(":order", s(&order_id))],
        )?,
    ])
}

async fn dynamodb(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    concurrency: usize,
    group: u64,
) -> anyhow::Result<Rate> {
    let what = if group == 1 {
        "DynamoDB TransactWriteItems, one sale (3 items)".to_owned()
    } else {
        format!(
            "DynamoDB TransactWriteItems, {group} sales ({} items)",
            group * 3
        )
    };
    let client = client.clone();
    let table = table.to_owned();
    let run_id = format!(
        "g{group}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    run(what, concurrency, move |id| {
        let client = client.clone();
        let table = table.clone();
        let run_id = run_id.clone();
        async move {
            let mut transaction = Vec::new();
            for sale in id * group..(id + 1) * group {
                transaction.extend(sale_items(&table, &run_id, sale)?);
            }
            client
                .transact_write_items()
                .set_transact_items(Some(transaction))
                .send()
                .await
                .context("TransactWriteItems")?;
            Ok(group)
        }
    })
    .await
}

async fn postgres(url: &str, concurrency: usize) -> anyhow::Result<Rate> {
    let setup = stores::postgres("inventory", url).await?;
    setup
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS bench_raw (id bigint PRIMARY KEY, state text NOT NULL);
             TRUNCATE bench_raw;",
        )
        .await?;
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        clients.push(stores::postgres("inventory", url).await?);
    }
    let clients = Arc::new(clients);
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let rate = run(
        "PostgreSQL INSERT + PREPARE TRANSACTION + COMMIT PREPARED".to_owned(),
        concurrency,
        move |id| {
            let clients = clients.clone();
            let gid = format!("bench-{run_id}-{id}");
            async move {
                let client = &clients[id as usize % clients.len()];
                client
                    .batch_execute(&format!(
                        "BEGIN;
                         INSERT INTO bench_raw VALUES ({id}, 'SOLD');
                         PREPARE TRANSACTION '{gid}';"
                    ))
                    .await?;
                client
                    .batch_execute(&format!("COMMIT PREPARED '{gid}'"))
                    .await?;
                Ok(1)
            }
        },
    )
    .await;
    setup.batch_execute("DROP TABLE bench_raw").await?;
    rate
}

async fn redis(url: &str, concurrency: usize) -> anyhow::Result<Rate> {
    let client = redis::Client::open(url)?;
    let connection = client.get_multiplexed_async_connection().await?;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let rate = run("Redis SET NX PX".to_owned(), concurrency, move |id| {
        let mut connection = connection.clone();
        let key = format!("bench:{run_id}:{id}");
        async move {
            let _: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg("token")
                .arg("NX")
                .arg("PX")
                .arg(10_000)
                .query_async(&mut connection)
                .await?;
            Ok(1)
        }
    })
    .await?;
    Ok(rate)
}
