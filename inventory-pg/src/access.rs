//! Who may call each RPC of the inventory service: the rules `server_kit::auth::AuthLayer`
//! checks every call's token against before a handler runs.

use server_kit::auth::{Access, Policy};

pub const POLICY: Policy = Policy {
    service: "ticketdrop.v1.InventoryService",
    rules: &[
        ("CreateEvent", Access::Admin),
        // Browsing the catalogue and its seat maps: anyone, signed in or not, as in any
        // ticket shop (the web page shows them before a fan signs in). Read-only.
        ("ListEvents", Access::Open),
        ("SearchEvents", Access::Open),
        ("GetEvent", Access::Open),
        ("GetSeatCounts", Access::Anyone),
        ("HoldSeats", Access::Service),
        ("ReleaseSeats", Access::Service),
        ("ConfirmSeats", Access::Service),
        ("UnsellSeats", Access::Service),
        ("PrepareSale", Access::Service),
        ("CommitSale", Access::Service),
        ("AbortSale", Access::Service),
        ("ListInDoubtSales", Access::Service),
        ("SellFenced", Access::Service),
        ("UnsellFenced", Access::Service),
        ("GetSweeperStats", Access::Service),
    ],
};

#[cfg(test)]
mod tests {
    #[test]
    fn every_rpc_has_exactly_the_rules_of_the_protos() {
        assert_eq!(super::POLICY.unruled_methods(), Vec::<String>::new());
    }
}
