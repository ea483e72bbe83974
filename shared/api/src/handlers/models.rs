use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use domain::service::App;

use super::path_id;
use crate::dto::{ModelDecisionRequest, ModelVersionItem, ModelVersionsResponse, RollbackRequest};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Auth, JsonBody, RequestOrigin};

/// The model registry, newest first, each version with its gate metrics (admin role).
#[utoipa::path(get, path = "/api/v1/admin/models", tag = "admin",
    responses((status = 200, body = ModelVersionsResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list(State(app): State<Arc<App>>, Auth(principal): Auth) -> ApiResult<Json<ModelVersionsResponse>> {
    let items = app.model_versions(&principal, 100).await?.into_iter().map(Into::into).collect();
    Ok(Json(ModelVersionsResponse { items }))
}

/// Approve a candidate. One that did not beat the serving model on the gate needs
/// `override_gate` and a note; the decision and its gate metrics are audited.
#[utoipa::path(post, path = "/api/v1/admin/models/{model_version_id}/approve", tag = "admin", request_body = ModelDecisionRequest,
    params(("model_version_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, body = ModelVersionItem), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not a candidate, or it did not pass the gate (override needed)", body = ErrorBody),
        (status = 422, description = "An override without a note", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn approve(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ModelDecisionRequest>,
) -> ApiResult<Json<ModelVersionItem>> {
    let v = app.approve_model(&principal, path_id(&id, "model version")?, body.note, body.override_gate, &origin).await?;
    Ok(Json(v.into()))
}

/// Reject a candidate (or an approved version that never served). Audited.
#[utoipa::path(post, path = "/api/v1/admin/models/{model_version_id}/reject", tag = "admin", request_body = ModelDecisionRequest,
    params(("model_version_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, body = ModelVersionItem), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn reject(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ModelDecisionRequest>,
) -> ApiResult<Json<ModelVersionItem>> {
    Ok(Json(app.reject_model(&principal, path_id(&id, "model version")?, body.note, &origin).await?.into()))
}

/// Put an approved version (or one that served before) in service without a redeploy; the
/// serving one retires. Audited.
#[utoipa::path(post, path = "/api/v1/admin/models/{model_version_id}/promote", tag = "admin", request_body = ModelDecisionRequest,
    params(("model_version_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, body = ModelVersionItem), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "Not approved (or never served)", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn promote(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ModelDecisionRequest>,
) -> ApiResult<Json<ModelVersionItem>> {
    Ok(Json(app.promote_model(&principal, path_id(&id, "model version")?, body.note, &origin).await?.into()))
}

/// Put back the version that served before the current one. Audited.
#[utoipa::path(post, path = "/api/v1/admin/models/rollback", tag = "admin", request_body = RollbackRequest,
    responses(
        (status = 200, body = ModelVersionItem), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "Nothing served before", body = ErrorBody), (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn rollback(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    RequestOrigin(origin): RequestOrigin,
    JsonBody(body): JsonBody<RollbackRequest>,
) -> ApiResult<Json<ModelVersionItem>> {
    let name = body.name.unwrap_or_else(|| domain::registry::SCORER_MODEL.to_string());
    Ok(Json(app.rollback_model(&principal, &name, body.note, &origin).await?.into()))
}
