//! What every TicketDrop server shares, so that each service's `main.rs` stays thin:
//!
//! - [`ServerOptions`]: the command-line and `TICKETDROP_*` options common to all servers.
//! - [`telemetry`]: structured `tracing` logs, as text or JSON.
//! - [`GrpcServer`]: binds first (port 0 works), then serves health, reflection and the
//!   service, and shuts down gracefully: health NOT_SERVING, a drain delay, in-flight
//!   calls finish, exit.
//! - [`pg`]: a PostgreSQL pool and ordered, idempotent migrations.
//!
//! It must never hold domain logic: nothing here knows about seats, orders or money.

mod options;
pub mod pg;
mod serve;
pub mod shutdown;
pub mod telemetry;

pub use options::{LogFormat, ServerOptions};
pub use serve::GrpcServer;
