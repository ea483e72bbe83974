use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use domain::service::{App, IssuedKey};
use http::StatusCode;

use super::path_id;
use crate::dto::{ApiKeyList, ApiKeyResponse};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Auth, RequestOrigin};

fn issued(k: IssuedKey) -> (StatusCode, Json<ApiKeyResponse>) {
    (StatusCode::CREATED, Json(ApiKeyResponse { api_key: Some(k.plaintext), ..ApiKeyResponse::from(&k.key) }))
}

/// Issue a new API key. The key is in this response only.
#[utoipa::path(post, path = "/api/v1/keys", tag = "keys",
    responses((status = 201, body = ApiKeyResponse), (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn create(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    RequestOrigin(origin): RequestOrigin,
) -> ApiResult<(StatusCode, Json<ApiKeyResponse>)> {
    Ok(issued(app.issue_api_key(&principal, &origin).await?))
}

#[utoipa::path(get, path = "/api/v1/keys", tag = "keys",
    responses((status = 200, body = ApiKeyList), (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list(State(app): State<Arc<App>>, Auth(principal): Auth) -> ApiResult<Json<ApiKeyList>> {
    Ok(Json(ApiKeyList { items: app.list_api_keys(&principal).await?.iter().map(ApiKeyResponse::from).collect() }))
}

/// Replace a key: the old one is revoked and a new one issued, atomically.
#[utoipa::path(post, path = "/api/v1/keys/{key_id}/rotate", tag = "keys",
    params(("key_id" = uuid::Uuid, Path)),
    responses((status = 201, body = ApiKeyResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn rotate(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<ApiKeyResponse>)> {
    Ok(issued(app.rotate_api_key(&principal, path_id(&id, "api key")?, &origin).await?))
}

#[utoipa::path(delete, path = "/api/v1/keys/{key_id}", tag = "keys",
    params(("key_id" = uuid::Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn revoke(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app.revoke_api_key(&principal, path_id(&id, "api key")?, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}
