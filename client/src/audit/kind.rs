//! Every kind of violation the audit can name, with the invariant of shared/DESIGN.md it
//! breaks. `client/tests/cli/audit.rs` corrupts the stores in exactly each kind's way
//! and checks that the audit names it: its `corrupt` matches on every kind (a kind
//! without a corruption does not compile), and its test runs all of [`Kind::ALL`].

use serde::Serialize;

/// Declares the kinds once: the enum, [`Kind::ALL`], each kind's name and invariant come
/// from the same list, so no kind can be left out of any of them.
macro_rules! kinds {
    ($($(#[$doc:meta])* $kind:ident = $name:literal, invariant $invariant:literal;)*) => {
        /// One kind of broken invariant.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Kind {
            $($(#[$doc])* $kind,)*
        }

        impl Kind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [Kind] = &[$(Kind::$kind,)*];

            /// The kind's name, as reports print it.
            pub fn name(self) -> &'static str {
                match self {
                    $(Kind::$kind => $name,)*
                }
            }

            /// The invariant of shared/DESIGN.md the kind breaks.
            pub fn invariant(self) -> u8 {
                match self {
                    $(Kind::$kind => $invariant,)*
                }
            }
        }
    };
}

kinds! {
    // 1. No seat sold twice; SOLD ⇔ one CONFIRMED order ⇔ one captured payment.
    /// A seat in more than one CONFIRMED order.
    SeatSoldTwice = "seat_sold_twice", invariant 1;
    /// A SOLD seat no CONFIRMED order holds.
    SoldWithoutConfirmedOrder = "sold_without_confirmed_order", invariant 1;
    /// A CONFIRMED order's seat not SOLD to it.
    ConfirmedOrderSeatNotSold = "confirmed_order_seat_not_sold", invariant 1;
    /// A CONFIRMED order with no captured payment.
    ConfirmedWithoutCapture = "confirmed_without_capture", invariant 1;
    /// A CONFIRMED order with no seats.
    ConfirmedWithoutSeats = "confirmed_without_seats", invariant 1;
    /// A CONFIRMED order without exactly one ticket per seat.
    TicketsMissing = "tickets_missing", invariant 1;
    // 2. Money: captured − refunded = what the confirmed orders' seats cost; no money
    //    without a confirmed order.
    /// Money authorized or captured for an order that is not CONFIRMED (whatever its age).
    MoneyForUnconfirmedOrder = "money_for_unconfirmed_order", invariant 2;
    /// Money captured for an order no order table or log has.
    CaptureWithoutOrder = "capture_without_order", invariant 2;
    /// A capture that is not what the order's seats cost in inventory.
    CaptureAmountMismatch = "capture_amount_mismatch", invariant 2;
    /// The event's captures do not add up to its confirmed orders.
    MoneyMismatch = "money_mismatch", invariant 2;
    // 3. No purchase left with an outcome unknown after settling.
    /// A purchase no log has finished.
    UnfinishedPurchase = "unfinished_purchase", invariant 3;
    // 4. The log and the stores agree on every purchase's outcome.
    /// The log says COMMITTED; the order is not CONFIRMED.
    CommittedNotInStores = "committed_not_in_stores", invariant 4;
    /// The log says ABORTED; its order is CONFIRMED or its seats are still its.
    AbortedLeftTrace = "aborted_left_trace", invariant 4;
    // 5. available + held + sold = capacity.
    /// The seat counts do not add up to the capacity.
    CapacityMismatch = "capacity_mismatch", invariant 5;
    // 6. Nothing stuck.
    /// A hold past its expiry that was not released.
    ExpiredHold = "expired_hold", invariant 6;
    /// An order (or orders' 2PC branch) left PENDING or PREPARED by a purchase that ended.
    PreparedOrderLeft = "prepared_order_left", invariant 6;
    /// Inventory's prepared transaction of a purchase that ended.
    PreparedSaleLeft = "prepared_sale_left", invariant 6;
    /// Payments' prepared branch of a purchase that ended.
    PreparedPaymentLeft = "prepared_payment_left", invariant 6;
    /// A seat lease held for a purchase that ended, or one that never expires.
    OrphanLease = "orphan_lease", invariant 6;
    // 7. One charge per purchase.
    /// An order captured more than once, or holding an authorization besides its capture.
    ChargedTwice = "charged_twice", invariant 7;
    // 8. Sold out means every seat sold.
    /// Fans were told sold out, and a seat is AVAILABLE.
    SoldOutWhileAvailable = "sold_out_while_available", invariant 8;
    // 9. Confirmations for committed purchases only, and for each of them.
    /// A confirmation queued or accepted for a purchase that did not commit.
    ConfirmationForUncommitted = "confirmation_for_uncommitted", invariant 9;
    /// A committed purchase whose confirmation was never queued, or lost on its way.
    ConfirmationMissing = "confirmation_missing", invariant 9;
    // 10. The room: at most max_active buying, join order, a slot back only at the end.
    /// More fans buying at once than the room allows.
    RoomOverMaxActive = "room_over_max_active", invariant 10;
    /// A fan admitted before someone who joined earlier.
    RoomOutOfOrder = "room_out_of_order", invariant 10;
    /// A slot given back before its purchase ended.
    SlotFreedWhileUnfinished = "slot_freed_while_unfinished", invariant 10;
}

impl Kind {
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|kind| kind.name() == name)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once_with_its_own_name() {
        let mut names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Kind::ALL.len());
        for &kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
            assert!((1..=10).contains(&kind.invariant()));
        }
    }
}
