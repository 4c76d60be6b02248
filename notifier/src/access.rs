//! Who may call each RPC of the notifier service: the rules `server_kit::auth::AuthLayer`
//! checks every call's token against before a handler runs.

use server_kit::auth::{Access, Policy};

pub const POLICY: Policy = Policy {
    service: "ticketdrop.v1.NotifierService",
    rules: &[
        // The coordinator's outbox relay.
        ("Enqueue", Access::Service),
        // A fan registers their own webhook and reads their own confirmations (checked in
        // the handler).
        ("RegisterWebhook", Access::Anyone),
        ("GetConfirmation", Access::Anyone),
        ("ListDeliveries", Access::Admin),
        ("RetryDelivery", Access::Admin),
        ("FailureSummary", Access::Admin),
    ],
};

#[cfg(test)]
mod tests {
    #[test]
    fn every_rpc_has_exactly_the_rules_of_the_protos() {
        assert_eq!(super::POLICY.unruled_methods(), Vec::<String>::new());
    }
}
