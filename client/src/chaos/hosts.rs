//! The lab on hosts of its own: every service and coordinator runs in a network
//! namespace with its own address (`local_mesh::netns`), as if on its own machine,
//! and the coordinators call the participants on their hosts directly. The stores stay
//! on loopback and are reached through forwarders on the bridge's address, so a rule in
//! one host (its traffic to the log's forwarder dropped) cuts that host alone from
//! PostgreSQL while every other host still reaches it. The nemesis cuts links with
//! labelled iptables DROP rules inside a host, and reads what each rule dropped.

use std::net::SocketAddr;

use anyhow::Context;
use local_mesh::netns::{Counters, Host, Network, Rule};
use local_mesh::{PrivateDynamo, PrivatePostgres, PrivateRedis};

use crate::chaos::proxy::Proxy;

/// Where the lab's processes run and talk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// Every process on the machine's loopback, a proxy in front of each participant.
    Loopback,
    /// Every service on a host of its own; links cut with iptables.
    Hosts,
}

impl Topology {
    pub fn name(self) -> &'static str {
        match self {
            Topology::Loopback => "loopback",
            Topology::Hosts => "hosts",
        }
    }
}

/// The ports the services listen on, each on its own host's address.
pub const COORDINATOR_PORT: u16 = 50050;
pub const INVENTORY_PORT: u16 = 50051;
pub const ORDERS_PORT: u16 = 50052;
pub const PAYMENTS_PORT: u16 = 50053;
pub const ROOM_PORT: u16 = 50054;

/// A rule in force in one host, as the nemesis set it.
pub struct Cut {
    pub host: Host,
    pub rule: Rule,
}

/// What a rule dropped while it was in force.
pub struct Dropped {
    pub host: Host,
    pub rule: Rule,
    pub counters: Counters,
}

impl Dropped {
    /// "iptables in payments (10.213.7.4) dropped 57 packets (4320 bytes): label".
    pub fn describe(&self) -> String {
        format!(
            "iptables in {} ({}) dropped {} packets ({} bytes): {}",
            self.host.name,
            self.host.addr,
            self.counters.packets,
            self.counters.bytes,
            self.rule.label
        )
    }
}

/// The network, the stores' forwarders, and the rules in force.
pub struct Hosts {
    postgres: Proxy,
    redis: Proxy,
    dynamodb: Proxy,
    cuts: Vec<Cut>,
    /// Last: removed after every process on it has been stopped.
    network: Network,
}

impl Hosts {
    /// Says, before the lab starts anything, whether hosts can be made here (and how to
    /// make them possible when not).
    pub fn preflight() -> anyhow::Result<()> {
        Network::preflight()
            .context("the partition scenarios run each process of the lab on a host of its own")
    }

    /// A network, and forwarders on its bridge to the stores.
    pub async fn start(
        pg: &PrivatePostgres,
        redis: &PrivateRedis,
        dynamo: &PrivateDynamo,
    ) -> anyhow::Result<Self> {
        let network = tokio::task::spawn_blocking(Network::create)
            .await?
            .context("making the lab's hosts")?;
        let on_bridge = SocketAddr::from((network.gateway(), 0));
        Ok(Self {
            postgres: Proxy::start_on(on_bridge, pg.addr()).await?,
            redis: Proxy::start_on(on_bridge, redis.addr()).await?,
            dynamodb: Proxy::start_on(on_bridge, dynamo.addr()).await?,
            cuts: Vec::new(),
            network,
        })
    }

    /// The host named `name`, made on first use.
    pub fn host(&mut self, name: &str) -> anyhow::Result<Host> {
        if let Some(host) = self.network.host(name) {
            return Ok(host.clone());
        }
        tokio::task::block_in_place(|| self.network.add_host(name))
    }

    /// The forwarder to PostgreSQL: the log of every coordinator (and the participants'
    /// databases) as the hosts reach it.
    pub fn postgres(&self) -> SocketAddr {
        self.postgres.addr()
    }

    /// `url` (a store's loopback URL) as a host reaches it: through its forwarder.
    pub fn pg_url(&self, pg: &PrivatePostgres, database: &str) -> String {
        via(&pg.url(database), pg.addr(), self.postgres.addr())
    }

    pub fn redis_url(&self, redis: &PrivateRedis) -> String {
        via(&redis.url(), redis.addr(), self.redis.addr())
    }

    pub fn dynamodb_endpoint(&self, dynamo: &PrivateDynamo) -> String {
        via(&dynamo.endpoint(), dynamo.addr(), self.dynamodb.addr())
    }

    /// Puts `rule` in force in `host`.
    pub fn cut(&mut self, host: &Host, rule: Rule) -> anyhow::Result<()> {
        tokio::task::block_in_place(|| host.drop_traffic(&rule))?;
        self.cuts.push(Cut {
            host: host.clone(),
            rule,
        });
        Ok(())
    }

    /// What each rule in force has dropped so far.
    pub fn dropped(&self) -> anyhow::Result<Vec<Dropped>> {
        tokio::task::block_in_place(|| {
            self.cuts
                .iter()
                .map(|cut| {
                    Ok(Dropped {
                        host: cut.host.clone(),
                        rule: cut.rule.clone(),
                        counters: cut.host.dropped(&cut.rule)?.unwrap_or_default(),
                    })
                })
                .collect()
        })
    }

    /// Removes every rule in force; what each dropped until then.
    pub fn heal(&mut self) -> anyhow::Result<Vec<Dropped>> {
        let dropped = self.dropped()?;
        tokio::task::block_in_place(|| {
            for cut in self.cuts.drain(..) {
                cut.host.allow_traffic(&cut.rule)?;
            }
            anyhow::Ok(())
        })?;
        Ok(dropped)
    }
}

/// `url` with its loopback `from` address replaced by `to`.
fn via(url: &str, from: SocketAddr, to: SocketAddr) -> String {
    url.replace(&from.to_string(), &to.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_url_goes_through_its_forwarder() {
        let from = SocketAddr::from(([127, 0, 0, 1], 41000));
        let to = SocketAddr::from(([10, 213, 7, 1], 39000));
        assert_eq!(
            via(
                "postgres://ticketdrop@127.0.0.1:41000/coordinator",
                from,
                to
            ),
            "postgres://ticketdrop@10.213.7.1:39000/coordinator"
        );
    }
}
