//! Request ids: echo the client's `x-request-id` when it is sane, else mint one; put it on
//! the response and on every log line of the request.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use domain::telemetry::Metric;
use http::HeaderValue;
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";

#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

pub async fn middleware(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    request.extensions_mut().insert(RequestId(id.clone()));
    // The route's template, never the path itself (ids in paths are not metric labels).
    // Written `/api/v1/analyze/:job_id`: braces inside label values trip some exposition parsers.
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "(other)".to_string(), |p| p.as_str().replace('{', ":").replace('}', ""));
    let method = request.method().clone();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route, status = tracing::field::Empty);
    crate::tracing_context::correlate(&span, &id);
    let started = std::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    span.record("status", status);
    span.in_scope(|| tracing::info!(status, latency_us = elapsed.as_micros() as u64, "served"));
    let metrics = domain::telemetry::metrics();
    metrics.count(Metric::HttpRequests, &[("route", &route), ("method", method.as_str()), ("status", &status.to_string())]);
    metrics.observe_ms(Metric::HttpDuration, &[("route", &route), ("method", method.as_str())], elapsed.as_secs_f64() * 1000.0);
    response.headers_mut().insert(HEADER, HeaderValue::from_str(&id).expect("request ids are visible ASCII"));
    response
}
