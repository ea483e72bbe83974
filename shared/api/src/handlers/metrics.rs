//! `goviral serve`'s operational metrics (admin only): Prometheus text at `/metrics`, and the
//! same series as JSON (`/metrics?format=json`) for the dashboard's admin page. The Lambdas
//! print theirs as CloudWatch EMF instead.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use domain::service::App;
use domain::telemetry::Metric;
use http::{HeaderValue, header};
use serde::Deserialize;

use crate::error::ApiResult;
use crate::extract::{Auth, ValidQuery};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsQuery {
    format: Option<MetricsFormat>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum MetricsFormat {
    Prometheus,
    Json,
}

pub async fn metrics(State(app): State<Arc<App>>, Auth(principal): Auth, ValidQuery(q): ValidQuery<MetricsQuery>) -> ApiResult<Response> {
    let metrics = app.operational_metrics(&principal).await?;
    metrics.set(Metric::LiveStreams, &[], super::events::open_streams() as f64);
    let mut response = if q.format == Some(MetricsFormat::Json) {
        Json(serde_json::json!({"series": metrics.snapshot()})).into_response()
    } else {
        let mut r = metrics.prometheus().into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
        r
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
