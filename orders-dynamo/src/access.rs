//! Who may call each RPC of the orders service: the rules `server_kit::auth::AuthLayer`
//! checks every call's token against before a handler runs.

use server_kit::auth::{Access, Policy};

pub const POLICY: Policy = Policy {
    service: "ticketdrop.v1.OrdersService",
    rules: &[
        ("CreateOrder", Access::Service),
        ("CancelOrder", Access::Service),
        ("ConfirmOrder", Access::Service),
        ("PrepareOrder", Access::Service),
        ("CommitOrder", Access::Service),
        ("AbortOrder", Access::Service),
        ("ListInDoubtOrders", Access::Service),
        ("PlaceOrderFenced", Access::Service),
        ("CancelOrderFenced", Access::Service),
        // A fan reads their own orders (checked in the handler); operators and services
        // anyone's.
        ("GetOrder", Access::Anyone),
        ("ListOrders", Access::Anyone),
        // The signed ticket is its own proof: any signed-in caller may check one.
        ("VerifyTicket", Access::Anyone),
    ],
};

#[cfg(test)]
mod tests {
    #[test]
    fn every_rpc_has_exactly_the_rules_of_the_protos() {
        assert_eq!(super::POLICY.unruled_methods(), Vec::<String>::new());
    }
}
