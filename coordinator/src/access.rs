//! Who may call each RPC of the coordinator service: the rules `server_kit::auth::AuthLayer`
//! checks every call's token against before a handler runs.

use server_kit::auth::{Access, Policy};

pub const POLICY: Policy = Policy {
    service: "ticketdrop.v1.CoordinatorService",
    rules: &[
        // A fan buys and watches only their own purchases (checked in the handler).
        ("Purchase", Access::Anyone),
        ("WatchPurchase", Access::Anyone),
        // The operators' view of the log.
        ("GetTransaction", Access::Admin),
        ("ListTransactions", Access::Admin),
        ("ListPending", Access::Admin),
        ("FailureSummary", Access::Admin),
        ("ListCoordinators", Access::Admin),
        // What participants and operators recover from.
        ("GetDecision", Access::Service),
        // The waiting room: has the purchase of an admission ended?
        ("GetPurchaseState", Access::Service),
    ],
};

#[cfg(test)]
mod tests {
    #[test]
    fn every_rpc_has_exactly_the_rules_of_the_protos() {
        assert_eq!(super::POLICY.unruled_methods(), Vec::<String>::new());
    }
}
