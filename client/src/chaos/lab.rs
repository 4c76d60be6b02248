//! The lab's own mesh: a private PostgreSQL, DynamoDB Local and Redis (so killing a
//! store never touches `make up`'s stack), the five services as real processes, and
//! either a TCP proxy between the coordinator and each participant (on loopback) or
//! every service on a host of its own (`hosts.rs`). Every process is a target the
//! nemesis can kill, pause, resume and restart.

use std::time::Duration;

use anyhow::Context;
use local_mesh::{PrivateDynamo, PrivatePostgres, PrivateRedis, ServiceProcess, service_binary};
use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use serde::Serialize;
use server_kit::outgoing::MeshChannel;

use crate::chaos::hosts::{self, Hosts, Topology};
use crate::chaos::proxy::{Mode, Proxy};
use crate::chaos::wiring::{Place, Wiring, log_url, place, start_coordinator};
use crate::stores::Stores;

/// A process the nemesis acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    Coordinator,
    Inventory,
    Orders,
    Payments,
    WaitingRoom,
    Postgres,
    Dynamodb,
    Redis,
}

impl Target {
    pub const ALL: [Target; 8] = [
        Target::Coordinator,
        Target::Inventory,
        Target::Orders,
        Target::Payments,
        Target::WaitingRoom,
        Target::Postgres,
        Target::Dynamodb,
        Target::Redis,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Coordinator => "coordinator",
            Target::Inventory => "inventory-pg",
            Target::Orders => "orders-dynamo",
            Target::Payments => "payments",
            Target::WaitingRoom => "waiting-room",
            Target::Postgres => "postgres",
            Target::Dynamodb => "dynamodb",
            Target::Redis => "redis",
        }
    }
}

/// A participant behind a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Link {
    Inventory,
    Orders,
    Payments,
}

/// How long a coordinator owns a purchase without renewing it, in the lab: a dead or
/// paused coordinator's purchases pass to another within about this long.
pub const OWNERSHIP_TTL: Duration = Duration::from_millis(1_500);

pub struct Lab {
    pub pg: PrivatePostgres,
    pub redis: PrivateRedis,
    pub dynamo: PrivateDynamo,
    pub inventory: ServiceProcess,
    pub orders: ServiceProcess,
    pub payments: ServiceProcess,
    pub room: ServiceProcess,
    pub coordinator: ServiceProcess,
    /// More coordinators on the lab's log, serving the fans beside `coordinator` (the
    /// scenarios of several coordinators).
    pub peers: Vec<ServiceProcess>,
    /// A coordinator with a log of its own (a second cluster) on the same participants.
    pub rival: Option<ServiceProcess>,
    /// On loopback: the proxy in front of each participant.
    proxies: Option<[Proxy; 3]>,
    table: String,
    /// Failpoints kept in force across every restart, per service (a test build's
    /// lying inspection): added to whatever a scenario arms.
    always: Vec<(Target, String)>,
    wiring: Wiring,
    pub topology: Topology,
    /// On hosts: the network (last: removed once every process on it has stopped).
    hosts: Option<Hosts>,
}

impl Lab {
    /// Starts the stores, the services, and the proxies (on loopback) or the hosts.
    pub async fn start(topology: Topology) -> anyhow::Result<Self> {
        let pg = tokio::task::spawn_blocking(PrivatePostgres::start).await??;
        let redis = PrivateRedis::start()?;
        let dynamo = tokio::task::spawn_blocking(PrivateDynamo::start).await??;
        create_databases(&pg).await?;
        let mut hosts = match topology {
            Topology::Hosts => Some(Hosts::start(&pg, &redis, &dynamo).await?),
            Topology::Loopback => None,
        };
        let table = local_mesh::unique_name("chaos_orders");
        let (inventory_url, payments_url, redis_url, dynamo_endpoint) = match &hosts {
            Some(hosts) => (
                hosts.pg_url(&pg, "inventory"),
                hosts.pg_url(&pg, "payments"),
                hosts.redis_url(&redis),
                hosts.dynamodb_endpoint(&dynamo),
            ),
            None => (
                pg.url("inventory"),
                pg.url("payments"),
                redis.url(),
                dynamo.endpoint(),
            ),
        };
        let inventory_args = [
            "--database-url",
            &inventory_url,
            "--sweep-interval-ms",
            "200",
        ];
        let orders_args = ["--table", &table, "--dynamodb-endpoint", &dynamo_endpoint];
        let payments_args = ["--database-url", &payments_url];
        let places = [
            place(&mut hosts, "inventory-pg", hosts::INVENTORY_PORT)?,
            place(&mut hosts, "orders-dynamo", hosts::ORDERS_PORT)?,
            place(&mut hosts, "payments", hosts::PAYMENTS_PORT)?,
        ];
        let (inventory, orders, payments) = tokio::try_join!(
            places[0].start("inventory-pg", &inventory_args, &[]),
            places[1].start("orders-dynamo", &orders_args, &[]),
            places[2].start("payments", &payments_args, &[]),
        )
        .context("starting the participants")?;
        // The room asks the lab's coordinator about purchases: its address is chosen first.
        let coordinator_place = match hosts {
            Some(_) => place(&mut hosts, "coordinator", hosts::COORDINATOR_PORT)?,
            None => Place::Loopback(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                local_mesh::free_port()?,
            ))),
        };
        let room = place(&mut hosts, "waiting-room", hosts::ROOM_PORT)?
            .start(
                "waiting-room",
                &[
                    "--redis-url",
                    &redis_url,
                    "--inventory-endpoint",
                    &inventory.endpoint(),
                    "--coordinator-endpoint",
                    &format!("http://{}", coordinator_place.addr()),
                    "--tick-ms",
                    "20",
                ],
                &[],
            )
            .await
            .context("starting the waiting room")?;
        let proxies = match topology {
            Topology::Loopback => Some([
                Proxy::start(inventory.addr()).await?,
                Proxy::start(orders.addr()).await?,
                Proxy::start(payments.addr()).await?,
            ]),
            Topology::Hosts => None,
        };
        // On hosts the coordinators call the participants on their hosts.
        let [inventory_endpoint, orders_endpoint, payments_endpoint] = match &proxies {
            Some(proxies) => proxies.each_ref().map(Proxy::endpoint),
            None => [&inventory, &orders, &payments].map(ServiceProcess::endpoint),
        };
        let wiring = Wiring {
            redis_url,
            inventory: inventory_endpoint,
            orders: orders_endpoint,
            payments: payments_endpoint,
            room: room.endpoint(),
        };
        let log_url = log_url(&pg, hosts.as_ref(), "coordinator");
        let coordinator =
            start_coordinator(&coordinator_place, &log_url, &wiring, "coordinator", &[]).await?;
        Ok(Self {
            pg,
            redis,
            dynamo,
            inventory,
            orders,
            payments,
            room,
            coordinator,
            peers: Vec::new(),
            rival: None,
            proxies,
            table,
            always: Vec::new(),
            wiring,
            topology,
            hosts,
        })
    }

    /// Where the audit reads: this lab's stores, and every log of the run.
    pub fn stores(&self) -> Stores {
        Stores {
            inventory_db: self.pg.url("inventory"),
            payments_db: self.pg.url("payments"),
            coordinator_db: self.logs().into_iter().map(|db| self.pg.url(db)).collect(),
            // The lab runs no notifier (its purchases ask for no confirmation).
            notifier_db: None,
            dynamodb_endpoint: self.dynamo.endpoint(),
            orders_table: self.table.clone(),
            redis_url: self.redis.url(),
            room_prefix: "room".to_owned(),
        }
    }

    pub fn inventory_endpoint(&self) -> String {
        self.inventory.endpoint()
    }

    pub fn payments_endpoint(&self) -> String {
        self.payments.endpoint()
    }

    /// A client of each cluster: the lab's (its coordinator and its peers, the calls
    /// spread over them), and the rival's when one runs. Channels are lazy: a restarted
    /// coordinator on the same port is found again.
    pub fn coordinators(&self) -> anyhow::Result<Vec<CoordinatorServiceClient<MeshChannel>>> {
        let lab: Vec<String> = std::iter::once(&self.coordinator)
            .chain(&self.peers)
            .map(ServiceProcess::endpoint)
            .collect();
        let mut clients = vec![lazy_client(&lab.join(","))?];
        if let Some(rival) = &self.rival {
            clients.push(lazy_client(&rival.endpoint())?);
        }
        Ok(clients)
    }

    /// Starts one more coordinator on the lab's log; returns its index in `peers`.
    pub async fn start_peer(&mut self) -> anyhow::Result<usize> {
        let name = format!("coordinator-peer{}", self.peers.len() + 1);
        let place = place(&mut self.hosts, &name, hosts::COORDINATOR_PORT)?;
        let log_url = log_url(&self.pg, self.hosts.as_ref(), "coordinator");
        let peer = start_coordinator(&place, &log_url, &self.wiring, "coordinator", &[]).await?;
        self.peers.push(peer);
        Ok(self.peers.len() - 1)
    }

    pub async fn stop_peers(&mut self) -> anyhow::Result<()> {
        for mut peer in self.peers.drain(..) {
            if peer.is_running() {
                peer.resume().ok();
                peer.terminate().await?;
            }
        }
        Ok(())
    }

    /// The log database of each coordinator, in the order of [`Self::coordinators`].
    pub fn logs(&self) -> Vec<&'static str> {
        if self.rival.is_some() {
            vec!["coordinator", "coordinator_rival"]
        } else {
            vec!["coordinator"]
        }
    }

    fn service(&mut self, target: Target) -> Option<&mut ServiceProcess> {
        match target {
            Target::Coordinator => Some(&mut self.coordinator),
            Target::Inventory => Some(&mut self.inventory),
            Target::Orders => Some(&mut self.orders),
            Target::Payments => Some(&mut self.payments),
            Target::WaitingRoom => Some(&mut self.room),
            Target::Postgres | Target::Dynamodb | Target::Redis => None,
        }
    }

    /// SIGKILL; returns what shows it happened (how the process ended), or None when it
    /// was not running.
    pub async fn kill(&mut self, target: Target) -> anyhow::Result<Option<String>> {
        let status = match target {
            Target::Postgres => {
                let killed = self.pg.kill()?;
                return Ok((killed > 0)
                    .then(|| format!("postgres: SIGKILL to its {killed} processes, all gone")));
            }
            Target::Dynamodb => self.dynamo.kill()?,
            Target::Redis => self.redis.kill()?,
            _ => {
                let service = self.service(target).expect("a service");
                if service.is_running() {
                    Some(service.kill().await?)
                } else {
                    None
                }
            }
        };
        Ok(status
            .filter(|status| signal_of(status) == Some(9))
            .map(|status| format!("{}: {status}", target.name())))
    }

    /// How a service that is no longer running ended (None while it runs).
    pub fn exit_status(&mut self, target: Target) -> Option<std::process::ExitStatus> {
        self.service(target).and_then(ServiceProcess::exit_status)
    }

    /// A service's log so far, every start of it.
    pub fn log(&mut self, target: Target) -> String {
        self.service(target).map(|s| s.log()).unwrap_or_default()
    }

    /// SIGSTOP.
    pub fn pause(&mut self, target: Target) -> anyhow::Result<()> {
        match target {
            Target::Postgres => self.pg.pause(),
            Target::Dynamodb => self.dynamo.pause(),
            Target::Redis => self.redis.pause(),
            _ => self.service(target).expect("a service").pause(),
        }
    }

    /// SIGCONT.
    pub fn resume(&mut self, target: Target) -> anyhow::Result<()> {
        match target {
            Target::Postgres => self.pg.resume(),
            Target::Dynamodb => self.dynamo.resume(),
            Target::Redis => self.redis.resume(),
            _ => self.service(target).expect("a service").resume(),
        }
    }

    pub fn is_running(&mut self, target: Target) -> bool {
        match target {
            Target::Postgres => self.pg.is_running(),
            Target::Dynamodb => self.dynamo.is_running(),
            Target::Redis => self.redis.is_running(),
            _ => self.service(target).expect("a service").is_running(),
        }
    }

    /// Starts a killed (or crashed) process again on the same address and data.
    pub async fn start_again(&mut self, target: Target) -> anyhow::Result<()> {
        match target {
            Target::Postgres => {
                // A killed postmaster's shared memory may linger a moment.
                let mut last = None;
                for _ in 0..50 {
                    match self.pg.start_server() {
                        Ok(()) => return Ok(()),
                        Err(error) => last = Some(error),
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(last.expect("tried at least once"))
            }
            Target::Dynamodb => tokio::task::block_in_place(|| self.dynamo.restart()),
            Target::Redis => self.redis.restart(),
            _ => self.service(target).expect("a service").restart().await,
        }
    }

    /// Keeps `spec` in force in `target` from now on, across every restart.
    pub async fn keep_failpoints(&mut self, target: Target, spec: &str) -> anyhow::Result<()> {
        self.always.push((target, spec.to_owned()));
        self.set_failpoints(target, None).await
    }

    /// Restarts a service with the failpoints `spec` (`FAILPOINTS`), or none (beside the
    /// ones kept in force).
    pub async fn set_failpoints(
        &mut self,
        target: Target,
        spec: Option<&str>,
    ) -> anyhow::Result<()> {
        let specs: Vec<&str> = self
            .always
            .iter()
            .filter(|(t, _)| *t == target)
            .map(|(_, spec)| spec.as_str())
            .chain(spec)
            .collect();
        let spec = (!specs.is_empty()).then(|| specs.join(";"));
        let service = self
            .service(target)
            .context("failpoints live in services")?;
        service.set_env("FAILPOINTS", spec.as_deref());
        if service.is_running() {
            service.terminate().await?;
        }
        service.restart().await
    }

    /// Restarts the lab's coordinator with an extra environment variable (or without).
    pub async fn set_coordinator_env(
        &mut self,
        key: &str,
        value: Option<&str>,
    ) -> anyhow::Result<()> {
        self.coordinator.set_env(key, value);
        if self.coordinator.is_running() {
            self.coordinator.terminate().await?;
        }
        self.coordinator.restart().await
    }

    /// The proxy in front of a participant (on loopback only).
    pub fn proxy(&self, link: Link) -> anyhow::Result<&Proxy> {
        let proxies = self.proxies.as_ref().context(
            "the proxied links are the loopback lab's; on hosts, links are cut with iptables",
        )?;
        Ok(match link {
            Link::Inventory => &proxies[0],
            Link::Orders => &proxies[1],
            Link::Payments => &proxies[2],
        })
    }

    /// The hosts, and the rules in force in them (on hosts only).
    pub fn hosts(&mut self) -> anyhow::Result<&mut Hosts> {
        self.hosts
            .as_mut()
            .context("this scenario needs the lab on hosts of their own")
    }

    /// Starts the rival coordinator (its own log) with `env`.
    pub async fn start_rival(&mut self, env: &[(&str, &str)]) -> anyhow::Result<()> {
        let place = place(
            &mut self.hosts,
            "coordinator-rival",
            hosts::COORDINATOR_PORT,
        )?;
        let log_url = log_url(&self.pg, self.hosts.as_ref(), "coordinator_rival");
        let rival =
            start_coordinator(&place, &log_url, &self.wiring, "coordinator_rival", env).await?;
        self.rival = Some(rival);
        Ok(())
    }

    pub async fn stop_rival(&mut self) -> anyhow::Result<()> {
        if let Some(mut rival) = self.rival.take()
            && rival.is_running()
        {
            rival.resume().ok();
            rival.terminate().await?;
        }
        Ok(())
    }

    /// Every process running and thawed, every link passing.
    pub async fn heal(&mut self) -> anyhow::Result<()> {
        for proxy in self.proxies.iter().flatten() {
            proxy.set(Mode::Pass);
        }
        if let Some(hosts) = &mut self.hosts {
            hosts.heal()?;
        }
        for target in [Target::Postgres, Target::Dynamodb, Target::Redis] {
            if self.is_running(target) {
                let _ = self.resume(target);
            } else {
                self.start_again(target).await?;
            }
        }
        for target in [
            Target::Inventory,
            Target::Orders,
            Target::Payments,
            Target::WaitingRoom,
            Target::Coordinator,
        ] {
            if self.is_running(target) {
                let _ = self.resume(target);
            } else {
                self.start_again(target).await?;
            }
        }
        for other in self.peers.iter_mut().chain(self.rival.as_mut()) {
            if other.is_running() {
                let _ = other.resume();
            } else {
                other.restart().await?;
            }
        }
        Ok(())
    }
}

async fn create_databases(pg: &PrivatePostgres) -> anyhow::Result<()> {
    let client = crate::stores::postgres("lab", &pg.url("postgres")).await?;
    for db in ["inventory", "payments", "coordinator", "coordinator_rival"] {
        client
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .with_context(|| format!("creating the lab's {db} database"))?;
    }
    Ok(())
}

/// Checks, before the lab starts, that the service binaries it will run can inject the
/// chosen scenarios' faults: built with their failpoints, which `--version` says.
/// `make up`'s release builds have none; `make chaos` builds them.
pub fn check_failpoint_builds(targets: &[Target]) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for target in targets {
        let binary = service_binary(target.name());
        let version = std::process::Command::new(&binary)
            .arg("--version")
            .output()
            .with_context(|| format!("running {} --version", binary.display()))?;
        let version = String::from_utf8_lossy(&version.stdout);
        if !version.contains("(failpoints)") {
            missing.push(format!("{} ({})", binary.display(), version.trim()));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "the chosen scenarios crash services at named failpoints, and these binaries were \
         built without them: {}. Build the lab's services with their failpoints and run \
         the ticketdrop next to them: `make chaos` does both, or `cargo build -p client -p \
         coordinator -p inventory-pg -p orders-dynamo -p payments -p waiting-room --features \
         coordinator/failpoints,inventory-pg/failpoints,orders-dynamo/failpoints,payments/failpoints` \
         then `target/debug/ticketdrop chaos ...`",
        missing.join(", ")
    )
}

/// The signal a process died of, if a signal ended it.
pub fn signal_of(status: &std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

/// Where the lab's coordinator would find a notifier: the discard port, never served.
pub const NO_NOTIFIER: &str = "http://127.0.0.1:9";

/// A client of `endpoints` (one, or several separated by commas: the calls are spread
/// over them).
fn lazy_client(endpoints: &str) -> anyhow::Result<CoordinatorServiceClient<MeshChannel>> {
    Ok(CoordinatorServiceClient::new(MeshChannel::new(
        server_kit::outgoing::lazy_channel(endpoints)?,
        local_mesh::auth::operator(),
    )))
}
