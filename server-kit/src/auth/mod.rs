//! Who may call what: every call but health and reflection carries a bearer JWT, checked
//! by one tower layer ([`AuthLayer`]) against the service's [`Policy`] before a handler
//! runs, so a refused call never reaches a store.
//!
//! Two issuers sign tokens, each with its own Ed25519 key pair (EdDSA):
//!
//! - **users** — the identity provider of fans and operators; on the local stack
//!   `ticketdrop login` plays it. `sub` is the user; scope `admin` makes an operator.
//! - **mesh** — the services' own credential. A service that calls another (the
//!   coordinator, the waiting room) signs itself a short-lived token with scope `service`;
//!   the participants' write RPCs take only these.
//!
//! Servers hold only the two public keys: no service can mint a fan's token, and no fan
//! can mint a service's. Signed service tokens rather than mutual TLS: one verification
//! path for users and services, one error mapping, the same header grpcurl sends, and no
//! TLS record layer on a mesh whose drops are CPU-bound on loopback. A deployment across
//! hosts puts TLS under it for privacy; the tokens stay the authorization.
//!
//! | access | who may call |
//! | --- | --- |
//! | [`Access::Open`] | anyone, without a token: only what a caller needs before it has one (the web page's development sign-in) |
//! | [`Access::Anyone`] | any valid token; the handler checks that a user acts only for themself ([`Caller::act_for`]) |
//! | [`Access::Admin`] | operators: tokens with scope `admin` |
//! | [`Access::Service`] | the mesh (tokens with scope `service`), and operators |
//!
//! Operators may do what the mesh does: a person resolving an in-doubt branch by hand is
//! two-phase commit's heuristic decision, and a box office buys for its customers. The
//! mesh may not do what only operators do (create events, open rooms, inject faults,
//! read the log), and fans neither.

mod keys;
mod layer;

use std::sync::Arc;

use proto::v1::ErrorReason;
use serde::{Deserialize, Serialize};
use tonic::{Code, Status};

pub use keys::{Issuer, KeyFiles, Verifier, generate_keys};
pub use layer::AuthLayer;

use proto::error::with_reason;

/// Every token's audience.
pub const AUDIENCE: &str = "ticketdrop";

/// The scope of operators' tokens.
pub const ADMIN_SCOPE: &str = "admin";
/// The scope of the mesh's own tokens.
pub const SERVICE_SCOPE: &str = "service";

/// Who signs a token; the `kid` of its header and its `iss`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    /// Fans and operators.
    Users,
    /// The services themselves.
    Mesh,
}

impl Authority {
    pub fn key_id(self) -> &'static str {
        match self {
            Authority::Users => "users",
            Authority::Mesh => "mesh",
        }
    }

    pub fn issuer(self) -> &'static str {
        match self {
            Authority::Users => "ticketdrop-users",
            Authority::Mesh => "ticketdrop-mesh",
        }
    }
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user, or the calling service's name.
    pub sub: String,
    /// Space-separated scopes (OAuth 2.0 style): `admin`, `service`, or none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    pub iat: i64,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

/// A verified caller, put in each request's extensions by [`AuthLayer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's subject: a user, an operator, or a service's name.
    pub subject: String,
    pub admin: bool,
    /// Signed by the mesh with scope `service`.
    pub service: bool,
    /// The token's expiry, seconds since the epoch.
    pub expires_at: i64,
}

impl Caller {
    /// A user acts (and reads) only for themself; operators and services for anyone.
    pub fn act_for(&self, user_id: &str) -> Result<(), Status> {
        if self.admin || self.service || self.subject == user_id {
            return Ok(());
        }
        Err(other_user(&self.subject, user_id))
    }
}

/// The caller of a request that passed [`AuthLayer`].
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Arc<Caller>, Status> {
    request
        .extensions()
        .get::<Arc<Caller>>()
        .cloned()
        .ok_or_else(|| unauthenticated("missing", "this call carries no verified bearer token"))
}

/// Who may call one RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed: what a caller asks before it has one.
    Open,
    Anyone,
    Admin,
    Service,
}

impl Access {
    fn admits(self, caller: &Caller) -> Result<(), Status> {
        let admitted = match self {
            Access::Open | Access::Anyone => true,
            Access::Admin => caller.admin,
            Access::Service => caller.service || caller.admin,
        };
        if admitted {
            return Ok(());
        }
        let required = match self {
            Access::Open | Access::Anyone => "",
            Access::Admin => ADMIN_SCOPE,
            Access::Service => "service (or admin)",
        };
        Err(with_reason(
            Code::PermissionDenied,
            ErrorReason::ScopeRequired,
            format!(
                "this call needs a token with scope {required}; {}'s token has none",
                caller.subject
            ),
            [
                ("required_scope", required.to_owned()),
                ("subject", caller.subject.clone()),
            ],
        ))
    }
}

/// Who may call each RPC of one service: every RPC has a rule, which each service's
/// tests check against the protos ([`Policy::unruled_methods`]).
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// The fully qualified service, e.g. `ticketdrop.v1.PaymentsService`.
    pub service: &'static str,
    pub rules: &'static [(&'static str, Access)],
}

impl Policy {
    /// The rule for a request path `/package.Service/Method`; `None` for a path with no
    /// rule (refused).
    fn access(&self, path: &str) -> Option<Access> {
        let (service, method) = path.strip_prefix('/')?.split_once('/')?;
        if service != self.service {
            return None;
        }
        self.rules
            .iter()
            .find(|(name, _)| *name == method)
            .map(|(_, access)| *access)
    }

    /// The service's RPCs in the protos that have no rule here, and rules naming no RPC.
    pub fn unruled_methods(&self) -> Vec<String> {
        use prost::Message;
        let files = prost_types::FileDescriptorSet::decode(proto::v1::FILE_DESCRIPTOR_SET)
            .expect("the compiled descriptor set decodes");
        let (package, name) = self
            .service
            .rsplit_once('.')
            .expect("a fully qualified service name");
        let methods: Vec<String> = files
            .file
            .iter()
            .filter(|file| file.package() == package)
            .flat_map(|file| &file.service)
            .filter(|service| service.name() == name)
            .flat_map(|service| &service.method)
            .map(|method| method.name().to_owned())
            .collect();
        let mut problems: Vec<String> = methods
            .iter()
            .filter(|method| !self.rules.iter().any(|(name, _)| name == method))
            .map(|method| format!("{method} has no rule"))
            .collect();
        problems.extend(
            self.rules
                .iter()
                .filter(|(name, _)| !methods.iter().any(|method| method == name))
                .map(|(name, _)| format!("rule {name} names no RPC")),
        );
        if methods.is_empty() {
            problems.push(format!("{} is not in the protos", self.service));
        }
        problems
    }
}

/// UNAUTHENTICATED: no usable token; `problem` says why in one word.
pub fn unauthenticated(problem: &'static str, message: impl Into<String>) -> Status {
    with_reason(
        Code::Unauthenticated,
        ErrorReason::Unauthenticated,
        message,
        [("problem", problem.to_owned())],
    )
}

fn other_user(subject: &str, user_id: &str) -> Status {
    with_reason(
        Code::PermissionDenied,
        ErrorReason::OtherUser,
        format!("the token is {subject}'s; it may not act for user_id {user_id:?}"),
        [
            ("subject", subject.to_owned()),
            ("user_id", user_id.to_owned()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(subject: &str, admin: bool, service: bool) -> Caller {
        Caller {
            subject: subject.to_owned(),
            admin,
            service,
            expires_at: i64::MAX,
        }
    }

    #[test]
    fn a_user_acts_only_for_themself() {
        let ana = caller("ana", false, false);
        assert!(ana.act_for("ana").is_ok());
        assert_eq!(
            ana.act_for("bob").map_err(|status| status.code()),
            Err(Code::PermissionDenied)
        );
        assert!(caller("ops", true, false).act_for("bob").is_ok());
        assert!(caller("coordinator", false, true).act_for("bob").is_ok());
    }

    #[test]
    fn each_access_admits_its_scopes_only() {
        let (user, admin, service) = (
            caller("ana", false, false),
            caller("ops", true, false),
            caller("coordinator", false, true),
        );
        let admitted = |access: Access| {
            [&user, &admin, &service]
                .map(|caller| access.admits(caller).is_ok())
                .to_vec()
        };
        assert_eq!(admitted(Access::Anyone), [true, true, true]);
        assert_eq!(admitted(Access::Admin), [false, true, false]);
        assert_eq!(admitted(Access::Service), [false, true, true]);
    }

    #[test]
    fn a_policy_finds_rules_by_path_and_names_what_it_misses() {
        let policy = Policy {
            service: "ticketdrop.v1.PaymentsService",
            rules: &[("SetFaults", Access::Admin), ("Nonsense", Access::Anyone)],
        };
        assert_eq!(
            policy.access("/ticketdrop.v1.PaymentsService/SetFaults"),
            Some(Access::Admin)
        );
        assert_eq!(
            policy.access("/ticketdrop.v1.OrdersService/SetFaults"),
            None
        );
        assert_eq!(
            policy.access("/ticketdrop.v1.PaymentsService/Authorize"),
            None
        );
        let problems = policy.unruled_methods();
        assert!(problems.contains(&"Authorize has no rule".to_owned()));
        assert!(problems.contains(&"rule Nonsense names no RPC".to_owned()));
    }
}
