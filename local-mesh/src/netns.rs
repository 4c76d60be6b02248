//! Hosts on a private network, for tests that need processes on separate machines and
//! real partitions between them: each host is a Linux network namespace with its own
//! address in a private /24, joined by a veth pair to a bridge in the root namespace
//! (which holds the /24's first address and is every host's default route). A process
//! is put on a host with `ip netns exec` (which execs: the pid, and so SIGKILL / SIGSTOP,
//! stay the process's own), and links are cut with iptables rules inside a host.
//!
//! Every name carries the creating process's pid (`td<pid>-…`), so a network left behind
//! by a process that died without cleaning up (SIGKILL) is recognised and removed by the
//! next [`Network::create`]; a live one is removed when dropped, panics included.

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{Context, bail};

/// The /24s a network may take: `10.213.<n>.0/24`.
const SUBNET_PREFIX: [u8; 2] = [10, 213];

/// What the lab needs and how to get it, said when namespaces cannot be made here.
pub const NEEDS: &str = "hosts of their own need Linux network namespaces, veth pairs, a \
     bridge and iptables: run as root (or with CAP_SYS_ADMIN and CAP_NET_ADMIN), with \
     iproute2 and iptables installed (`apt-get install iproute2 iptables`; \
     `scripts/stack.sh install` does it)";

/// A private network of hosts, removed when dropped.
pub struct Network {
    /// `td<pid>`: the prefix of every name this network made.
    tag: String,
    bridge: String,
    subnet: u8,
    hosts: Vec<Host>,
}

/// One host of a [`Network`]: a namespace and its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// What the host is, for people reading a report ("coordinator", "payments").
    pub name: String,
    /// The network namespace's name.
    pub netns: String,
    pub addr: Ipv4Addr,
    /// The root end of the host's veth pair.
    veth: String,
}

impl Network {
    /// Checks, without leaving anything behind, that namespaces, veth pairs and iptables
    /// inside a namespace work here; the error says what is missing and how to get it.
    pub fn preflight() -> anyhow::Result<()> {
        let probe = format!("td{}-probe", std::process::id());
        // Hosts' veths count from v1: v0 is never a live network's.
        let bridge = format!("td{}v0", std::process::id());
        let result = (|| {
            ip(&["netns", "add", &probe])?;
            run(
                "ip",
                &[
                    "netns", "exec", &probe, "iptables", "-w", "-L", "OUTPUT", "-n",
                ],
            )?;
            ip(&["link", "add", &bridge, "type", "bridge"]).map(|_| ())
        })();
        let _ = ip(&["link", "del", &bridge]);
        let _ = ip(&["netns", "del", &probe]);
        result.map(|_| ()).with_context(|| NEEDS)
    }

    /// A fresh network with no host yet, after removing what dead processes left.
    pub fn create() -> anyhow::Result<Self> {
        remove_stale();
        let pid = std::process::id();
        let tag = format!("td{pid}");
        let used = used_subnets()?;
        let subnet = pick_subnet(pid, &used).context("every 10.213.x.0/24 is in use here")?;
        let bridge = format!("{tag}br");
        let network = Self {
            tag,
            bridge: bridge.clone(),
            subnet,
            hosts: Vec::new(),
        };
        ip(&["link", "add", &bridge, "type", "bridge"]).with_context(|| NEEDS)?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", network.gateway()),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        Ok(network)
    }

    /// The bridge's address: what every host reaches the root namespace on.
    pub fn gateway(&self) -> Ipv4Addr {
        address(self.subnet, 1)
    }

    /// Adds a host named `name` (unique in the network) with the next free address.
    pub fn add_host(&mut self, name: &str) -> anyhow::Result<Host> {
        let index = self.hosts.len() + 1;
        let Ok(last) = u8::try_from(index + 1).map(|n| n.min(254)) else {
            bail!("a network holds at most 253 hosts");
        };
        let host = Host {
            name: name.to_owned(),
            netns: format!("{}-{name}", self.tag),
            addr: address(self.subnet, last),
            veth: format!("{}v{index}", self.tag),
        };
        ip(&["netns", "add", &host.netns]).with_context(|| NEEDS)?;
        // Pushed at once, so a failure below still removes the namespace on drop.
        self.hosts.push(host.clone());
        ip(&[
            "link",
            "add",
            &host.veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &host.netns,
        ])?;
        ip(&["link", "set", &host.veth, "master", &self.bridge, "up"])?;
        let inside = |args: &[&str]| {
            let mut all = vec!["-n", host.netns.as_str()];
            all.extend(args);
            ip(&all)
        };
        inside(&["link", "set", "lo", "up"])?;
        inside(&["addr", "add", &format!("{}/24", host.addr), "dev", "eth0"])?;
        inside(&["link", "set", "eth0", "up"])?;
        inside(&[
            "route",
            "add",
            "default",
            "via",
            &self.gateway().to_string(),
        ])?;
        Ok(host)
    }

    /// The host named `name`, if added.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for host in &self.hosts {
            let _ = ip(&["link", "del", &host.veth]);
            let _ = ip(&["netns", "del", &host.netns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

impl Host {
    /// The command prefix that runs a program on this host.
    pub fn exec_prefix(&self) -> [String; 4] {
        ["ip", "netns", "exec", &self.netns].map(str::to_owned)
    }

    /// Runs iptables inside the host (waiting for the xtables lock); its stdout.
    pub fn iptables(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["netns", "exec", self.netns.as_str(), "iptables", "-w"];
        all.extend(args);
        run("ip", &all)
    }

    /// Inserts `rule` (a DROP, labelled with its comment) at the top of its chain.
    pub fn drop_traffic(&self, rule: &Rule) -> anyhow::Result<()> {
        self.iptables(&rule.command("-I"))
            .map(|_| ())
            .with_context(|| format!("cutting {} on {}", rule.label, self.name))
    }

    /// Deletes `rule`.
    pub fn allow_traffic(&self, rule: &Rule) -> anyhow::Result<()> {
        self.iptables(&rule.command("-D"))
            .map(|_| ())
            .with_context(|| format!("healing {} on {}", rule.label, self.name))
    }

    /// What `rule` has dropped so far: packets and bytes (None when it is not in force).
    pub fn dropped(&self, rule: &Rule) -> anyhow::Result<Option<Counters>> {
        let listing = self.iptables(&["-L", rule.chain.name(), "-v", "-x", "-n"])?;
        Ok(counters(&listing, &rule.label))
    }
}

/// The chain a rule sits in: what the host receives, or what it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    Input,
    Output,
}

impl Chain {
    fn name(self) -> &'static str {
        match self {
            Chain::Input => "INPUT",
            Chain::Output => "OUTPUT",
        }
    }
}

/// A DROP rule inside one host: a chain, what it matches, and a label (its comment, by
/// which its counters are found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub chain: Chain,
    pub matches: Vec<String>,
    pub label: String,
}

impl Rule {
    /// Everything the host sends, or receives, except on its loopback: the host is cut off.
    pub fn all_but_loopback(chain: Chain, label: &str) -> Self {
        let interface = match chain {
            Chain::Input => "-i",
            Chain::Output => "-o",
        };
        Self::new(chain, &["!", interface, "lo"], label)
    }

    /// Packets sent to `peer`.
    pub fn to(peer: Ipv4Addr, label: &str) -> Self {
        Self::new(Chain::Output, &["-d", &format!("{peer}/32")], label)
    }

    /// Packets received from `peer`.
    pub fn from(peer: Ipv4Addr, label: &str) -> Self {
        Self::new(Chain::Input, &["-s", &format!("{peer}/32")], label)
    }

    /// TCP packets sent to `peer`'s `port`.
    pub fn to_port(peer: Ipv4Addr, port: u16, label: &str) -> Self {
        Self::new(
            Chain::Output,
            &[
                "-d",
                &format!("{peer}/32"),
                "-p",
                "tcp",
                "--dport",
                &port.to_string(),
            ],
            label,
        )
    }

    fn new(chain: Chain, matches: &[&str], label: &str) -> Self {
        Self {
            chain,
            matches: matches.iter().map(|m| (*m).to_owned()).collect(),
            label: label.to_owned(),
        }
    }

    /// The iptables arguments that insert (`-I`) or delete (`-D`) the rule.
    fn command<'a>(&'a self, action: &'a str) -> Vec<&'a str> {
        let mut args = vec![action, self.chain.name()];
        args.extend(self.matches.iter().map(String::as_str));
        args.extend(["-m", "comment", "--comment", &self.label, "-j", "DROP"]);
        args
    }
}

/// Packets and bytes a rule matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

/// The counters of the DROP rule commented `label` in `iptables -L CHAIN -v -x -n`'s
/// listing (lines: pkts bytes target prot opt in out source destination [/* label */]).
pub fn counters(listing: &str, label: &str) -> Option<Counters> {
    let comment = format!("/* {label} */");
    listing
        .lines()
        .filter(|line| line.contains(&comment))
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            let packets = fields.next()?.parse().ok()?;
            let bytes = fields.next()?.parse().ok()?;
            (fields.next()? == "DROP").then_some(Counters { packets, bytes })
        })
}

/// The third octet of a free `10.213.x.0/24`, starting from one derived from `pid` (so
/// concurrent labs rarely probe the same ones), skipping `used`.
pub fn pick_subnet(pid: u32, used: &[u8]) -> Option<u8> {
    let start = (pid % 250) as u8;
    (0..250u8)
        .map(|offset| ((u16::from(start) + u16::from(offset)) % 250) as u8 + 1)
        .find(|candidate| !used.contains(candidate))
}

/// The /24s of `10.213.x.0` some interface of the root namespace already has.
fn used_subnets() -> anyhow::Result<Vec<u8>> {
    Ok(subnets_in(&ip(&["-o", "-4", "addr", "show"])?))
}

/// The third octets of `10.213.x.y` addresses in `ip -o -4 addr show`'s output.
fn subnets_in(listing: &str) -> Vec<u8> {
    let prefix = format!("{}.{}.", SUBNET_PREFIX[0], SUBNET_PREFIX[1]);
    listing
        .split_whitespace()
        .filter_map(|word| word.strip_prefix(&prefix))
        .filter_map(|rest| rest.split('.').next()?.parse().ok())
        .collect()
}

fn address(subnet: u8, last: u8) -> Ipv4Addr {
    Ipv4Addr::new(SUBNET_PREFIX[0], SUBNET_PREFIX[1], subnet, last)
}

/// The pid in a name this module made (`td<pid>-…`, `td<pid>br`, `td<pid>v<n>`).
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("td")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let after = &rest[digits.len()..];
    let ours = after.starts_with('-') || after == "br" || after.starts_with('v');
    ours.then(|| digits.parse().ok()).flatten()
}

/// Removes the namespaces and bridges of processes that no longer run.
fn remove_stale() {
    let dead = |name: &str| {
        owner_pid(name).is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
    };
    if let Ok(list) = ip(&["netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if dead(name) {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
    if let Ok(links) = ip(&["-o", "link", "show"]) {
        for name in links
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n))
        {
            if dead(name) {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    run("ip", args)
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} (is it installed?)"))?;
    if !output.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counters_of_a_labelled_drop_rule_are_read_from_the_listing() {
        let listing = "\
Chain OUTPUT (policy ACCEPT 120 packets, 9000 bytes)
    pkts      bytes target     prot opt in     out     source               destination
      57     4320 DROP       0    --  *      *       0.0.0.0/0            10.213.7.4           /* to-payments */
       0        0 DROP       6    --  *      *       0.0.0.0/0            10.213.7.1           tcp dpt:40123 /* to-the-log */
";
        assert_eq!(
            counters(listing, "to-payments"),
            Some(Counters {
                packets: 57,
                bytes: 4320
            })
        );
        assert_eq!(counters(listing, "to-the-log"), Some(Counters::default()));
        assert_eq!(counters(listing, "to-inventory"), None);
    }

    #[test]
    fn a_subnet_is_picked_from_the_pid_and_skips_those_in_use() {
        assert_eq!(pick_subnet(7, &[]), Some(8));
        assert_eq!(pick_subnet(7, &[8, 9]), Some(10));
        assert_eq!(pick_subnet(249, &[250]), Some(1));
        let all: Vec<u8> = (1..=250).collect();
        assert_eq!(pick_subnet(3, &all), None);
    }

    #[test]
    fn subnets_in_use_are_read_from_ip_addr() {
        let listing = "\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
5: td42br    inet 10.213.43.1/24 scope global td42br\\       valid_lft forever
6: podman1    inet 10.89.0.1/24 brd 10.89.0.255 scope global podman1";
        assert_eq!(subnets_in(listing), vec![43]);
    }

    #[test]
    fn only_names_this_module_made_are_owned_by_a_pid() {
        assert_eq!(owner_pid("td1234-coordinator"), Some(1234));
        assert_eq!(owner_pid("td1234br"), Some(1234));
        assert_eq!(owner_pid("td1234v3"), Some(1234));
        assert_eq!(owner_pid("td1234"), None);
        assert_eq!(owner_pid("tdx-coordinator"), None);
        assert_eq!(owner_pid("podman1"), None);
        assert_eq!(owner_pid("eth0"), None);
    }

    /// Whether `host` opens a TCP connection to `addr:port` within 2 s (bash's /dev/tcp).
    fn connects(host: &Host, addr: Ipv4Addr, port: u16) -> bool {
        let script = format!("exec 3<>/dev/tcp/{addr}/{port}");
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &host.netns,
                "timeout",
                "2",
                "bash",
                "-c",
                &script,
            ])
            .status()
            .is_ok_and(|status| status.success())
    }

    #[test]
    fn a_network_connects_its_hosts_cuts_a_link_and_leaves_nothing_behind() {
        let mut network = Network::create().expect("namespaces work here (we run as root)");
        let host = network.add_host("a").expect("a host");
        let listener = std::net::TcpListener::bind((network.gateway(), 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert!(
            connects(&host, network.gateway(), port),
            "the host reaches the bridge"
        );
        let rule = Rule::to_port(network.gateway(), port, "to-the-test");
        host.drop_traffic(&rule).expect("cut");
        assert!(!connects(&host, network.gateway(), port), "cut");
        let dropped = host.dropped(&rule).expect("listed").expect("in force");
        assert!(dropped.packets > 0 && dropped.bytes > 0, "{dropped:?}");
        host.allow_traffic(&rule).expect("heal");
        assert_eq!(host.dropped(&rule).expect("listed"), None);
        assert!(connects(&host, network.gateway(), port), "healed");
        let netns = host.netns.clone();
        drop(network);
        let left = ip(&["netns", "list"]).expect("ip netns list");
        assert!(!left.contains(&netns), "removed: {left}");
    }
}
