//! The checker. After healing and a bounded wait for recovery it reads the stores — never
//! the services under test — and checks:
//!
//! - every invariant of the design (the audit, over every log of the run);
//! - every `ok` answer against the stores: the key's order is the one answered, CONFIRMED,
//!   with exactly the seats answered, each SOLD to it, and the money answered captured
//!   once, which is what those seats cost in inventory;
//! - no `fail` purchase left a trace: no confirmed order, sold seat or capture of it;
//! - every `info` resolved from the stores (the order its key wrote: CONFIRMED is
//!   committed, CANCELLED or none is not), then checked as above; what the coordinator's
//!   log answers for the key is compared with that, and a disagreement is a violation;
//! - no fan was told SOLD_OUT while a seat of the event ended AVAILABLE;
//! - nothing stuck (the audit's invariant 6, and unfinished purchases in any log).

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use crate::audit::{self, Snapshot, snapshot};
use crate::chaos::lab::Lab;
use crate::chaos::workload::{Completion, Lookup, Op, Resolution};
use crate::stores;

/// One broken rule, with the ids a person needs to look it up.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// "invariant-1" … "invariant-10" (shared/DESIGN.md), or a history check:
    /// "ok-present", "fail-no-trace", "info-resolved", "log-truthful", "sold-out-honest".
    pub check: String,
    pub kind: String,
    pub ids: Vec<String>,
    pub detail: String,
    /// The coordinator's step timeline of every transaction the ids name, one line per
    /// attempt: the evidence a person reads first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<String>,
}

/// What the checker found.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub violations: Vec<Violation>,
    /// Leftovers: invariant-6 findings and purchases still unfinished.
    pub stuck: usize,
    pub seats_available: i64,
    pub seats_sold: i64,
    /// Captured − refunded − Σ confirmed orders, in cents (0 when the money adds up).
    pub money_delta_cents: i64,
    pub unfinished: usize,
}

/// Reads the stores, resolves every `info` operation from them, and checks everything.
pub async fn check(lab: &Lab, event: &str, ops: &mut [Op]) -> anyhow::Result<Verdict> {
    let stores = lab.stores();
    let snapshot = Snapshot::read(&stores, event).await?;
    let found = audit::check(&snapshot, audit::Allowance::default());
    let report = audit::report(&snapshot, found);
    let mut violations: Vec<Violation> = report
        .violations
        .iter()
        .map(|v| Violation {
            check: format!("invariant-{}", v.invariant),
            kind: v.kind.name().to_owned(),
            ids: v.ids.clone(),
            detail: v.detail.clone(),
            timeline: Vec::new(),
        })
        .collect();

    let keys: Vec<String> = ops.iter().map(|op| op.key.clone()).collect();
    let written = snapshot::orders_by_keys(&stores, &keys).await?;
    // Orders the keys name that the event's scan did not find (written under another
    // event id: a corruption the checks below then report).
    let elsewhere: Vec<String> = written
        .values()
        .filter(|id| !snapshot.orders.contains_key(*id))
        .cloned()
        .collect();
    let elsewhere = snapshot::get_orders(&stores, &elsewhere).await?;
    let stored = Stored {
        snapshot: &snapshot,
        elsewhere: &elsewhere,
    };
    let mut history = |check: &str, kind: &str, ids: Vec<String>, detail: String| {
        violations.push(Violation {
            check: check.into(),
            kind: kind.into(),
            ids,
            detail,
            timeline: Vec::new(),
        });
    };
    for op in ops.iter_mut() {
        let key_order = written.get(&op.key).cloned();
        if op.is_info() {
            op.resolution = Some(stored.resolve(key_order.as_deref()));
            if let Some(disagreement) = disagreement(op) {
                history(
                    "log-truthful",
                    "lookup_disagrees_with_stores",
                    vec![op.key.clone()],
                    disagreement,
                );
            }
        }
        match op.happened() {
            Some(true) => {
                let problems = stored.present(op, key_order.as_deref());
                if !problems.is_empty() {
                    let mut ids = vec![op.key.clone()];
                    ids.extend(key_order.clone());
                    history(
                        "ok-present",
                        "ok_missing",
                        ids,
                        format!(
                            "a purchase that happened is not all there: {}",
                            problems.join("; ")
                        ),
                    );
                }
            }
            Some(false) => {
                // The key's order, and the order the coordinator named for it (checked,
                // not believed).
                let mut candidates: BTreeSet<String> = key_order.iter().cloned().collect();
                candidates.extend(
                    op.lookup
                        .as_ref()
                        .and_then(Lookup::order_id)
                        .map(str::to_owned),
                );
                for order_id in candidates {
                    let traces = stored.traces(&order_id);
                    if !traces.is_empty() {
                        history(
                            "fail-no-trace",
                            "fail_left_trace",
                            vec![op.key.clone(), order_id],
                            format!(
                                "a purchase that did not happen left a trace: {}",
                                traces.join(", ")
                            ),
                        );
                    }
                }
            }
            None => history(
                "info-resolved",
                "info_unresolved",
                vec![op.key.clone()],
                format!(
                    "still unknown after healing: the stores say {:?}, the log {:?}",
                    op.resolution, op.lookup
                ),
            ),
        }
    }
    let sold_out_keys: Vec<String> = ops
        .iter()
        .filter(|op| op.fail_reason() == Some("SOLD_OUT"))
        .map(|op| op.key.clone())
        .collect();
    if !sold_out_keys.is_empty() && report.available > 0 {
        let mut ids: Vec<String> = snapshot
            .seats
            .iter()
            .filter(|(_, seat)| seat.status == "AVAILABLE")
            .map(|(seat, _)| seat.clone())
            .collect();
        ids.extend(sold_out_keys.iter().take(5).cloned());
        history(
            "sold-out-honest",
            "sold_out_while_available",
            ids,
            format!(
                "{} fan(s) were told sold out, and {} seat(s) ended AVAILABLE",
                sold_out_keys.len(),
                report.available
            ),
        );
    }
    attach_timelines(lab, &mut violations).await?;
    let stuck = violations
        .iter()
        .filter(|v| v.check == "invariant-6")
        .count()
        + report.unfinished;
    Ok(Verdict {
        violations,
        stuck,
        seats_available: report.available,
        seats_sold: report.sold,
        money_delta_cents: report.captured_cents - report.confirmed_cents,
        unfinished: report.unfinished,
    })
}

/// Where the coordinator's answer for an `info` key contradicts the stores.
fn disagreement(op: &Op) -> Option<String> {
    let (Some(resolution), Some(lookup)) = (&op.resolution, &op.lookup) else {
        return None;
    };
    let committed_in_stores = matches!(resolution, Resolution::Committed { .. });
    let committed_in_log = matches!(lookup, Lookup::Committed { .. });
    let settled = !matches!(resolution, Resolution::Undecided { .. })
        && !matches!(lookup, Lookup::Unfinished { .. });
    (settled && committed_in_stores != committed_in_log).then(|| {
        format!(
            "the coordinator's log answers {lookup:?} for the key; the stores say {resolution:?}"
        )
    })
}

/// The stores, as one check run read them.
struct Stored<'a> {
    snapshot: &'a Snapshot,
    elsewhere: &'a std::collections::BTreeMap<String, snapshot::Order>,
}

impl Stored<'_> {
    fn order(&self, order_id: &str) -> Option<&snapshot::Order> {
        self.snapshot
            .orders
            .get(order_id)
            .or_else(|| self.elsewhere.get(order_id))
    }

    /// What became of a purchase, from the order its key wrote.
    fn resolve(&self, key_order: Option<&str>) -> Resolution {
        let Some(order_id) = key_order else {
            return Resolution::NoOrder;
        };
        let order_id = order_id.to_owned();
        match self.order(&order_id).map(|o| o.status.as_str()) {
            Some("ORDER_STATUS_CONFIRMED") => Resolution::Committed { order_id },
            Some("ORDER_STATUS_CANCELLED") => Resolution::Aborted { order_id },
            status => Resolution::Undecided {
                order_id,
                status: status.unwrap_or("missing").to_owned(),
            },
        }
    }

    /// Net money captured for an order.
    fn captured(&self, order_id: &str) -> i64 {
        self.snapshot
            .payments
            .iter()
            .filter(|p| p.order_id == order_id)
            .map(|p| p.net_cents)
            .sum()
    }

    /// The event's seats SOLD to an order.
    fn sold_to(&self, order_id: &str) -> Vec<String> {
        self.snapshot
            .seats
            .iter()
            .filter(|(_, seat)| seat.status == "SOLD" && seat.order_id.as_deref() == Some(order_id))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// What is wrong with a purchase that happened (empty: it is all there).
    fn present(&self, op: &Op, key_order: Option<&str>) -> Vec<String> {
        let mut problems = Vec::new();
        let answered = match &op.completion {
            Completion::Ok {
                order_id,
                seats,
                amount_cents,
                ..
            } => Some((order_id.as_str(), seats, *amount_cents)),
            _ => None,
        };
        let order_id = match (answered, &op.resolution) {
            (Some((order_id, ..)), _) => order_id,
            (None, Some(Resolution::Committed { order_id })) => order_id.as_str(),
            _ => return vec!["no order".into()],
        };
        if key_order != Some(order_id) {
            problems.push(format!(
                "the answer names {order_id}, the key wrote {}",
                key_order.unwrap_or("no order")
            ));
        }
        let Some(order) = self.order(order_id) else {
            problems.push(format!("order {order_id} is missing"));
            return problems;
        };
        if !order.is_confirmed() {
            problems.push(format!("order {order_id} is {}", order.status));
        }
        let mut sold = self.sold_to(order_id);
        sold.sort();
        let mut ordered = order.seats.clone();
        ordered.sort();
        if sold != ordered {
            problems.push(format!(
                "the order holds [{}], the seats SOLD to it are [{}]",
                ordered.join(", "),
                sold.join(", ")
            ));
        }
        let price: i64 = order
            .seats
            .iter()
            .filter_map(|seat| self.snapshot.seats.get(seat))
            .map(|seat| seat.price_cents)
            .sum();
        let captured = self.captured(order_id);
        if captured != price {
            problems.push(format!(
                "{captured} cents captured for seats that cost {price}"
            ));
        }
        if let Some((_, seats, amount)) = answered {
            let mut seats = seats.clone();
            seats.sort();
            if seats != ordered {
                problems.push(format!(
                    "the answer named seats [{}], the order holds [{}]",
                    seats.join(", "),
                    ordered.join(", ")
                ));
            }
            if amount != captured {
                problems.push(format!(
                    "the answer said {amount} cents, {captured} were captured"
                ));
            }
        }
        problems
    }

    /// What a purchase that did not happen left behind for `order_id`.
    fn traces(&self, order_id: &str) -> Vec<String> {
        let mut traces = Vec::new();
        if self
            .order(order_id)
            .is_some_and(snapshot::Order::is_confirmed)
        {
            traces.push(format!("order {order_id} is CONFIRMED"));
        }
        traces.extend(
            self.sold_to(order_id)
                .into_iter()
                .map(|seat| format!("seat {seat} is SOLD to it")),
        );
        let captured = self.captured(order_id);
        if captured != 0 {
            traces.push(format!("{captured} cents captured"));
        }
        traces
    }
}

/// Attaches the step timeline of every txid (or order id) a violation names.
async fn attach_timelines(lab: &Lab, violations: &mut [Violation]) -> anyhow::Result<()> {
    if violations.is_empty() {
        return Ok(());
    }
    let mut by_log: HashMap<&str, tokio_postgres::Client> = HashMap::new();
    for db in lab.logs() {
        by_log.insert(db, stores::postgres("coordinator", &lab.pg.url(db)).await?);
    }
    for log in by_log.values() {
        for violation in violations.iter_mut() {
            let rows = log
                .query(
                    "SELECT t.txid, s.sequence, s.participant, s.operation, s.attempt, s.outcome,
                            coalesce(s.error, ''), s.compensation,
                            to_char(s.started_at, 'HH24:MI:SS.MS'),
                            to_char(s.finished_at, 'HH24:MI:SS.MS')
                       FROM transactions t JOIN steps s USING (txid)
                      WHERE t.txid = ANY($1) OR t.order_id = ANY($1)
                         OR t.idempotency_key = ANY($1)
                      ORDER BY t.txid, s.sequence",
                    &[&violation.ids],
                )
                .await?;
            violation.timeline.extend(rows.iter().map(|row| {
                format!(
                    "{} #{} {} {}{} attempt {} {}–{} {} {}",
                    row.get::<_, String>(0),
                    row.get::<_, i32>(1),
                    row.get::<_, String>(2),
                    row.get::<_, String>(3),
                    if row.get::<_, bool>(7) {
                        " (compensation)"
                    } else {
                        ""
                    },
                    row.get::<_, i32>(4),
                    row.get::<_, String>(8),
                    row.get::<_, Option<String>>(9).unwrap_or_default(),
                    row.get::<_, String>(5),
                    row.get::<_, String>(6),
                )
            }));
        }
    }
    Ok(())
}
