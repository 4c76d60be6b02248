//! JSON renderings of the ticketdrop.v1 messages the CLI prints (the generated types do
//! not derive serde): timestamps as RFC 3339, enums by their proto names.

use proto::v1::*;
use serde_json::{Value, json};

pub fn timestamp(ts: &Option<prost_types::Timestamp>) -> Value {
    ts.as_ref()
        .and_then(|ts| chrono::DateTime::from_timestamp(ts.seconds, ts.nanos.max(0) as u32))
        .map_or(Value::Null, |t| Value::String(t.to_rfc3339()))
}

pub fn millis(duration: &Option<prost_types::Duration>) -> f64 {
    duration.as_ref().map_or(0.0, |d| {
        d.seconds as f64 * 1_000.0 + f64::from(d.nanos) / 1_000_000.0
    })
}

pub fn event(e: &Event) -> Value {
    json!({
        "event_id": e.event_id, "name": e.name, "venue_name": e.venue_name,
        "starts_at": timestamp(&e.starts_at), "description": e.description,
        "currency": e.currency, "capacity": e.capacity,
    })
}

pub fn availability(a: &Availability) -> Value {
    json!({
        "section": a.section, "price_tier": a.price_tier, "price_cents": a.price_cents,
        "available": a.available, "held": a.held, "sold": a.sold,
    })
}

pub fn ticket(t: &Ticket) -> Value {
    json!({
        "ticket_id": t.ticket_id, "event_id": t.event_id, "seat_id": t.seat_id,
        "order_id": t.order_id, "user_id": t.user_id, "token": t.token,
        "issued_at": timestamp(&t.issued_at),
    })
}

pub fn purchase(p: &PurchaseResponse) -> Value {
    json!({
        "txid": p.txid, "order_id": p.order_id, "protocol": protocol(p.protocol()),
        "seats": p.seats.iter().map(|s| json!({"seat_id": s.seat_id, "price_cents": s.price_cents})).collect::<Vec<_>>(),
        "tickets": p.tickets.iter().map(ticket).collect::<Vec<_>>(),
        "amount_cents": p.amount_cents, "currency": p.currency, "payment_id": p.payment_id,
        "phases_ms": p.phases.iter().map(|ph| json!({"phase": ph.phase, "ms": millis(&ph.duration)})).collect::<Vec<_>>(),
        "total_ms": millis(&p.total), "replayed": p.replayed,
    })
}

pub fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::TwoPhaseCommit => "2pc",
        Protocol::Saga => "saga",
        Protocol::Lease => "lease",
        Protocol::Unspecified => "unspecified",
    }
}

pub fn participant(p: Participant) -> &'static str {
    match p {
        Participant::Coordinator | Participant::Unspecified => "coordinator",
        Participant::Inventory => "inventory",
        Participant::Orders => "orders",
        Participant::Payments => "payments",
        Participant::Locks => "locks",
        Participant::WaitingRoom => "waiting_room",
    }
}

pub fn short_enum(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_owned()
}

pub fn step(s: &Step) -> Value {
    json!({
        "sequence": s.sequence, "participant": participant(s.participant()),
        "operation": s.operation, "attempt": s.attempt, "compensation": s.compensation,
        "outcome": short_enum(s.outcome().as_str_name(), "STEP_OUTCOME_"),
        "error": s.error, "started_at": timestamp(&s.started_at), "finished_at": timestamp(&s.finished_at),
        "duration_ms": step_millis(s),
    })
}

pub fn step_millis(s: &Step) -> f64 {
    millis_between(&s.started_at, &s.finished_at).unwrap_or(0.0)
}

/// Milliseconds since the Unix epoch (0 when unset).
pub fn epoch_ms(at: &Option<prost_types::Timestamp>) -> f64 {
    at.as_ref().map_or(0.0, |t| {
        t.seconds as f64 * 1_000.0 + f64::from(t.nanos) / 1_000_000.0
    })
}

/// Milliseconds from `start` to `end`, when both are set.
pub fn millis_between(
    start: &Option<prost_types::Timestamp>,
    end: &Option<prost_types::Timestamp>,
) -> Option<f64> {
    (start.is_some() && end.is_some()).then(|| epoch_ms(end) - epoch_ms(start))
}

pub fn transaction(t: &Transaction) -> Value {
    json!({
        "txid": t.txid, "protocol": protocol(t.protocol()),
        "state": short_enum(t.state().as_str_name(), "TRANSACTION_STATE_"),
        "decision": short_enum(t.decision().as_str_name(), "DECISION_"),
        "user_id": t.user_id, "event_id": t.event_id, "seat_ids": t.seat_ids,
        "quantity": t.quantity, "idempotency_key": t.idempotency_key, "order_id": t.order_id,
        "payment_id": t.payment_id, "error": t.error,
        "started_at": timestamp(&t.started_at), "decided_at": timestamp(&t.decided_at),
        "finished_at": timestamp(&t.finished_at), "trace_id": t.trace_id,
        "duration_ms": millis_between(&t.started_at, &t.finished_at),
        "steps": t.steps.iter().map(step).collect::<Vec<_>>(),
    })
}

pub fn room(r: &Room) -> Value {
    json!({
        "event_id": r.event_id, "state": short_enum(r.state().as_str_name(), "ROOM_STATE_"),
        "max_active": r.max_active, "admission_ttl_ms": millis(&r.admission_ttl),
        "opened_at": timestamp(&r.opened_at), "sold_out_at": timestamp(&r.sold_out_at),
        "joined": r.joined, "waiting": r.waiting, "active": r.active, "purchasing": r.purchasing,
        "admitted": r.admitted, "purchased": r.purchased, "finished": r.finished,
        "sold_out": r.sold_out, "expired": r.expired, "left": r.left,
        "admission_rate": r.admission_rate, "capacity": r.capacity, "seats_sold": r.seats_sold,
        "max_purchasing_seen": r.max_purchasing_seen,
    })
}

pub fn place(p: &Place) -> Value {
    json!({
        "event_id": p.event_id, "user_id": p.user_id,
        "state": short_enum(p.state().as_str_name(), "FAN_STATE_"),
        "join_number": p.join_number, "position": p.position,
        "estimated_wait_ms": p.estimated_wait.as_ref().map(|_| millis(&p.estimated_wait)),
        "joined_at": timestamp(&p.joined_at),
    })
}

pub fn admission(a: &Admission) -> Value {
    json!({
        "admission_id": a.admission_id, "admission_number": a.admission_number,
        "expires_at": timestamp(&a.expires_at), "token": a.token,
    })
}

pub fn print(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
