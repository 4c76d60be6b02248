//! The lease protocol: Redis lease locks give cross-database isolation, each database
//! write is local and fenced. `locks.rs` holds the Redis side (keys, scripts, the fencing
//! counter), `protocol.rs` the purchase: leases, writes, undo, recovery.

mod locks;
mod protocol;

pub use protocol::{recover, run};
