//! The lab's workload, recorded as a Jepsen history. Fans buy with bounded concurrency:
//! some fight over a few named "hot" seats, the others buy the best available seat. A
//! call whose outcome is unknown (UNAVAILABLE, DEADLINE_EXCEEDED, connection refused, a
//! coordinator that does not answer) is retried with the same idempotency key — the
//! same purchase, never a second one — a bounded number of times with backoff; what is
//! still unknown then is an `info` operation, resolved after healing from the stores
//! (the order its key wrote, its seats, its money: `checker.rs`). The coordinator is
//! asked too, and its answer compared with the stores, never believed.

use std::time::{Duration, Instant};

use futures::StreamExt;
use proto::outcome::Outcome;
use proto::v1::coordinator_service_client::CoordinatorServiceClient;
use proto::v1::*;
use serde::Serialize;
use server_kit::outgoing::MeshChannel;

/// What the workload does.
#[derive(Debug, Clone)]
pub struct Spec {
    pub event: String,
    pub protocol: Protocol,
    pub fans: u32,
    /// Seats of the event.
    pub seats: u32,
    /// The first `hot_seats` seats are fought over by name.
    pub hot_seats: u32,
    /// Share of fans who want a hot seat.
    pub hot_share: f64,
    pub concurrency: usize,
    pub seed: u64,
    /// Longest wait for one call's answer: a paused coordinator never answers.
    pub call_timeout: Duration,
    /// Calls one purchase makes while its outcome stays unknown.
    pub attempts: u32,
}

/// What a fan asked for.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Want {
    Seat(String),
    BestAvailable,
}

/// How an operation completed, as Jepsen types it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Completion {
    /// Committed: the answer carried the purchase.
    Ok {
        txid: String,
        order_id: String,
        seats: Vec<String>,
        amount_cents: i64,
        replayed: bool,
    },
    /// Certainly did not happen: a participant or the coordinator refused it.
    Fail {
        reason: String,
        message: String,
        txid: Option<String>,
    },
    /// Unknown: no trustworthy answer after every retry.
    Info { error: String, txid: Option<String> },
}

impl Completion {
    /// One line: "ok ord-…", "fail SEAT_TAKEN", "info (…)".
    pub fn summary(&self) -> String {
        match self {
            Completion::Ok { order_id, .. } => format!("ok, {order_id}"),
            Completion::Fail { reason, .. } => format!("fail, {reason}"),
            Completion::Info { error, .. } => format!("info, {error}"),
        }
    }
}

/// What the stores say became of an `info` operation, after healing.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Resolution {
    /// The key's order is CONFIRMED.
    Committed { order_id: String },
    /// The key's order is CANCELLED.
    Aborted { order_id: String },
    /// The key wrote no order.
    NoOrder,
    /// The key's order is still PENDING or PREPARED: unknown yet.
    Undecided { order_id: String, status: String },
}

/// What the coordinator's `ListTransactions` says of a purchase key.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Lookup {
    Committed {
        txid: String,
        order_id: String,
    },
    Aborted {
        txid: String,
        order_id: String,
    },
    /// No purchase with the key in the log.
    NeverLogged,
    Unfinished {
        txid: String,
        order_id: String,
        state: String,
    },
}

impl Lookup {
    pub fn order_id(&self) -> Option<&str> {
        match self {
            Lookup::Committed { order_id, .. }
            | Lookup::Aborted { order_id, .. }
            | Lookup::Unfinished { order_id, .. } => Some(order_id),
            Lookup::NeverLogged => None,
        }
    }
}

/// One operation of the history: a fan's purchase from invocation to completion.
#[derive(Debug, Clone, Serialize)]
pub struct Op {
    /// The Jepsen process: one per fan.
    pub process: u32,
    pub user: String,
    pub key: String,
    pub want: Want,
    /// Which coordinator the fan called (0 = the lab's, 1 = the rival in the lease
    /// pause scenario).
    pub coordinator: usize,
    /// Milliseconds since the workload began.
    pub invoked_ms: f64,
    pub completed_ms: f64,
    pub calls: u32,
    pub completion: Completion,
    /// For `info`: what the stores say, once resolved.
    pub resolution: Option<Resolution>,
    /// For `info`: what the coordinator's log answered when asked by key.
    pub lookup: Option<Lookup>,
}

impl Op {
    pub fn latency_ms(&self) -> f64 {
        self.completed_ms - self.invoked_ms
    }

    pub fn is_ok(&self) -> bool {
        matches!(self.completion, Completion::Ok { .. })
    }

    pub fn is_info(&self) -> bool {
        matches!(self.completion, Completion::Info { .. })
    }

    /// The outcome after resolution: Some(true) committed, Some(false) did not happen,
    /// None unknown.
    pub fn happened(&self) -> Option<bool> {
        match (&self.completion, &self.resolution) {
            (Completion::Ok { .. }, _) => Some(true),
            (Completion::Fail { .. }, _) => Some(false),
            (Completion::Info { .. }, Some(Resolution::Committed { .. })) => Some(true),
            (Completion::Info { .. }, Some(Resolution::Aborted { .. } | Resolution::NoOrder)) => {
                Some(false)
            }
            (Completion::Info { .. }, _) => None,
        }
    }

    /// The fail reason, when the operation failed definitely.
    pub fn fail_reason(&self) -> Option<&str> {
        match &self.completion {
            Completion::Fail { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// Who calls which coordinator: every fan calls `route(fan, what it wants)`.
pub type Route = fn(u32, &Want) -> usize;

/// Runs the workload against `coordinators` and returns its history, in invocation
/// order.
pub async fn run(
    spec: &Spec,
    coordinators: &[CoordinatorServiceClient<MeshChannel>],
    route: Route,
    started: Instant,
) -> Vec<Op> {
    let mut rng = fastrand::Rng::with_seed(spec.seed);
    let plans: Vec<(u32, Want)> = (0..spec.fans)
        .map(|fan| {
            let want = if spec.hot_seats > 0 && rng.f64() < spec.hot_share {
                Want::Seat(format!("A-1-{}", rng.u32(1..=spec.hot_seats)))
            } else {
                Want::BestAvailable
            };
            (fan, want)
        })
        .collect();
    let mut ops: Vec<Op> = futures::stream::iter(plans)
        .map(|(fan, want)| {
            let coordinator = route(fan, &want).min(coordinators.len() - 1);
            let client = coordinators[coordinator].clone();
            async move { purchase(spec, client, fan, want, coordinator, started).await }
        })
        .buffer_unordered(spec.concurrency.max(1))
        .collect()
        .await;
    ops.sort_by(|a, b| a.invoked_ms.total_cmp(&b.invoked_ms));
    ops
}

/// One fan's purchase, an unknown outcome retried with the same key.
pub async fn purchase(
    spec: &Spec,
    mut client: CoordinatorServiceClient<MeshChannel>,
    fan: u32,
    want: Want,
    coordinator: usize,
    started: Instant,
) -> Op {
    let user = format!("fan-{fan}");
    let key = format!("{}-fan-{fan}", spec.event);
    let request = PurchaseRequest {
        user_id: user.clone(),
        event_id: spec.event.clone(),
        seat_ids: match &want {
            Want::Seat(seat) => vec![seat.clone()],
            Want::BestAvailable => Vec::new(),
        },
        quantity: u32::from(want == Want::BestAvailable),
        card_token: "tok_visa".into(),
        idempotency_key: key.clone(),
        protocol: spec.protocol.into(),
        deadline: None,
        contact: None,
        admission_token: String::new(),
    };
    let invoked_ms = millis(started);
    let mut backoff = Duration::from_millis(100);
    let mut calls = 0;
    let completion = loop {
        calls += 1;
        let answer =
            tokio::time::timeout(spec.call_timeout, client.purchase(request.clone())).await;
        let completion = match answer {
            Ok(Ok(bought)) => {
                let bought = bought.into_inner();
                Completion::Ok {
                    txid: bought.txid,
                    order_id: bought.order_id,
                    seats: bought.seats.into_iter().map(|s| s.seat_id).collect(),
                    amount_cents: bought.amount_cents,
                    replayed: bought.replayed,
                }
            }
            Ok(Err(status)) => classify(&status),
            Err(_) => Completion::Info {
                error: format!("no answer within {:?}", spec.call_timeout),
                txid: None,
            },
        };
        if !matches!(completion, Completion::Info { .. }) || calls >= spec.attempts {
            break completion;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    };
    Op {
        process: fan,
        user,
        key,
        want,
        coordinator,
        invoked_ms,
        completed_ms: millis(started),
        calls,
        completion,
        resolution: None,
        lookup: None,
    }
}

/// A failed call as Jepsen types it: `info` when its outcome is unknown (proto's one
/// classification), else `fail` — a refusal, or an error that certainly did nothing.
fn classify(status: &tonic::Status) -> Completion {
    let (reason, metadata) = server_kit::status::reason_of(status).unwrap_or_default();
    let txid = metadata.get("txid").cloned();
    if Outcome::of(status) == Outcome::Unknown {
        Completion::Info {
            error: crate::endpoints::describe(status),
            txid,
        }
    } else {
        Completion::Fail {
            reason: if reason.is_empty() {
                format!("{:?}", status.code())
            } else {
                reason
            },
            message: status.message().to_owned(),
            txid,
        }
    }
}

/// Asks each `info` operation's coordinator what its log says of the key.
pub async fn look_up(ops: &mut [Op], coordinators: &[CoordinatorServiceClient<MeshChannel>]) {
    for op in ops.iter_mut().filter(|op| op.is_info()) {
        op.lookup = lookup(&coordinators[op.coordinator], &op.key).await;
    }
}

/// What the log says about the purchase with `key` (None when the log did not answer).
pub async fn lookup(
    coordinator: &CoordinatorServiceClient<MeshChannel>,
    key: &str,
) -> Option<Lookup> {
    let Some(txn) = crate::txn::by_key(coordinator, key).await? else {
        return Some(Lookup::NeverLogged);
    };
    Some(match txn.state() {
        TransactionState::Committed => Lookup::Committed {
            txid: txn.txid,
            order_id: txn.order_id,
        },
        TransactionState::Aborted => Lookup::Aborted {
            txid: txn.txid,
            order_id: txn.order_id,
        },
        other => Lookup::Unfinished {
            txid: txn.txid,
            order_id: txn.order_id,
            state: crate::json::short_enum(other.as_str_name(), "TRANSACTION_STATE_"),
        },
    })
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1_000.0
}
