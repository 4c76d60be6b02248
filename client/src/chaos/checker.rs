//! The checker. After healing and a bounded wait for recovery it reads the databases:
//! every invariant of the design (the audit), and the history's own checks —
//!
//! - every `ok` purchase is present: order CONFIRMED, its seats SOLD to it, its money
//!   captured;
//! - no `fail` purchase left a trace: no confirmed order, sold seat or capture of it;
//! - every `info` resolved to exactly one outcome, which is then checked as above;
//! - no fan was told SOLD_OUT while a seat of the event ended AVAILABLE;
//! - nothing stuck (the audit's invariant 6, and unfinished purchases in any log).

use std::collections::HashMap;

use serde::Serialize;

use crate::audit;
use crate::chaos::lab::Lab;
use crate::chaos::workload::{Completion, Op, Resolution};
use crate::stores;

/// One broken rule, with the ids a person needs to look it up.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// "invariant-1" … "invariant-7" (shared/DESIGN.md), or a history check:
    /// "ok-present", "fail-no-trace", "info-resolved", "sold-out-honest".
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

/// Reads the stores and checks everything.
pub async fn check(lab: &Lab, event: &str, ops: &[Op]) -> anyhow::Result<Verdict> {
    let report = audit::audit(&lab.stores("coordinator"), event).await?;
    let mut violations: Vec<Violation> = report
        .violations
        .iter()
        .map(|v| Violation {
            check: format!("invariant-{}", v.invariant),
            kind: v.kind.to_owned(),
            ids: v.ids.clone(),
            detail: v.detail.clone(),
            timeline: Vec::new(),
        })
        .collect();
    let mut unfinished = report.unfinished;

    // Every coordinator's log: what each idempotency key became.
    let mut logged: Vec<HashMap<String, (String, String, String)>> = Vec::new();
    for (index, db) in lab.logs().into_iter().enumerate() {
        let log = stores::postgres("coordinator", &lab.pg.url(db)).await?;
        let mut by_key = HashMap::new();
        for row in log
            .query(
                "SELECT idempotency_key, txid, state, order_id FROM transactions
                  WHERE event_id = $1",
                &[&event],
            )
            .await?
        {
            let state: String = row.get(2);
            if index > 0 && !matches!(state.as_str(), "COMMITTED" | "ABORTED") {
                unfinished += 1;
                violations.push(Violation {
                    check: "invariant-3".into(),
                    kind: "outcome_unknown".into(),
                    ids: vec![row.get(1)],
                    detail: format!("the rival coordinator's purchase is still {state}"),
                    timeline: Vec::new(),
                });
            }
            by_key.insert(row.get(0), (row.get(1), state, row.get(3)));
        }
        logged.push(by_key);
    }

    let stores = lab.stores("coordinator");
    let inventory = stores::postgres("inventory", &stores.inventory_db).await?;
    let seats: HashMap<String, (String, Option<String>)> = inventory
        .query(
            "SELECT seat_id, status, order_id FROM seats WHERE event_id = $1",
            &[&event],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect();
    let orders = audit::scan_orders(&stores, event).await?;
    let payments = stores::postgres("payments", &stores.payments_db).await?;
    let order_ids: Vec<&str> = orders.keys().map(String::as_str).collect();
    let captured: HashMap<String, i64> = payments
        .query(
            "SELECT order_id, sum(captured_cents - refunded_cents)::bigint FROM payments
              WHERE order_id = ANY($1) GROUP BY order_id",
            &[&order_ids],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get::<_, Option<i64>>(1).unwrap_or(0)))
        .collect();

    let mut history = |kind: &str, check: &str, ids: Vec<String>, detail: String| {
        violations.push(Violation {
            check: check.into(),
            kind: kind.into(),
            ids,
            detail,
            timeline: Vec::new(),
        });
    };
    for op in ops {
        let log_entry = logged.get(op.coordinator).and_then(|log| log.get(&op.key));
        let order_id = match (&op.completion, &op.resolution) {
            (Completion::Ok { order_id, .. }, _) => Some(order_id.clone()),
            (
                _,
                Some(Resolution::Committed { order_id, .. } | Resolution::Aborted { order_id, .. }),
            ) => Some(order_id.clone()),
            _ => log_entry.map(|(_, _, order_id)| order_id.clone()),
        };
        match op.happened() {
            Some(true) => {
                let order_id = order_id.unwrap_or_default();
                let order = orders.get(&order_id);
                let confirmed = order.is_some_and(|o| o.status == "ORDER_STATUS_CONFIRMED");
                let seats_sold = order.is_some_and(|o| {
                    o.seats.iter().all(|seat| {
                        seats.get(seat).is_some_and(|(status, owner)| {
                            status == "SOLD" && owner.as_deref() == Some(order_id.as_str())
                        })
                    })
                });
                let paid = order.is_some_and(|o| captured.get(&order_id) == Some(&o.total_cents));
                if !(confirmed && seats_sold && paid) {
                    history(
                        "ok_missing",
                        "ok-present",
                        vec![op.key.clone(), order_id],
                        format!(
                            "a purchase answered ok is not all there: order confirmed {confirmed}, \
                             seats sold to it {seats_sold}, money captured {paid}"
                        ),
                    );
                }
            }
            Some(false) => {
                let Some(order_id) = order_id else { continue };
                let confirmed = orders
                    .get(&order_id)
                    .is_some_and(|o| o.status == "ORDER_STATUS_CONFIRMED");
                let sold: Vec<&String> = seats
                    .iter()
                    .filter(|(_, (status, owner))| {
                        status == "SOLD" && owner.as_deref() == Some(order_id.as_str())
                    })
                    .map(|(seat, _)| seat)
                    .collect();
                let charged = captured.get(&order_id).copied().unwrap_or(0);
                if confirmed || !sold.is_empty() || charged != 0 {
                    let mut ids = vec![op.key.clone(), order_id];
                    ids.extend(sold.into_iter().cloned());
                    history(
                        "fail_left_trace",
                        "fail-no-trace",
                        ids,
                        format!(
                            "a purchase that did not happen left a trace: order confirmed \
                             {confirmed}, money captured {charged} cents"
                        ),
                    );
                }
            }
            None => history(
                "info_unresolved",
                "info-resolved",
                vec![op.key.clone()],
                format!("still unknown after healing: {:?}", op.resolution),
            ),
        }
    }
    let sold_out_keys: Vec<String> = ops
        .iter()
        .filter(|op| op.fail_reason() == Some("SOLD_OUT"))
        .map(|op| op.key.clone())
        .collect();
    if !sold_out_keys.is_empty() && report.available > 0 {
        let mut ids: Vec<String> = seats
            .iter()
            .filter(|(_, (status, _))| status == "AVAILABLE")
            .map(|(seat, _)| seat.clone())
            .collect();
        ids.sort();
        ids.extend(sold_out_keys.iter().take(5).cloned());
        history(
            "sold_out_while_available",
            "sold-out-honest",
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
        + unfinished;
    Ok(Verdict {
        violations,
        stuck,
        seats_available: report.available,
        seats_sold: report.sold,
        money_delta_cents: report.captured_cents - report.confirmed_cents,
        unfinished,
    })
}

/// Attaches the step timeline of every txid (or order id) a violation names.
async fn attach_timelines(lab: &Lab, violations: &mut [Violation]) -> anyhow::Result<()> {
    if violations.is_empty() {
        return Ok(());
    }
    for db in lab.logs() {
        let log = stores::postgres("coordinator", &lab.pg.url(db)).await?;
        for violation in violations.iter_mut() {
            let rows = log
                .query(
                    "SELECT t.txid, s.sequence, s.participant, s.operation, s.attempt, s.outcome,
                            coalesce(s.error, ''), s.compensation,
                            to_char(s.started_at, 'HH24:MI:SS.MS'),
                            to_char(s.finished_at, 'HH24:MI:SS.MS')
                       FROM transactions t JOIN steps s USING (txid)
                      WHERE t.txid = ANY($1) OR t.order_id = ANY($1)
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
