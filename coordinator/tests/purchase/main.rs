//! Purchases through a real coordinator and real participants on the real stack.

#[path = "../common/mod.rs"]
mod common;
mod protocols;
mod python;
