//! The whole mesh for one test: inventory-pg, orders-dynamo and payments on fresh
//! databases and a table of their own, a waiting room with Redis keys of its own, a
//! notifier on a fresh database, and a coordinator pointed at them.

use anyhow::Context;

use crate::{ServiceProcess, TestDatabase, service_binary, unique_name};

pub struct Mesh {
    pub inventory: ServiceProcess,
    pub orders: ServiceProcess,
    pub payments: ServiceProcess,
    pub waiting_room: ServiceProcess,
    pub coordinator: ServiceProcess,
    pub notifier: ServiceProcess,
    pub inventory_db: TestDatabase,
    pub payments_db: TestDatabase,
    pub coordinator_db: TestDatabase,
    pub notifier_db: TestDatabase,
    pub orders_table: String,
    /// The waiting room's Redis key prefix (rooms of this mesh only).
    pub room_prefix: String,
}

/// Extra arguments and environment per service.
#[derive(Default, Clone)]
pub struct MeshOptions<'a> {
    pub coordinator_args: Vec<&'a str>,
    pub coordinator_env: Vec<(&'a str, &'a str)>,
    pub payments_args: Vec<&'a str>,
    pub waiting_room_args: Vec<&'a str>,
    /// The notifier's channels (--smtp-url, --sms-url) and retry flags. Unless given, it
    /// retries fast (100 ms doubling to 1 s, claims of 3 s) and its SMTP server and SMS
    /// provider are ports nobody listens on.
    pub notifier_args: Vec<&'a str>,
    /// Environment of every service (the coordinator's own comes after it).
    pub env: Vec<(&'a str, &'a str)>,
}

impl Mesh {
    pub async fn start(options: MeshOptions<'_>) -> anyhow::Result<Self> {
        let (inventory_db, payments_db, coordinator_db, notifier_db) = tokio::try_join!(
            TestDatabase::create("mesh_inventory"),
            TestDatabase::create("mesh_payments"),
            TestDatabase::create("mesh_coordinator"),
            TestDatabase::create("mesh_notifier"),
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
        let notifier_url = notifier_db.url();
        // The notifier names events as fans know them, from this mesh's inventory: its
        // port is chosen first.
        let inventory_addr = std::net::SocketAddr::from(([127, 0, 0, 1], crate::free_port()?));
        let inventory_endpoint = format!("http://{inventory_addr}");
        let mut notifier_args = notifier_args(&notifier_url, &options.notifier_args)?;
        notifier_args.extend(["--inventory-endpoint".to_owned(), inventory_endpoint]);
        let notifier_args: Vec<&str> = notifier_args.iter().map(String::as_str).collect();
        let (inventory, orders, payments, notifier) = tokio::try_join!(
            ServiceProcess::start_on(
                inventory_addr,
                service_binary("inventory-pg"),
                &inventory_args,
                &options.env
            ),
            ServiceProcess::start(service_binary("orders-dynamo"), &orders_args, &options.env),
            ServiceProcess::start(service_binary("payments"), &payments_args, &options.env),
            ServiceProcess::start(service_binary("notifier"), &notifier_args, &options.env),
        )?;
        let room_prefix = unique_name("room");
        let inventory_endpoint = inventory.endpoint();
        // The room asks the coordinator about purchases, the coordinator calls the room:
        // the coordinator's port is chosen first.
        let coordinator_addr = std::net::SocketAddr::from(([127, 0, 0, 1], crate::free_port()?));
        let coordinator_endpoint = format!("http://{coordinator_addr}");
        let mut room_args = vec![
            "--key-prefix",
            room_prefix.as_str(),
            "--inventory-endpoint",
            inventory_endpoint.as_str(),
            "--coordinator-endpoint",
            coordinator_endpoint.as_str(),
            "--tick-ms",
            "20",
        ];
        room_args.extend(options.waiting_room_args.iter().copied());
        let waiting_room =
            ServiceProcess::start(service_binary("waiting-room"), &room_args, &options.env).await?;
        let coordinator = start_coordinator(
            Some(coordinator_addr),
            &coordinator_db,
            &[&inventory, &orders, &payments, &waiting_room, &notifier],
            &options,
        )
        .await?;
        Ok(Self {
            inventory,
            orders,
            payments,
            waiting_room,
            coordinator,
            notifier,
            inventory_db,
            payments_db,
            coordinator_db,
            notifier_db,
            orders_table,
            room_prefix,
        })
    }

    /// Another coordinator on this mesh's log (coordinators sharing one log: each
    /// purchase has one owner at a time).
    pub async fn peer_coordinator(
        &self,
        options: &MeshOptions<'_>,
    ) -> anyhow::Result<ServiceProcess> {
        start_coordinator(
            None,
            &self.coordinator_db,
            &[
                &self.inventory,
                &self.orders,
                &self.payments,
                &self.waiting_room,
                &self.notifier,
            ],
            options,
        )
        .await
    }

    /// A second coordinator with a log of its own on the same participants (a second
    /// cluster): it must never touch the first one's purchases or branches.
    pub async fn another_coordinator(
        &self,
        options: &MeshOptions<'_>,
    ) -> anyhow::Result<(ServiceProcess, TestDatabase)> {
        let db = TestDatabase::create("mesh_coordinator_b").await?;
        let process = start_coordinator(
            None,
            &db,
            &[
                &self.inventory,
                &self.orders,
                &self.payments,
                &self.waiting_room,
                &self.notifier,
            ],
            options,
        )
        .await?;
        Ok((process, db))
    }
}

/// The notifier's flags: its database, the test's own, and fast test defaults for what
/// the test did not set.
fn notifier_args(database_url: &str, given: &[&str]) -> anyhow::Result<Vec<String>> {
    let nobody = |scheme: &str| -> anyhow::Result<String> {
        Ok(format!("{scheme}://127.0.0.1:{}", crate::free_port()?))
    };
    let mut args = vec!["--database-url".to_owned(), database_url.to_owned()];
    let defaults = [
        ("--smtp-url", nobody("smtp")?),
        ("--sms-url", nobody("http")?),
        ("--retry-base-ms", "100".to_owned()),
        ("--retry-max-ms", "1000".to_owned()),
        ("--send-timeout-ms", "2000".to_owned()),
        ("--claim-ms", "3000".to_owned()),
        ("--poll-ms", "50".to_owned()),
    ];
    for (flag, value) in defaults {
        if !given.contains(&flag) {
            args.extend([flag.to_owned(), value]);
        }
    }
    args.extend(given.iter().map(|a| (*a).to_owned()));
    Ok(args)
}

/// A coordinator on `db` (on `addr`, or a port of its own), calling `[inventory, orders,
/// payments, waiting room, notifier]`.
async fn start_coordinator(
    addr: Option<std::net::SocketAddr>,
    db: &TestDatabase,
    services: &[&ServiceProcess; 5],
    options: &MeshOptions<'_>,
) -> anyhow::Result<ServiceProcess> {
    let url = db.url();
    let [inventory, orders, payments, waiting_room, notifier] =
        services.map(ServiceProcess::endpoint);
    let mut args = vec![
        "--database-url",
        url.as_str(),
        "--inventory-endpoint",
        inventory.as_str(),
        "--orders-endpoint",
        orders.as_str(),
        "--payments-endpoint",
        payments.as_str(),
        "--waiting-room-endpoint",
        waiting_room.as_str(),
        "--notifier-endpoint",
        notifier.as_str(),
    ];
    // Recovery every half second, unless the test says otherwise.
    if !options.coordinator_args.contains(&"--recovery-interval-ms") {
        args.extend(["--recovery-interval-ms", "500"]);
    }
    args.extend(options.coordinator_args.iter().copied());
    let env: Vec<(&str, &str)> = options
        .env
        .iter()
        .chain(&options.coordinator_env)
        .copied()
        .collect();
    let addr = addr.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    ServiceProcess::start_on(addr, service_binary("coordinator"), &args, &env)
        .await
        .context("the coordinator starts")
}
