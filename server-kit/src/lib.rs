//! What every TicketDrop server shares, so that each service's `main.rs` stays thin:
//!
//! - [`ServerOptions`]: the command-line and `TICKETDROP_*` options common to all servers.
//! - [`telemetry`]: structured `tracing` logs, as text or JSON, and OpenTelemetry traces;
//!   [`trace`]: the W3C trace context carried across every call.
//! - [`GrpcServer`]: binds first (port 0 works), then serves health, reflection and the
//!   service, and shuts down gracefully: health NOT_SERVING, a drain delay, in-flight
//!   calls finish, exit.
//! - [`browser`]: gRPC-Web beside gRPC on every server, CORS for the web page's origin
//!   only, and the page itself on the server that serves it.
//! - [`auth`]: who may call what — bearer JWTs checked in one layer against each
//!   service's policy — and [`outgoing`]: the credential every client call carries.
//! - [`metrics`]: Prometheus metrics on an HTTP port of their own, every gRPC call
//!   counted by method and code, with its latency, and the pools' saturation.
//! - [`rate`]: per-user and per-address rate limits on the calls fans repeat.
//! - [`pg`]: a PostgreSQL pool and ordered, idempotent migrations.
//! - [`redis`]: a managed Redis connection, retried at start.
//! - [`validate`]: the field checks every service shares (ids, timestamps), answered as
//!   the contract's `proto::error::FieldError`, so errors look the same on the wire.
//! - [`Allocator`]: the memory allocator every binary installs.
//!
//! It must never hold domain logic: nothing here knows about seats, orders or money.

pub mod auth;
pub mod browser;
pub mod convert;
pub mod metrics;
mod options;
pub mod outgoing;
pub mod pg;
pub mod rate;
pub mod redis;
pub mod retry;
mod serve;
pub mod shutdown;
pub mod telemetry;
pub mod trace;
pub mod validate;

pub use options::{LogFormat, ServerOptions};

/// The global allocator of every TicketDrop binary (`#[global_allocator]` in each
/// `main.rs`): mimalloc. A drop is a storm of small, short-lived allocations (HTTP/2
/// frames, protobuf messages, Redis replies) across threads, on which the system
/// allocator spent a fifth of the waiting room's CPU. Built with mimalloc's `no_thp`
/// (the workspace's Cargo.toml): mimalloc v3 otherwise advises transparent huge pages on
/// its arenas, and the kernel then zeroes a whole 2 MiB page at a first touch — 69 % of
/// the fans' client's CPU samples and 42 % of the room's in a 50,000-fan drop; without,
/// that drop took 13.0–16.4 s instead of 15.7–18.1 s (docs/benchmarks.md). `no_thp` only stops the
/// advice: on a host whose THP setting is `always` rather than `madvise`,
/// `MIMALLOC_ALLOW_THP=0` turns huge pages off for the whole process.
pub type Allocator = mimalloc::MiMalloc;

/// A named failpoint (the `fail` crate, compiled in with a crate's `failpoints` feature)
/// whose `return` action crashes the process on the spot — `abort()`, no cleanup, as a
/// power cut or `kill -9` would — for the crash tests and the chaos lab:
/// `FAILPOINTS="orders::after_write=3*off->1*return->off"` crashes at the fourth write.
/// Other actions (`sleep(ms)`, `panic`, ...) behave as `fail` documents. The calling crate
/// depends on `fail`.
#[macro_export]
macro_rules! crash_point {
    ($name:literal) => {
        fail::fail_point!($name, |_| {
            $crate::failpoint_fired($name);
            tracing::error!(failpoint = $name, "failpoint: crashing the process");
            std::process::abort()
        })
    };
}

/// Counts a failpoint whose action ran (`ticketdrop_failpoint_fired_total{failpoint}`):
/// the chaos lab's evidence that a planned fault happened. A crash point's count dies
/// with its process; the lab reads the exit signal and the log line instead.
pub fn failpoint_fired(name: &'static str) {
    ::metrics::counter!("ticketdrop_failpoint_fired_total", "failpoint" => name).increment(1);
}

/// The `--version` of a service: its version, and "(failpoints)" when the crate was built
/// with its `failpoints` feature (the chaos lab and the crash tests need those builds;
/// `make up`'s release builds have none).
#[macro_export]
macro_rules! version {
    () => {
        if cfg!(feature = "failpoints") {
            concat!(env!("CARGO_PKG_VERSION"), " (failpoints)")
        } else {
            env!("CARGO_PKG_VERSION")
        }
    };
}
pub use serve::GrpcServer;
