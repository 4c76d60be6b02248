//! Who may call each RPC of the payments service: the rules `server_kit::auth::AuthLayer`
//! checks every call's token against before a handler runs.

use server_kit::auth::{Access, Policy};

pub const POLICY: Policy = Policy {
    service: "ticketdrop.v1.PaymentsService",
    rules: &[
        ("Authorize", Access::Service),
        ("Capture", Access::Service),
        ("Void", Access::Service),
        ("Refund", Access::Service),
        ("GetPayment", Access::Service),
        ("ListByOrder", Access::Service),
        ("CancelAuthorization", Access::Service),
        ("PreparePayment", Access::Service),
        ("CommitPayment", Access::Service),
        ("AbortPayment", Access::Service),
        ("ListInDoubtPayments", Access::Service),
        ("SetFaults", Access::Admin),
        ("GetFaults", Access::Admin),
    ],
};

#[cfg(test)]
mod tests {
    #[test]
    fn every_rpc_has_exactly_the_rules_of_the_protos() {
        assert_eq!(super::POLICY.unruled_methods(), Vec::<String>::new());
    }
}
