//! The signals that start a graceful shutdown.

use tokio::signal::unix::{SignalKind, signal};

/// Resolves on the first SIGTERM or SIGINT. The handlers are installed at the call, not
/// at the first poll: a SIGTERM that arrives while the server starts (health already
/// SERVING, the future not yet polled) starts a graceful shutdown instead of killing the
/// process. Call it inside the Tokio runtime.
pub fn signal_received() -> impl std::future::Future<Output = ()> + Send {
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutdown requested");
    }
}
