//! The invariants of shared/DESIGN.md as pure functions of a [`Snapshot`]: each check
//! names what it found by [`Kind`] and the ids a person needs to look it up.
//!
//! A purchase some log has not finished is in flight: its order, seats and money are
//! whatever its protocol has reached, so no check of them applies yet — the purchase
//! itself is reported (`unfinished_purchase`), since an audit runs after settling.

mod fans;

use crate::audit::snapshot::{Order, Purchase, Snapshot};
use crate::audit::{Kind, Violation};
use fans::{confirmations, room, sold_out};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What the checks allow for.
#[derive(Debug, Clone, Copy)]
pub struct Allowance {
    /// How far the room's clock and the log's may disagree (a slot freed this long
    /// before the log says its purchase ended is still after it).
    pub clock_skew_ms: i64,
}

impl Default for Allowance {
    fn default() -> Self {
        Self { clock_skew_ms: 500 }
    }
}

/// Every violation in `snapshot`, in check order.
pub fn check(snapshot: &Snapshot, allowance: Allowance) -> Vec<Violation> {
    let mut found = Found::default();
    let context = Context::new(snapshot);
    seats(&context, &mut found);
    orders(&context, &mut found);
    money(&context, &mut found);
    log_against_stores(&context, &mut found);
    leftovers(&context, &mut found);
    sold_out(&context, &mut found);
    confirmations(&context, &mut found);
    room(&context, allowance, &mut found);
    found.0
}

#[derive(Default)]
struct Found(Vec<Violation>);

impl Found {
    fn add(&mut self, kind: Kind, ids: Vec<String>, detail: impl Into<String>) {
        self.0.push(Violation {
            invariant: kind.invariant(),
            kind,
            ids,
            detail: detail.into(),
        });
    }
}

/// The snapshot with the lookups every check needs.
struct Context<'a> {
    snapshot: &'a Snapshot,
    /// Order ids of purchases some log has not finished.
    in_flight: HashSet<&'a str>,
    /// Every purchase of every log, by order id.
    purchase_of_order: HashMap<&'a str, &'a Purchase>,
    /// The confirmed orders holding each seat.
    confirmed_by_seat: BTreeMap<&'a str, Vec<&'a str>>,
}

impl<'a> Context<'a> {
    fn new(snapshot: &'a Snapshot) -> Self {
        let mut confirmed_by_seat: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (order_id, order) in &snapshot.orders {
            if order.is_confirmed() {
                for seat in &order.seats {
                    confirmed_by_seat.entry(seat).or_default().push(order_id);
                }
            }
        }
        Self {
            snapshot,
            in_flight: snapshot
                .purchases
                .iter()
                .filter(|p| !p.is_finished())
                .map(|p| p.order_id.as_str())
                .collect(),
            purchase_of_order: snapshot
                .purchases
                .iter()
                .map(|p| (p.order_id.as_str(), p))
                .collect(),
            confirmed_by_seat,
        }
    }

    fn settled(&self, order_id: &str) -> bool {
        !self.in_flight.contains(order_id)
    }

    /// The confirmed, settled orders.
    fn confirmed(&self) -> impl Iterator<Item = (&'a String, &'a Order)> + '_ {
        self.snapshot
            .orders
            .iter()
            .filter(|(id, order)| order.is_confirmed() && self.settled(id))
    }

    /// What the order's seats cost in inventory (a seat inventory does not have costs 0).
    fn price(&self, order: &Order) -> i64 {
        order
            .seats
            .iter()
            .filter_map(|seat| self.snapshot.seats.get(seat))
            .map(|seat| seat.price_cents)
            .sum()
    }
}

/// 1 and 5: each seat SOLD to exactly one confirmed order, which holds it; the counts.
fn seats(context: &Context<'_>, found: &mut Found) {
    let snapshot = context.snapshot;
    for (seat, owners) in &context.confirmed_by_seat {
        if owners.len() > 1 {
            let mut ids = vec![(*seat).to_owned()];
            ids.extend(owners.iter().map(|o| (*o).to_owned()));
            found.add(
                Kind::SeatSoldTwice,
                ids,
                format!("seat {seat} belongs to {} confirmed orders", owners.len()),
            );
        }
    }
    for (seat_id, seat) in &snapshot.seats {
        let owners = context.confirmed_by_seat.get(seat_id.as_str());
        let order_id = seat.order_id.clone().unwrap_or_default();
        match seat.status.as_str() {
            "SOLD"
                if context.settled(&order_id)
                    && !owners.is_some_and(|o| o.contains(&order_id.as_str())) =>
            {
                found.add(
                    Kind::SoldWithoutConfirmedOrder,
                    vec![seat_id.clone(), order_id],
                    "a SOLD seat has no CONFIRMED order holding it",
                );
            }
            "HELD" if seat.hold_expired => found.add(
                Kind::ExpiredHold,
                vec![seat_id.clone(), seat.holder.clone().unwrap_or_default()],
                "a hold past its expiry was not released",
            ),
            _ => {}
        }
    }
    for (order_id, order) in context.confirmed() {
        for seat_id in &order.seats {
            let sold_to_it = snapshot.seats.get(seat_id).is_some_and(|seat| {
                seat.status == "SOLD" && seat.order_id.as_deref() == Some(order_id.as_str())
            });
            if !sold_to_it {
                let status = snapshot
                    .seats
                    .get(seat_id)
                    .map_or("missing from inventory", |seat| seat.status.as_str());
                found.add(
                    Kind::ConfirmedOrderSeatNotSold,
                    vec![seat_id.clone(), order_id.clone()],
                    format!("a CONFIRMED order's seat is {status}, not SOLD to it"),
                );
            }
        }
    }
    let count = |status: &str| {
        snapshot
            .seats
            .values()
            .filter(|s| s.status == status)
            .count()
    };
    let (available, held, sold) = (count("AVAILABLE"), count("HELD"), count("SOLD"));
    let total = i64::try_from(available + held + sold).unwrap_or(i64::MAX);
    if total != snapshot.capacity || snapshot.seats.len() != available + held + sold {
        found.add(
            Kind::CapacityMismatch,
            vec![snapshot.event_id.clone()],
            format!(
                "available {available} + held {held} + sold {sold} != capacity {} ({} seat rows)",
                snapshot.capacity,
                snapshot.seats.len()
            ),
        );
    }
}

/// 1 and 6: what a confirmed order must carry; no order left undecided.
fn orders(context: &Context<'_>, found: &mut Found) {
    for (order_id, order) in context.confirmed() {
        if order.seats.is_empty() {
            found.add(
                Kind::ConfirmedWithoutSeats,
                vec![order_id.clone()],
                "a CONFIRMED order has no seats",
            );
        }
        let mut tickets = order.ticket_seats.clone();
        let mut seats = order.seats.clone();
        tickets.sort();
        seats.sort();
        if tickets != seats {
            found.add(
                Kind::TicketsMissing,
                vec![order_id.clone()],
                format!(
                    "a CONFIRMED order of {} seat(s) carries tickets for [{}]",
                    seats.len(),
                    tickets.join(", ")
                ),
            );
        }
    }
    for (order_id, order) in &context.snapshot.orders {
        if order.is_undecided() && context.settled(order_id) {
            found.add(
                Kind::PreparedOrderLeft,
                vec![order_id.clone(), order.txid.clone()],
                format!(
                    "an order is left {}",
                    order.status.trim_start_matches("ORDER_STATUS_")
                ),
            );
        }
    }
}

/// 2 and 7: the money. Every authorization and capture of the event's purchases —
/// whatever its age — belongs to a confirmed order, one capture each, of what its seats
/// cost in inventory.
fn money(context: &Context<'_>, found: &mut Found) {
    let snapshot = context.snapshot;
    let mut captures: HashMap<&str, Vec<(&str, i64)>> = HashMap::new();
    let mut captured_total = 0;
    for payment in &snapshot.payments {
        let order_id = payment.order_id.as_str();
        if !context.settled(order_id) {
            continue;
        }
        let ours = snapshot.orders.contains_key(order_id)
            || context.purchase_of_order.contains_key(order_id);
        if !ours {
            // A capture of an order this event does not have.
            if payment.net_cents > 0 && !snapshot.placed.contains(order_id) {
                found.add(
                    Kind::CaptureWithoutOrder,
                    vec![payment.payment_id.clone(), payment.order_id.clone()],
                    "money captured for an order that no order table or log has",
                );
            }
            continue;
        }
        let confirmed = snapshot
            .orders
            .get(order_id)
            .is_some_and(Order::is_confirmed);
        if payment.net_cents > 0 {
            captured_total += payment.net_cents;
        }
        if confirmed {
            if payment.net_cents > 0 {
                captures
                    .entry(order_id)
                    .or_default()
                    .push((&payment.payment_id, payment.net_cents));
            } else if payment.state == "AUTHORIZED" {
                found.add(
                    Kind::ChargedTwice,
                    vec![order_id.to_owned(), payment.payment_id.clone()],
                    "a CONFIRMED order holds an authorization besides its capture",
                );
            }
        } else if payment.net_cents > 0 || payment.state == "AUTHORIZED" {
            let status = snapshot
                .orders
                .get(order_id)
                .map_or("never written", |o| o.status.as_str());
            found.add(
                Kind::MoneyForUnconfirmedOrder,
                vec![payment.payment_id.clone(), payment.order_id.clone()],
                format!(
                    "{} for an order that is {status}",
                    if payment.net_cents > 0 {
                        format!("{} cents captured", payment.net_cents)
                    } else {
                        "money authorized".to_owned()
                    }
                ),
            );
        }
    }
    let mut confirmed_total = 0;
    for (order_id, order) in context.confirmed() {
        let price = context.price(order);
        confirmed_total += price;
        match captures
            .get(order_id.as_str())
            .map_or(&[][..], Vec::as_slice)
        {
            [] => found.add(
                Kind::ConfirmedWithoutCapture,
                vec![order_id.clone()],
                "a CONFIRMED order has no captured payment",
            ),
            [(payment_id, amount)] => {
                if *amount != price || order.total_cents != price {
                    found.add(
                        Kind::CaptureAmountMismatch,
                        vec![order_id.clone(), (*payment_id).to_owned()],
                        format!(
                            "captured {amount}, the order says {}, its seats cost {price} in \
                             inventory",
                            order.total_cents
                        ),
                    );
                }
            }
            many => {
                let mut ids = vec![order_id.clone()];
                ids.extend(many.iter().map(|(p, _)| (*p).to_owned()));
                found.add(
                    Kind::ChargedTwice,
                    ids,
                    format!("{} captures for one order", many.len()),
                );
            }
        }
    }
    if captured_total != confirmed_total {
        found.add(
            Kind::MoneyMismatch,
            vec![snapshot.event_id.clone()],
            format!(
                "captured − refunded {captured_total} != what the confirmed orders' seats cost \
                 {confirmed_total}"
            ),
        );
    }
}

/// 3 and 4: every purchase finished, and the stores agree with how it finished.
fn log_against_stores(context: &Context<'_>, found: &mut Found) {
    let snapshot = context.snapshot;
    for purchase in &snapshot.purchases {
        let order = snapshot.orders.get(&purchase.order_id);
        let ids = || vec![purchase.txid.clone(), purchase.order_id.clone()];
        match purchase.state.as_str() {
            "COMMITTED" => {
                if !order.is_some_and(Order::is_confirmed) {
                    found.add(
                        Kind::CommittedNotInStores,
                        ids(),
                        format!(
                            "the log says COMMITTED, the order is {}",
                            order.map_or("missing", |o| o.status.as_str())
                        ),
                    );
                }
            }
            "ABORTED" => {
                let mut traces = Vec::new();
                if order.is_some_and(Order::is_confirmed) {
                    traces.push("its order is CONFIRMED".to_owned());
                }
                for (seat_id, seat) in &snapshot.seats {
                    let sold = seat.status == "SOLD"
                        && seat.order_id.as_deref() == Some(purchase.order_id.as_str());
                    let held = seat.status == "HELD"
                        && [&purchase.txid, &purchase.order_id]
                            .iter()
                            .any(|id| seat.holder.as_deref() == Some(id.as_str()));
                    if sold || held {
                        traces.push(format!("seat {seat_id} is {} by it", seat.status));
                    }
                }
                if !traces.is_empty() {
                    found.add(
                        Kind::AbortedLeftTrace,
                        ids(),
                        format!("the log says ABORTED, yet {}", traces.join(", ")),
                    );
                }
            }
            other => found.add(
                Kind::UnfinishedPurchase,
                ids(),
                format!("the purchase is still {other}"),
            ),
        }
    }
}

/// 6: prepared branches and leases outliving their purchases.
fn leftovers(context: &Context<'_>, found: &mut Found) {
    let snapshot = context.snapshot;
    let by_txid: HashMap<&str, &Purchase> = snapshot
        .purchases
        .iter()
        .map(|p| (p.txid.as_str(), p))
        .collect();
    for branch in &snapshot.prepared {
        if by_txid
            .get(branch.txid.as_str())
            .is_some_and(|p| !p.is_finished())
        {
            continue;
        }
        let kind = match branch.participant {
            "payments" => Kind::PreparedPaymentLeft,
            "orders-dynamo" => Kind::PreparedOrderLeft,
            _ => Kind::PreparedSaleLeft,
        };
        found.add(
            kind,
            vec![branch.txid.clone()],
            format!(
                "{} still holds a prepared branch of a purchase that {}",
                branch.participant,
                by_txid
                    .get(branch.txid.as_str())
                    .map_or("no log has".to_owned(), |p| format!("ended {}", p.state))
            ),
        );
    }
    for lease in &snapshot.leases {
        let holder = by_txid.get(lease.holder.as_str());
        let ended = holder.is_some_and(|p| p.is_finished());
        if ended || lease.ttl_ms < 0 {
            found.add(
                Kind::OrphanLease,
                vec![lease.key.clone(), lease.holder.clone()],
                if ended {
                    format!(
                        "a lease outlived its purchase ({}), {} ms left",
                        holder.map_or("", |p| p.state.as_str()),
                        lease.ttl_ms
                    )
                } else {
                    "a lease that never expires".to_owned()
                },
            );
        }
    }
}
