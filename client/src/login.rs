//! `ticketdrop login`: a development token for one user, signed with the local stack's
//! users key and printed for grpcurl and generated clients; `ticketdrop keys`: the key
//! pairs that sign tokens, created once.

use std::time::Duration;

use server_kit::auth::{ADMIN_SCOPE, generate_keys};

use crate::endpoints::Endpoints;

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The user the token is for: its subject, which must equal the `user_id` of the
    /// purchases and waiting-room calls made with it.
    #[arg(long)]
    pub user: String,

    /// An operator's token (scope `admin`): create events, open rooms, set faults, read
    /// the transaction log.
    #[arg(long)]
    pub admin: bool,

    /// How long the token is valid.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "12h")]
    pub ttl: Duration,
}

/// Prints a token for `args.user`.
pub fn login(endpoints: &Endpoints, args: LoginArgs) -> anyhow::Result<()> {
    server_kit::validate::id("--user", &args.user)?;
    let scopes: &[&str] = if args.admin { &[ADMIN_SCOPE] } else { &[] };
    let token = endpoints.users_issuer()?.mint(&args.user, scopes, args.ttl);
    println!("{token}");
    Ok(())
}

/// Creates the key pairs in `--auth-dir` unless they exist.
pub fn keys(endpoints: &Endpoints) -> anyhow::Result<()> {
    let dir = &endpoints.auth_dir;
    if generate_keys(dir)? {
        println!("created the token keys in {}", dir.display());
    } else {
        println!("the token keys are in {}", dir.display());
    }
    Ok(())
}
