//! Purchases through a real coordinator and real participants on the real stack.

mod auth;
#[path = "../common/mod.rs"]
mod common;
mod grpcurl;
mod inspection;
mod messages;
mod ownership;
mod protocols;
mod python;
mod rate;
mod room;
mod sold_out;
mod typescript;
