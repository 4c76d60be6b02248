//! Who may call each RPC of the web service: nobody needs a token, since a page without
//! one calls these first. DevLogin refuses unless the server runs with --dev-login.

use server_kit::auth::{Access, Policy};

pub const POLICY: Policy = Policy {
    service: "ticketdrop.v1.WebService",
    rules: &[("GetSite", Access::Open), ("DevLogin", Access::Open)],
};

#[cfg(test)]
mod tests {
    #[test]
    fn every_rpc_has_exactly_the_rules_of_the_protos() {
        assert_eq!(super::POLICY.unruled_methods(), Vec::<String>::new());
    }
}
