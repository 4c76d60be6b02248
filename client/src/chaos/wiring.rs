//! How the lab's processes are placed and wired: on loopback or on a host of their own,
//! and the coordinators' flags (where the log, Redis and each participant are, and the
//! short timings that let faults resolve within a run).

use anyhow::Context;
use local_mesh::{PrivatePostgres, ServiceProcess, service_binary};

use crate::chaos::hosts::Hosts;
use crate::chaos::lab::{NO_NOTIFIER, OWNERSHIP_TTL};

/// Timings the lab's services run with: short, so faults resolve within a run.
const COORDINATOR_ARGS: [&str; 8] = [
    "--recovery-interval-ms",
    "500",
    "--call-timeout-ms",
    "1000",
    "--lease-ttl-ms",
    "1500",
    "--max-backoff-ms",
    "500",
];

/// Where a coordinator finds the rest of the mesh.
pub struct Wiring {
    pub redis_url: String,
    pub inventory: String,
    pub orders: String,
    pub payments: String,
    pub room: String,
}

/// Where a service runs: on loopback (at an address, port 0 for any), or on a host of
/// its own at a port.
pub enum Place {
    Loopback(std::net::SocketAddr),
    Host(local_mesh::netns::Host, u16),
}

impl Place {
    pub fn addr(&self) -> std::net::SocketAddr {
        match self {
            Place::Loopback(addr) => *addr,
            Place::Host(host, port) => std::net::SocketAddr::from((host.addr, *port)),
        }
    }

    pub async fn start(
        &self,
        binary: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<ServiceProcess> {
        let binary = service_binary(binary);
        match self {
            Place::Loopback(addr) => ServiceProcess::start_on(*addr, binary, args, env).await,
            Place::Host(host, port) => {
                ServiceProcess::start_on_host(host, *port, binary, args, env).await
            }
        }
    }
}

pub async fn start_coordinator(
    place: &Place,
    log_url: &str,
    wiring: &Wiring,
    database: &str,
    env: &[(&str, &str)],
) -> anyhow::Result<ServiceProcess> {
    let mut args = vec![
        "--database-url",
        log_url,
        "--redis-url",
        &wiring.redis_url,
        "--inventory-endpoint",
        &wiring.inventory,
        "--orders-endpoint",
        &wiring.orders,
        "--payments-endpoint",
        &wiring.payments,
        "--waiting-room-endpoint",
        &wiring.room,
        // The lab does not run a notifier: its purchases' confirmations stay in the
        // lab's outbox (the relay retries with backoff against a port nobody serves).
        "--notifier-endpoint",
        NO_NOTIFIER,
    ];
    args.extend(COORDINATOR_ARGS);
    // Its default name in the log is the machine's host name and its port, which the
    // hosts (network namespaces, one UTS) all share: named as its own machine would be.
    let instance_id = match place {
        Place::Host(host, port) => format!("{}:{port}", host.name),
        Place::Loopback(_) => String::new(),
    };
    if !instance_id.is_empty() {
        args.extend(["--instance-id", &instance_id]);
    }
    let ttl = OWNERSHIP_TTL.as_millis().to_string();
    let mut env = env.to_vec();
    env.push(("TICKETDROP_COORDINATOR_OWNERSHIP_TTL_MS", &ttl));
    place
        .start("coordinator", &args, &env)
        .await
        .with_context(|| format!("starting the coordinator on {database}"))
}

/// Where the service `name` runs: its own host at `port` when the lab has hosts, any
/// loopback port otherwise.
pub fn place(hosts: &mut Option<Hosts>, name: &str, port: u16) -> anyhow::Result<Place> {
    Ok(match hosts {
        Some(hosts) => Place::Host(hosts.host(name)?, port),
        None => Place::Loopback(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
    })
}

/// The URL of the lab's `database` as the coordinators reach it.
pub fn log_url(pg: &PrivatePostgres, hosts: Option<&Hosts>, database: &str) -> String {
    hosts.map_or_else(|| pg.url(database), |hosts| hosts.pg_url(pg, database))
}
