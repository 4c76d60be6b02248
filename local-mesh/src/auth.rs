//! Credentials for tests: the local stack's token keys (created on first use) and
//! clients that carry an operator's, a fan's or a service's token.

use std::path::PathBuf;
use std::time::Duration;

use server_kit::auth::{ADMIN_SCOPE, Authority, Issuer, KeyFiles, SERVICE_SCOPE, generate_keys};
use server_kit::outgoing::{MeshChannel, Outgoing};

/// Long enough for any test, and for a chaos scenario.
const TTL: Duration = Duration::from_secs(6 * 3600);

/// The key directory every process started here uses (`TICKETDROP_AUTH_DIR`): the
/// stack's `.stack/auth`, which `make up` uses too.
pub fn auth_dir() -> PathBuf {
    let dir = crate::stack_dir().join("auth");
    generate_keys(&dir).expect("creating the token keys");
    dir
}

fn issuer(authority: Authority) -> Issuer {
    Issuer::load(&KeyFiles::new(auth_dir()), authority).expect("loading a token key")
}

/// A token of the fan `user`.
pub fn user_token(user: &str) -> String {
    issuer(Authority::Users).mint(user, &[], TTL)
}

/// A token of an operator (scope `admin`).
pub fn admin_token() -> String {
    issuer(Authority::Users).mint("test-operator", &[ADMIN_SCOPE], TTL)
}

/// A token of the mesh (scope `service`), as the coordinator signs for itself.
pub fn service_token() -> String {
    issuer(Authority::Mesh).mint("test-service", &[SERVICE_SCOPE], TTL)
}

/// Calls as an operator, who may call every RPC.
pub fn operator() -> Outgoing {
    Outgoing::bearer(&admin_token()).expect("a minted token is valid metadata")
}

/// Calls as the fan `user`.
pub fn fan(user: &str) -> Outgoing {
    Outgoing::bearer(&user_token(user)).expect("a minted token is valid metadata")
}

/// A channel to `endpoint` whose calls carry `credential`, connected now.
pub async fn channel_as(endpoint: &str, credential: Outgoing) -> MeshChannel {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .expect("a valid endpoint")
        .connect()
        .await
        .unwrap_or_else(|error| panic!("connecting to {endpoint}: {error}"));
    MeshChannel::new(channel, credential)
}

/// A channel to `endpoint` whose calls carry an operator's token.
pub async fn channel(endpoint: &str) -> MeshChannel {
    channel_as(endpoint, operator()).await
}
