//! Invariants 8–10, the fan's path: sold out only when every seat is sold, a
//! confirmation for each committed purchase and none for another, and the room's
//! max_active, join order and slots freed only after the log ended the purchase.
use super::{Allowance, Context, Found};
use crate::audit::Kind;
use crate::audit::snapshot::Purchase;
use std::collections::HashSet;

/// 8: "sold out" only when every seat is sold.
pub(super) fn sold_out(context: &Context<'_>, found: &mut Found) {
    let snapshot = context.snapshot;
    let available: Vec<String> = snapshot
        .seats
        .iter()
        .filter(|(_, seat)| seat.status == "AVAILABLE")
        .map(|(id, _)| id.clone())
        .collect();
    if available.is_empty() {
        return;
    }
    let shown: Vec<String> = available.iter().take(5).cloned().collect();
    if let Some(room) = &snapshot.room
        && (room.state == "SOLD_OUT" || room.sold_out > 0)
    {
        found.add(
            Kind::SoldOutWhileAvailable,
            shown.clone(),
            format!(
                "the waiting room told {} fan(s) sold out, and {} seat(s) are AVAILABLE",
                room.sold_out,
                available.len()
            ),
        );
    }
    let told: Vec<&Purchase> = snapshot
        .purchases
        .iter()
        .filter(|p| p.refusal.as_deref() == Some("SOLD_OUT"))
        .collect();
    if !told.is_empty() {
        let mut ids = shown;
        ids.extend(told.iter().take(5).map(|p| p.txid.clone()));
        found.add(
            Kind::SoldOutWhileAvailable,
            ids,
            format!(
                "{} purchase(s) were refused SOLD_OUT, and {} seat(s) are AVAILABLE",
                told.len(),
                available.len()
            ),
        );
    }
}

/// 9: confirmations for committed purchases, each of them.
pub(super) fn confirmations(context: &Context<'_>, found: &mut Found) {
    let snapshot = context.snapshot;
    let committed: HashSet<&str> = snapshot
        .purchases
        .iter()
        .filter(|p| p.state == "COMMITTED")
        .map(|p| p.txid.as_str())
        .collect();
    let accepted: Option<HashSet<&str>> = snapshot
        .confirmations
        .as_ref()
        .map(|list| list.iter().map(|c| c.txid.as_str()).collect());
    for purchase in &snapshot.purchases {
        let ids = || vec![purchase.txid.clone(), purchase.order_id.clone()];
        match (&purchase.outbox, purchase.state.as_str()) {
            (Some(_), "COMMITTED") | (None, "RUNNING" | "COMMITTING" | "ABORTING") => {}
            (Some(_), state) => found.add(
                Kind::ConfirmationForUncommitted,
                ids(),
                format!("a confirmation is queued for a purchase that is {state}"),
            ),
            // The COMMIT decision queues the confirmation in the same statement.
            (None, "COMMITTED") => found.add(
                Kind::ConfirmationMissing,
                ids(),
                format!(
                    "a committed purchase{} has no confirmation queued",
                    if purchase.has_contact {
                        " with a contact"
                    } else {
                        ""
                    }
                ),
            ),
            _ => {}
        }
        if let (Some(outbox), Some(accepted)) = (&purchase.outbox, &accepted)
            && outbox.relayed
            && purchase.state == "COMMITTED"
            && !accepted.contains(purchase.txid.as_str())
        {
            found.add(
                Kind::ConfirmationMissing,
                ids(),
                "the log relayed the confirmation; the notifier has no record of it",
            );
        }
    }
    for confirmation in snapshot.confirmations.iter().flatten() {
        if !committed.contains(confirmation.txid.as_str()) {
            found.add(
                Kind::ConfirmationForUncommitted,
                vec![confirmation.txid.clone(), confirmation.order_id.clone()],
                "the notifier holds a confirmation of a purchase no log committed",
            );
        }
    }
}

/// 10: the room — at most max_active buying, admitted in join order, a slot back only
/// once its purchase ended.
pub(super) fn room(context: &Context<'_>, allowance: Allowance, found: &mut Found) {
    let snapshot = context.snapshot;
    let Some(room) = &snapshot.room else {
        return;
    };
    if room.max_purchasing_seen > room.max_active {
        found.add(
            Kind::RoomOverMaxActive,
            vec![snapshot.event_id.clone()],
            format!(
                "{} fans were buying at once; the room allows {}",
                room.max_purchasing_seen, room.max_active
            ),
        );
    }
    let mut admitted: Vec<_> = room
        .fans
        .iter()
        .filter_map(|fan| Some((fan.admission_number?, fan)))
        .collect();
    admitted.sort_by_key(|(number, _)| *number);
    for pair in admitted.windows(2) {
        let ((first_number, first), (second_number, second)) = (pair[0], pair[1]);
        if second.seq < first.seq {
            found.add(
                Kind::RoomOutOfOrder,
                vec![second.user_id.clone(), first.user_id.clone()],
                format!(
                    "fan {} (joined {}) was admitted as #{second_number}, after fan {} \
                     (joined {}) as #{first_number}",
                    first.user_id, first.seq, second.user_id, second.seq
                ),
            );
        }
    }
    let by_key = snapshot.purchases_by_key();
    for fan in &room.fans {
        let (Some(key), Some(ended_ms)) = (&fan.key, fan.ended_at_ms) else {
            continue;
        };
        if !matches!(fan.state.as_str(), "PURCHASED" | "FINISHED") {
            continue;
        }
        let purchase = by_key.get(key.as_str());
        let finished_ms = purchase.and_then(|p| p.finished_at.map(|t| t.timestamp_millis()));
        let early = match (purchase, finished_ms) {
            (Some(p), Some(finished)) if p.is_finished() => (finished
                > ended_ms + allowance.clock_skew_ms)
                .then(|| format!("{} ms before the log ended it", finished - ended_ms)),
            (Some(p), _) => Some(format!("while its purchase is still {}", p.state)),
            // A claimed admission whose purchase never began (the coordinator gave up
            // between the claim and BEGIN): the room frees it as FINISHED once the log
            // says it has no such purchase. A sale no log has is another matter.
            (None, _) if fan.state == "FINISHED" => None,
            (None, _) => Some("as a sale no log has".to_owned()),
        };
        if let Some(when) = early {
            found.add(
                Kind::SlotFreedWhileUnfinished,
                vec![fan.user_id.clone(), key.clone()],
                format!("the room gave the fan's slot back {when}"),
            );
        }
    }
}
