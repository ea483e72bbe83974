use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use domain::service::App;

use crate::dto::HealthResponse;
use crate::error::{ApiError, ApiResult, ErrorBody};

/// Health with a store round trip that writes: 200 when the store answers and takes
/// writes, 503 (with `Retry-After`) when it does not.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, body = HealthResponse), (status = 503, body = ErrorBody)))]
pub async fn healthz(State(app): State<Arc<App>>) -> ApiResult<Json<HealthResponse>> {
    if let Err(e) = app.store.ping().await {
        tracing::error!(error = %e, "health check: the store cannot take writes");
        return Err(ApiError::Unhealthy);
    }
    Ok(Json(HealthResponse { status: "ok", store: "ok" }))
}
