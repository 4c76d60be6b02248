//! Who may call each RPC of the waiting room service: the rules `server_kit::auth::AuthLayer`
//! checks every call's token against before a handler runs.

use server_kit::auth::{Access, Policy};

pub const POLICY: Policy = Policy {
    service: "ticketdrop.v1.WaitingRoomService",
    rules: &[
        ("OpenRoom", Access::Admin),
        // A room's public counts (open, pre-queue, sold out): what an event's page shows
        // before a fan signs in.
        ("GetRoom", Access::Open),
        // A fan joins, watches and leaves only as themself (checked in the handler).
        ("Join", Access::Anyone),
        ("Watch", Access::Anyone),
        ("Leave", Access::Anyone),
        // The coordinator's side of a purchase.
        ("ClaimAdmission", Access::Service),
        ("ReleaseAdmission", Access::Service),
    ],
};

#[cfg(test)]
mod tests {
    #[test]
    fn every_rpc_has_exactly_the_rules_of_the_protos() {
        assert_eq!(super::POLICY.unruled_methods(), Vec::<String>::new());
    }
}
