use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use domain::service::App;
use http::StatusCode;

use super::path_id;
use crate::dto::{UploadRequest, UploadResponse};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Auth, JsonBody};

/// Start an upload: declare the file's media type and exact size, then send it with the
/// returned request (method, URL and headers exactly as given) before it expires. Name the
/// upload in `POST /api/v1/analyze` as `upload_id` once its status is `ready`.
#[utoipa::path(post, path = "/api/v1/uploads", tag = "uploads", request_body = UploadRequest,
    responses((status = 201, body = UploadResponse), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn create(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    JsonBody(body): JsonBody<UploadRequest>,
) -> ApiResult<(StatusCode, Json<UploadResponse>)> {
    let ticket = app.create_upload(&principal, body.into()).await?;
    let response = UploadResponse { upload: Some(ticket.put.into()), ..UploadResponse::new(&ticket.upload, false) };
    Ok((StatusCode::CREATED, Json(response)))
}

/// An upload's status; a ready upload comes with a short-lived download URL.
#[utoipa::path(get, path = "/api/v1/uploads/{upload_id}", tag = "uploads",
    params(("upload_id" = uuid::Uuid, Path)),
    responses((status = 200, body = UploadResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn status(State(app): State<Arc<App>>, Auth(principal): Auth, Path(id): Path<String>) -> ApiResult<Json<UploadResponse>> {
    let view = app.upload_view(&principal, path_id(&id, "upload")?).await?;
    Ok(Json(UploadResponse { download: view.download.map(Into::into), ..UploadResponse::new(&view.upload, view.expired) }))
}
