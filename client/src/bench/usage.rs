//! What each process of the local stack spends during a measurement: CPU seconds and
//! peak resident memory, read from /proc. A process is found by the pid file the stack
//! scripts write (`.stack/services/<name>.pid`, `.stack/redis/redis.pid`, ...), and
//! counted with every process below it (PostgreSQL's backends, the JVM under its
//! launcher). The simulated fans (this process) are measured too.
//!
//! The machine is measured over the same window from /proc/stat: the CPU time every core
//! offered, how much of it was busy and how much idle. Each process's share is of that
//! total, so the shares, the rest of the machine (other processes, the kernel) and the
//! idle time add up to 100 %.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

/// The processes measured, by name, each with its pid files: "coordinator" counts every
/// coordinator of the log (`coordinator.pid`, `coordinator-2.pid`, ...).
pub fn processes(stack: &Path) -> Vec<(&'static str, Vec<PathBuf>)> {
    let services = stack.join("services");
    let mut coordinators = vec![services.join("coordinator.pid")];
    if let Ok(entries) = std::fs::read_dir(&services) {
        let mut more: Vec<PathBuf> = entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with("coordinator-") && name.ends_with(".pid"))
            })
            .collect();
        more.sort();
        coordinators.extend(more);
    }
    let mut all: Vec<(&'static str, Vec<PathBuf>)> = vec![("coordinator", coordinators)];
    for service in [
        "inventory-pg",
        "notifier",
        "orders-dynamo",
        "payments",
        "waiting-room",
    ] {
        all.push((service, vec![services.join(format!("{service}.pid"))]));
    }
    all.push(("postgresql", vec![stack.join("pg/data/postmaster.pid")]));
    all.push(("dynamodb-local", vec![stack.join("dynamodb/dynamodb.pid")]));
    all.push(("redis", vec![stack.join("redis/redis.pid")]));
    all.push(("maildev", vec![stack.join("maildev/maildev.pid")]));
    all
}

/// This process: the simulated fans, measured too, and kept apart from the stack's own
/// cost.
pub const FANS: &str = "fans (ticketdrop)";

/// Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;
const PAGE_KIB: u64 = 4;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Usage {
    pub cpu_s: f64,
    pub peak_rss_mib: f64,
}

/// The machine over a measurement's window, from /proc/stat.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Window {
    /// Wall-clock seconds from the meter's start to its stop.
    pub seconds: f64,
    /// CPU seconds every core offered over the window (busy + idle).
    pub offered_cpu_s: f64,
    /// CPU seconds spent by anything (user, system, interrupts, steal).
    pub busy_cpu_s: f64,
    /// CPU seconds no one used (idle and waiting for I/O).
    pub idle_cpu_s: f64,
}

/// A measurement: each process's usage, and the machine's over the same window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Measurement {
    pub processes: BTreeMap<String, Usage>,
    pub window: Window,
}

/// A measurement in progress: CPU at the start, RSS sampled every 100 ms.
pub struct Meter {
    roots: Vec<(&'static str, Vec<u32>)>,
    cpu_before: HashMap<&'static str, f64>,
    machine_before: (u64, u64),
    started: std::time::Instant,
    peaks: Arc<Mutex<HashMap<&'static str, u64>>>,
    sampler: tokio::task::JoinHandle<()>,
}

impl Meter {
    pub fn start(stack: &Path) -> Self {
        let roots: Vec<(&'static str, Vec<u32>)> = processes(stack)
            .into_iter()
            .map(|(name, files)| (name, files.iter().filter_map(|f| read_pid(f)).collect()))
            .chain([(FANS, vec![std::process::id()])])
            .collect();
        let table = process_table();
        let started = std::time::Instant::now();
        let machine_before = machine_ticks();
        let cpu_before = roots
            .iter()
            .map(|(name, pids)| (*name, pids.iter().map(|p| cpu(&table, *p)).sum()))
            .collect();
        let peaks = Arc::new(Mutex::new(HashMap::new()));
        let sampler = tokio::spawn({
            let roots = roots.clone();
            let peaks = peaks.clone();
            async move {
                loop {
                    sample(&roots, &peaks);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        Self {
            roots,
            cpu_before,
            machine_before,
            started,
            peaks,
            sampler,
        }
    }

    /// Each process's CPU since the start and its peak memory, and the machine's CPU over
    /// the same window.
    pub fn stop(self) -> Measurement {
        self.sampler.abort();
        let table = process_table();
        let (busy_after, idle_after) = machine_ticks();
        let seconds = self.started.elapsed().as_secs_f64();
        let peaks = self.peaks.lock().expect("peaks lock");
        let busy = busy_after.saturating_sub(self.machine_before.0) as f64 / TICKS;
        let idle = idle_after.saturating_sub(self.machine_before.1) as f64 / TICKS;
        let window = Window {
            seconds,
            offered_cpu_s: busy + idle,
            busy_cpu_s: busy,
            idle_cpu_s: idle,
        };
        let processes = self
            .roots
            .iter()
            .map(|(name, pids)| {
                let now: f64 = pids.iter().map(|p| cpu(&table, *p)).sum();
                let used = now - self.cpu_before[name];
                let peak = peaks.get(name).copied().unwrap_or(0) * PAGE_KIB;
                (
                    (*name).to_owned(),
                    Usage {
                        // A process that restarted during the window starts its count
                        // again: what it used is then unknown, never negative.
                        cpu_s: used.max(0.0),
                        peak_rss_mib: peak as f64 / 1024.0,
                    },
                )
            })
            .collect();
        Measurement { processes, window }
    }
}

/// The machine's busy and idle CPU ticks since boot, over every core (/proc/stat's "cpu"
/// line: user nice system idle iowait irq softirq steal ...).
fn machine_ticks() -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let at = |i: usize| fields.get(i).copied().unwrap_or(0);
    let idle = at(3) + at(4);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    (busy, idle)
}

/// Raises each process's peak to its resident memory now (summed over the processes of
/// one name).
fn sample(roots: &[(&'static str, Vec<u32>)], peaks: &Mutex<HashMap<&'static str, u64>>) {
    let table = process_table();
    let mut peaks = peaks.lock().expect("peaks lock");
    for (name, pids) in roots {
        let rss: u64 = pids.iter().map(|pid| rss_pages(&table, *pid)).sum();
        let peak = peaks.entry(*name).or_insert(0);
        *peak = (*peak).max(rss);
    }
}

fn read_pid(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// One process as /proc/<pid>/stat and statm give it.
struct Proc {
    parent: u32,
    /// utime + stime of itself, plus cutime + cstime of its children that exited.
    cpu_ticks: u64,
    rss_pages: u64,
}

fn process_table() -> HashMap<u32, Proc> {
    let mut table = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return table;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may hold spaces: the fields start after its closing paren.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
        // ... rss(21).
        table.insert(
            pid,
            Proc {
                parent: field(1) as u32,
                cpu_ticks: field(11) + field(12) + field(13) + field(14),
                rss_pages: field(21),
            },
        );
    }
    table
}

/// `root` and every process below it.
fn tree(table: &HashMap<u32, Proc>, root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, proc) in table {
        children.entry(proc.parent).or_default().push(*pid);
    }
    let mut found = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        if table.contains_key(&pid) {
            found.push(pid);
            stack.extend(children.get(&pid).into_iter().flatten());
        }
    }
    found
}

fn cpu(table: &HashMap<u32, Proc>, root: u32) -> f64 {
    tree(table, root)
        .iter()
        .map(|pid| table[pid].cpu_ticks)
        .sum::<u64>() as f64
        / TICKS
}

fn rss_pages(table: &HashMap<u32, Proc>, root: u32) -> u64 {
    tree(table, root)
        .iter()
        .map(|pid| table[pid].rss_pages)
        .sum()
}
