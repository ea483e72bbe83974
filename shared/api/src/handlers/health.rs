use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use domain::service::App;

use crate::dto::HealthResponse;
use crate::error::{ApiResult, ErrorBody};

/// Liveness with a store round trip: 200 when the store answers, 503 otherwise.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, body = HealthResponse), (status = 503, body = ErrorBody)))]
pub async fn healthz(State(app): State<Arc<App>>) -> ApiResult<Json<HealthResponse>> {
    app.store.ping().await.map_err(|e| domain::Error::Unavailable(e.to_string()))?;
    Ok(Json(HealthResponse { status: "ok", store: "ok" }))
}
