//! What every TicketDrop server shares, so that each service's `main.rs` stays thin:
//!
//! - [`ServerOptions`]: the command-line and `TICKETDROP_*` options common to all servers.
//! - [`telemetry`]: structured `tracing` logs, as text or JSON.
//! - [`GrpcServer`]: binds first (port 0 works), then serves health, reflection and the
//!   service, and shuts down gracefully: health NOT_SERVING, a drain delay, in-flight
//!   calls finish, exit.
//! - [`pg`]: a PostgreSQL pool and ordered, idempotent migrations.
//! - [`redis`]: a managed Redis connection, retried at start.
//! - [`status`] and [`validate`]: gRPC statuses with ErrorInfo / BadRequest details and
//!   the field checks every service shares, so errors look the same on the wire.
//!
//! It must never hold domain logic: nothing here knows about seats, orders or money.

pub mod convert;
mod options;
pub mod pg;
pub mod redis;
mod serve;
pub mod shutdown;
pub mod status;
pub mod telemetry;
pub mod validate;

pub use options::{LogFormat, ServerOptions};
pub use serve::GrpcServer;
