//! Several coordinators on one log: the headline drop with 1, 2 and 3 coordinators
//! serving it (the stores bound the pace; the rows show how much more coordinators buy),
//! and a takeover measurement — three coordinators, one SIGKILLed a second into a drop
//! with declined cards: every fan answered, and how long its purchases waited before
//! another coordinator took them over.
//!
//! `make up` runs two coordinators (`.stack/services/coordinators`); the bench starts the
//! third itself, from the same build, and stops (or kills) it.

use std::time::{Duration, Instant};

use anyhow::Context;
use proto::v1::Protocol;
use serde::Serialize;

use crate::bench::{BenchArgs, Measured, Shape, measured};
use crate::endpoints::Endpoints;
use crate::json;
use crate::load::stats::percentile;
use crate::load::{self, DropReport, Load};

/// The drop with `coordinators` coordinators serving its fans.
#[derive(Debug, Clone, Serialize)]
pub struct Scale {
    pub coordinators: usize,
    pub measured: Measured,
}

/// Three coordinators, one killed mid-drop.
#[derive(Debug, Clone, Serialize)]
pub struct Takeover {
    pub protocol: &'static str,
    pub fans: u32,
    pub seats: u32,
    pub decline_rate: f64,
    /// When the third coordinator was SIGKILLed, seconds after the drop began.
    pub killed_after_s: f64,
    pub drop: DropReport,
    /// Purchases the killed coordinator had begun, and how many of them another
    /// coordinator took over (the rest it had finished before it died).
    pub began_by_killed: u64,
    pub taken_over: u64,
    /// From the kill to each takeover, ms.
    pub takeover_p50_ms: f64,
    pub takeover_p99_ms: f64,
    pub takeover_max_ms: f64,
}

/// Port of the coordinator the bench starts (beside `make up`'s 50050 and 50060).
const THIRD_PORT: u16 = 50069;

/// A coordinator the bench runs itself, from the build `ticketdrop` comes from.
struct Extra {
    child: tokio::process::Child,
    endpoint: String,
}

impl Extra {
    async fn start(endpoints: &Endpoints) -> anyhow::Result<Self> {
        let binary = std::env::current_exe()?
            .parent()
            .context("the executable's folder")?
            .join("coordinator");
        let listen = format!("127.0.0.1:{THIRD_PORT}");
        let child = tokio::process::Command::new(&binary)
            .env("TICKETDROP_COORDINATOR_LISTEN", &listen)
            .env("TICKETDROP_AUTH_DIR", &endpoints.auth_dir)
            // As `make up` runs the others: one load generator on 127.0.0.1.
            .env("TICKETDROP_RATE_LIMIT_ADDRESS_PER_SEC", "0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let endpoint = format!("http://{listen}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while crate::endpoints::connect("coordinator", &endpoint)
            .await
            .is_err()
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the third coordinator did not start on {listen}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(Self { child, endpoint })
    }
}

pub async fn measure(
    endpoints: &Endpoints,
    args: &BenchArgs,
    run: &str,
    raw_sales_per_s: f64,
) -> anyhow::Result<(Vec<Scale>, Option<Takeover>)> {
    let stack: Vec<String> = endpoints
        .coordinator
        .split(',')
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .collect();
    let mut extra = Extra::start(endpoints).await?;
    let all: Vec<String> = stack
        .iter()
        .cloned()
        .chain([extra.endpoint.clone()])
        .collect();
    let mut scales = Vec::new();
    for n in 1..=all.len().min(3) {
        let endpoints = Endpoints {
            coordinator: all[..n].join(","),
            ..endpoints.clone()
        };
        let event = format!("bench-{run}-coordinators-{n}");
        eprintln!("bench: {n} coordinator(s) on the log");
        scales.push(Scale {
            coordinators: n,
            measured: measured(
                &endpoints,
                args,
                Protocol::TwoPhaseCommit,
                &event,
                Shape::plain(args.fans, args.seats),
                raw_sales_per_s,
            )
            .await?,
        });
    }
    let takeover = if all.len() >= 3 {
        Some(kill_one(endpoints, args, run, &all, &mut extra).await?)
    } else {
        None
    };
    Ok((scales, takeover))
}

/// 20,000 fans on 300 seats, 10 % of cards declined, three coordinators; the third is
/// SIGKILLed a second into the drop.
async fn kill_one(
    endpoints: &Endpoints,
    args: &BenchArgs,
    run: &str,
    all: &[String],
    extra: &mut Extra,
) -> anyhow::Result<Takeover> {
    let (fans, seats, decline_rate) = (20_000, 300, 0.1);
    let protocol = Protocol::TwoPhaseCommit;
    let endpoints = Endpoints {
        coordinator: all.join(","),
        ..endpoints.clone()
    };
    let event = format!("bench-{run}-takeover");
    eprintln!("bench: takeover, {fans} fans on {seats} seats, one of 3 coordinators killed");
    load::ensure_event(&endpoints, &event, seats).await?;
    let drop_args = Load {
        fans,
        seats,
        concurrency: args.concurrency,
        no_waiting_room: false,
        admission_ttl: Duration::from_secs(30),
        email_fans: false,
        live: false,
        decline_rate: Some(decline_rate),
        decline_every: None,
        stores: args.stores.clone(),
    };
    let started = Instant::now();
    let pid = extra.child.id().context("the third coordinator's pid")?;
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let killed_at = chrono::Utc::now();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(0)),
            nix::sys::signal::Signal::SIGKILL,
        );
        (killed_at, started.elapsed())
    });
    let report = load::one_drop(&endpoints, &drop_args, protocol, &event, || {}).await?;
    let (killed_at, killed_after) = killer.await?;
    let _ = extra.child.wait().await;
    let listen = format!("127.0.0.1:{THIRD_PORT}");
    let log_db = args
        .stores
        .coordinator_db
        .first()
        .context("the coordinators' log: --coordinator-db")?;
    let log = crate::stores::postgres("coordinator", log_db).await?;
    let began: i64 = log
        .query_one(
            "SELECT count(*) FROM transactions t JOIN coordinators c ON c.instance_id = t.began_by
              WHERE t.event_id = $1 AND c.listen = $2",
            &[&event, &listen],
        )
        .await?
        .get(0);
    let mut after: Vec<f64> = log
        .query(
            "SELECT (extract(epoch FROM min(e.at) - $3) * 1000)::float8
               FROM ownership_events e
               JOIN transactions t USING (txid)
               JOIN coordinators c ON c.instance_id = t.began_by
              WHERE t.event_id = $1 AND c.listen = $2 AND e.event = 'takeover'
                AND e.instance_id <> t.began_by
              GROUP BY e.txid",
            &[&event, &listen, &killed_at],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    after.sort_by(f64::total_cmp);
    let at = |q: f64| percentile(&after, q);
    Ok(Takeover {
        protocol: json::protocol(protocol),
        fans,
        seats,
        decline_rate,
        killed_after_s: killed_after.as_secs_f64(),
        drop: report,
        began_by_killed: u64::try_from(began).unwrap_or(0),
        taken_over: after.len() as u64,
        takeover_p50_ms: at(0.5),
        takeover_p99_ms: at(0.99),
        takeover_max_ms: after.last().copied().unwrap_or(0.0),
    })
}
