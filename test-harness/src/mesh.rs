//! The whole mesh for one test: inventory-pg, orders-dynamo and payments on fresh
//! databases and a table of their own, and a coordinator pointed at them.

use anyhow::Context;

use crate::{ServiceProcess, TestDatabase, service_binary, unique_name};

pub struct Mesh {
    pub inventory: ServiceProcess,
    pub orders: ServiceProcess,
    pub payments: ServiceProcess,
    pub coordinator: ServiceProcess,
    pub inventory_db: TestDatabase,
    pub payments_db: TestDatabase,
    pub coordinator_db: TestDatabase,
    pub orders_table: String,
}

/// Extra arguments and environment per service.
#[derive(Default, Clone)]
pub struct MeshOptions<'a> {
    pub coordinator_args: Vec<&'a str>,
    pub coordinator_env: Vec<(&'a str, &'a str)>,
    pub payments_args: Vec<&'a str>,
}

impl Mesh {
    pub async fn start(options: MeshOptions<'_>) -> anyhow::Result<Self> {
        let (inventory_db, payments_db, coordinator_db) = tokio::try_join!(
            TestDatabase::create("mesh_inventory"),
            TestDatabase::create("mesh_payments"),
            TestDatabase::create("mesh_coordinator"),
        )?;
        let orders_table = unique_name("mesh_orders");
        let inventory_url = inventory_db.url();
        let payments_url = payments_db.url();
        let mut payments_args = vec!["--database-url", payments_url.as_str()];
        payments_args.extend(options.payments_args.iter().copied());
        let inventory_args = [
            "--database-url",
            inventory_url.as_str(),
            "--sweep-interval-ms",
            "100",
        ];
        let orders_args = ["--table", orders_table.as_str()];
        let (inventory, orders, payments) = tokio::try_join!(
            ServiceProcess::start(service_binary("inventory-pg"), &inventory_args, &[]),
            ServiceProcess::start(service_binary("orders-dynamo"), &orders_args, &[]),
            ServiceProcess::start(service_binary("payments"), &payments_args, &[]),
        )?;
        let coordinator =
            start_coordinator(&coordinator_db, &inventory, &orders, &payments, &options).await?;
        Ok(Self {
            inventory,
            orders,
            payments,
            coordinator,
            inventory_db,
            payments_db,
            coordinator_db,
            orders_table,
        })
    }

    /// A second coordinator with a log of its own on the same participants (two lease
    /// holders racing): it must not recover the first one's purchases.
    pub async fn another_coordinator(
        &self,
        options: &MeshOptions<'_>,
    ) -> anyhow::Result<(ServiceProcess, TestDatabase)> {
        let db = TestDatabase::create("mesh_coordinator_b").await?;
        let process =
            start_coordinator(&db, &self.inventory, &self.orders, &self.payments, options).await?;
        Ok((process, db))
    }
}

async fn start_coordinator(
    db: &TestDatabase,
    inventory: &ServiceProcess,
    orders: &ServiceProcess,
    payments: &ServiceProcess,
    options: &MeshOptions<'_>,
) -> anyhow::Result<ServiceProcess> {
    let url = db.url();
    let (inventory, orders, payments) =
        (inventory.endpoint(), orders.endpoint(), payments.endpoint());
    let mut args = vec![
        "--database-url",
        url.as_str(),
        "--inventory-endpoint",
        inventory.as_str(),
        "--orders-endpoint",
        orders.as_str(),
        "--payments-endpoint",
        payments.as_str(),
        "--recovery-interval-ms",
        "500",
    ];
    args.extend(options.coordinator_args.iter().copied());
    ServiceProcess::start(
        service_binary("coordinator"),
        &args,
        &options.coordinator_env,
    )
    .await
    .context("the coordinator starts")
}
