use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use domain::service::App;

use super::{decode_cursor, encode_cursor, path_id};
use crate::dto::{HistoryItem, HistoryQuery, HistoryResponse};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Auth, ValidQuery};

/// A user's jobs, newest first, paged by an opaque cursor that stays stable under inserts.
#[utoipa::path(get, path = "/api/v1/users/{user_id}/history", tag = "analysis",
    params(("user_id" = uuid::Uuid, Path), HistoryQuery),
    responses((status = 200, body = HistoryResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn history(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    Path(user_id): Path<String>,
    ValidQuery(q): ValidQuery<HistoryQuery>,
) -> ApiResult<Json<HistoryResponse>> {
    let cursor = decode_cursor(q.cursor.as_deref())?;
    let page = app.history(&principal, path_id(&user_id, "user")?, q.status, cursor, q.limit).await?;
    Ok(Json(HistoryResponse {
        items: page
            .items
            .into_iter()
            .map(|j| HistoryItem { job_id: j.job_id, score: j.score, status: j.status, created_at: j.created_at })
            .collect(),
        next_cursor: page.next_cursor.map(encode_cursor),
    }))
}
