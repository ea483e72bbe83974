//! A request's trace is its request id: the request span's OpenTelemetry trace id is the
//! `x-request-id` (ours are 32 hex digits, a trace id as it is; a client's own id is hashed
//! into one), so a support ticket's request id finds its trace. Without an exporter
//! installed this does nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Set once spans are exported: until then, correlating costs nothing (no random span id, no
/// hashing) on every request.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Called by whoever installs an OpenTelemetry exporter.
pub fn enable() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// The trace id a request id stands for.
pub fn trace_id_of(request_id: &str) -> TraceId {
    if request_id.len() == 32
        && let Ok(id) = TraceId::from_hex(request_id)
        && id != TraceId::INVALID
    {
        return id;
    }
    let digest = domain::auth::sha256_hex(request_id.as_bytes());
    TraceId::from_hex(&digest[..32]).unwrap_or(TraceId::INVALID)
}

/// Makes `span` the root of the request's trace.
pub fn correlate(span: &tracing::Span, request_id: &str) {
    if !EXPORTING.load(Ordering::Relaxed) {
        return;
    }
    let parent = SpanContext::new(
        trace_id_of(request_id),
        SpanId::from_bytes(domain::auth::random_bytes::<8>()),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_request_ids_are_trace_ids_and_others_are_hashed() {
        let ours = "0af7651916cd43dd8448eb211c80319c";
        assert_eq!(trace_id_of(ours).to_string(), ours);
        let theirs = trace_id_of("client-req-42");
        assert_ne!(theirs, TraceId::INVALID);
        assert_eq!(theirs, trace_id_of("client-req-42"));
        assert_ne!(trace_id_of("00000000000000000000000000000000"), TraceId::INVALID);
    }
}
