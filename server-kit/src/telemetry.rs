//! Structured `tracing` logs and OpenTelemetry traces. The level comes from `RUST_LOG`
//! (default `info`).
//!
//! Every span is also an OpenTelemetry span (`tracing-opentelemetry`), so each has a
//! trace id even when nothing exports them; [`crate::trace`] carries the W3C trace
//! context across gRPC calls. Spans are exported over OTLP/gRPC only when an endpoint is
//! configured (`--otlp-endpoint`, or the standard `OTEL_EXPORTER_OTLP_ENDPOINT`); without
//! one they keep their ids and record nothing else.
//!
//! JSON logs put the fields of the spans a line was written in at its top level: a call's
//! `trace_id` (and `txid` where the handler knows it), so one purchase's lines can be
//! joined across every service with `jq 'select(.trace_id == "…")'`.

use std::io::IsTerminal;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::filter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::LogFormat;

/// Keeps the tracer provider alive; dropping it flushes the spans not yet exported.
#[must_use = "the spans are flushed when this guard drops"]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Installs the global subscriber and tracer provider of the server `service`; call
/// once at the top of `main` and keep the guard. Needs a tokio runtime when
/// `otlp_endpoint` is set (the exporter runs on it).
pub fn init(
    format: LogFormat,
    service: &'static str,
    otlp_endpoint: Option<&str>,
) -> anyhow::Result<Telemetry> {
    init_with_filter(format, service, otlp_endpoint, "info")
}

/// [`init`], logging what `default_filter` lets through when `RUST_LOG` is unset (the
/// CLI logs only warnings). Spans are traced at INFO and above whatever the logs show.
pub fn init_with_filter(
    format: LogFormat,
    service: &'static str,
    otlp_endpoint: Option<&str>,
    default_filter: &str,
) -> anyhow::Result<Telemetry> {
    let mut provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service).build());
    let endpoint = otlp_endpoint.filter(|endpoint| !endpoint.is_empty());
    let exporting = endpoint.is_some();
    if let Some(endpoint) = endpoint {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .with_context(|| format!("building the OTLP exporter for {endpoint}"))?;
        provider = provider.with_span_processor(
            opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                exporter,
                opentelemetry_sdk::runtime::Tokio,
            )
            .build(),
        );
    }
    let provider = provider.build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    let traces = spans(provider.tracer(service), exporting);

    let filter =
        || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry().with(traces);
    match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_filter(filter()),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                json_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .flatten_event(true)
                    .flatten_span_list_on_top_level(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_filter(filter()),
            )
            .try_init(),
    }
    .context("installing the tracing subscriber")?;
    Ok(Telemetry { provider })
}

/// The OpenTelemetry layer: spans at INFO and above. With nothing exporting, a span needs
/// only its ids — the logs carry its trace id and outgoing calls its context — so it
/// records no location, thread, busy time or target, and no log line is copied into it as
/// a span event. Measured on a loop of 200,000 served-call spans (entered twice each,
/// the log layer beside): 3.1–3.6 µs a span with everything recorded, 2.4–2.6 µs so.
pub(crate) fn spans<S>(tracer: opentelemetry_sdk::trace::Tracer, exporting: bool) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(exporting)
        .with_threads(exporting)
        .with_tracked_inactivity(exporting)
        .with_target(exporting)
        .with_filter(
            filter::filter_fn(move |meta| {
                *meta.level() <= Level::INFO && (exporting || meta.is_span())
            })
            // Says what LevelFilter::INFO said: nothing below INFO is wanted here, so that
            // debug and trace callsites (and the `log` crate's records) stay off.
            .with_max_level_hint(Level::INFO),
        )
}
