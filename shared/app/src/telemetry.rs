//! Logs and traces for every process. Logs go to stderr (JSON on Lambda). Traces are off
//! unless `GOVIRAL_OTLP_ENDPOINT` names an OTLP/HTTP collector (such as an OpenTelemetry
//! Collector or the ADOT Lambda layer on `http://localhost:4318/v1/traces`): then every span
//! (`request`, `stage`, …) is exported with OpenTelemetry, in batches, and a request's trace id
//! is its `x-request-id`. Spans carry ids, routes, stages and outcomes, never content.

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into())
}

/// Installs the process's subscriber (once; later calls change nothing).
pub fn init(json: bool, otlp_endpoint: Option<&str>, service: &str) {
    let provider = otlp_endpoint.and_then(|endpoint| {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| eprintln!("traces are not exported: the OTLP exporter for {endpoint} could not be built: {e}"))
            .ok()?;
        Some(provider_with(exporter, service))
    });
    install(json, provider);
}

/// A provider that hands finished spans to `exporter` in batches (a background thread, so
/// no Tokio runtime is blocked exporting).
pub fn provider_with(exporter: impl SpanExporter + 'static, service: &str) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service.to_string()).build())
        .build()
}

/// The subscriber: logs to stderr, and spans to `provider` where there is one.
pub fn install(json: bool, provider: Option<SdkTracerProvider>) {
    install_to(json, provider, std::io::stderr);
}

/// As `install`, with logs written to `writer` (tests read what was logged).
pub fn install_to<W>(json: bool, provider: Option<SdkTracerProvider>, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let fmt = if json { fmt.json().flatten_event(true).boxed() } else { fmt.boxed() };
    let otel = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("goviral")));
    if tracing_subscriber::registry().with(filter()).with(fmt).with(otel).try_init().is_ok()
        && let Some(p) = provider
    {
        let _ = PROVIDER.set(p);
        goviral_api::tracing_context::enable();
    }
}

/// Exports every finished span now: a Lambda calls it before its sandbox may be frozen, a
/// server as it stops.
pub fn flush() {
    if let Some(p) = PROVIDER.get()
        && let Err(e) = p.force_flush()
    {
        tracing::warn!(error = %e, "spans could not be exported");
    }
}
