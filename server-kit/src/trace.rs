//! The W3C trace context (`traceparent`) across the mesh: every served call runs in a
//! span that continues its caller's trace ([`TraceLayer`]), and every client call
//! carries the current span's context ([`inject`], done by
//! [`crate::outgoing::Outgoing`]). A purchase is one trace from the CLI through the
//! coordinator to every participant, and through the outbox to the notifier.

use std::task::{Context as TaskContext, Poll};

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{TraceContextExt, TraceId};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Runs each served call in a `grpc` span whose parent is the caller's `traceparent`;
/// the span records the `trace_id` (and the handler may record a `txid`, see
/// [`record_txid`]), and a debug line `answered` (target `ticketdrop::calls`) marks the
/// end of each call's handler in the logs, with its latency.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl<S> tower::Layer<S> for TraceLayer {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Traced { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Traced<S> {
    inner: S,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, ResBody> tower::Service<http::Request<B>> for Traced<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let span = request_span(request.uri().path(), request.headers());
        let started = std::time::Instant::now();
        let response = span.in_scope(|| self.inner.call(request));
        Box::pin(
            async move {
                let response = response.await;
                // A call refused at once answers trailers-only: its code is in the
                // headers; any other call's code comes later, in its trailers.
                let code = response.as_ref().ok().and_then(|response| {
                    response
                        .headers()
                        .get("grpc-status")
                        .and_then(|code| code.to_str().ok())
                        .map(|code| tonic::Code::from_bytes(code.as_bytes()))
                });
                tracing::debug!(
                    target: "ticketdrop::calls",
                    elapsed_ms = started.elapsed().as_secs_f64() * 1_000.0,
                    code = code.map(|code| format!("{code:?}")),
                    "answered"
                );
                response
            }
            .instrument(span),
        )
    }
}

fn request_span(path: &str, headers: &http::HeaderMap) -> tracing::Span {
    let span = tracing::info_span!(
        "grpc",
        otel.name = path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        trace_id = tracing::field::Empty,
        txid = tracing::field::Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&Headers(headers))
    });
    let _ = span.set_parent(parent);
    record_trace_id(&span);
    span
}

/// Records `span`'s trace id in its `trace_id` field.
fn record_trace_id(span: &tracing::Span) {
    let trace_id = span.context().span().span_context().trace_id();
    if trace_id != TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

/// The trace id of the current span, if it is part of a trace.
pub fn current_trace_id() -> Option<String> {
    let trace_id = tracing::Span::current()
        .context()
        .span()
        .span_context()
        .trace_id();
    (trace_id != TraceId::INVALID).then(|| trace_id.to_string())
}

/// Records `txid` on the current call's span, so every line of the call carries it.
pub fn record_txid(txid: &str) {
    tracing::Span::current().record("txid", txid);
}

/// The current span's context as a `traceparent` value, to store beside work that
/// another process continues later (the coordinator's outbox).
pub fn current_traceparent() -> Option<String> {
    let mut carrier = std::collections::HashMap::new();
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut carrier);
    });
    carrier.remove("traceparent")
}

/// A span named `relay` continuing the trace of `traceparent` (one stored by
/// [`current_traceparent`]), with its `trace_id` and `txid` recorded.
pub fn continued(traceparent: Option<&str>, txid: &str) -> tracing::Span {
    let span = tracing::info_span!("relay", trace_id = tracing::field::Empty, txid = txid,);
    if let Some(traceparent) = traceparent {
        let carrier =
            std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&carrier)
        });
        let _ = span.set_parent(parent);
    }
    record_trace_id(&span);
    span
}

/// Writes the current span's trace context into an outgoing call's metadata.
pub fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return;
    }
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut Metadata(metadata));
    });
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct Metadata<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            self.0.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    /// A subscriber with the OpenTelemetry layer, as `telemetry::init` installs it when
    /// nothing exports (the spans' ids only, the cheapest spans the mesh makes).
    fn traced() -> tracing::subscriber::DefaultGuard {
        use opentelemetry::trace::TracerProvider as _;
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(crate::telemetry::spans(provider.tracer("test"), false));
        tracing::subscriber::set_default(subscriber)
    }

    #[test]
    fn a_call_continues_its_callers_trace_and_passes_it_on() {
        let _guard = traced();
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .expect("header"),
        );
        let span = request_span("/ticketdrop.v1.CoordinatorService/Purchase", &headers);
        span.in_scope(|| {
            assert_eq!(
                current_trace_id().as_deref(),
                Some("4bf92f3577b34da6a3ce929d0e0e4736")
            );
            let mut metadata = tonic::metadata::MetadataMap::new();
            inject(&mut metadata);
            let sent = metadata
                .get("traceparent")
                .and_then(|value| value.to_str().ok())
                .expect("a traceparent");
            assert!(
                sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                "{sent}"
            );
            let stored = current_traceparent().expect("stored");
            let relayed = continued(Some(&stored), "tx-1");
            relayed.in_scope(|| {
                assert_eq!(
                    current_trace_id().as_deref(),
                    Some("4bf92f3577b34da6a3ce929d0e0e4736")
                );
            });
        });
        // Without a traceparent, a call starts a trace of its own.
        let root = request_span("/x/Y", &http::HeaderMap::new());
        let own = root.in_scope(current_trace_id).expect("a new trace");
        assert_ne!(own, "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}
