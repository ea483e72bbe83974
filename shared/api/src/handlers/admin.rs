use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use domain::Error;
use domain::model::AdminJobFilter;
use domain::service::App;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{decode_cursor, encode_cursor};
use crate::dto::{AdminJob, AdminJobsQuery, AdminJobsResponse, DeadLetter, DeadLetterList, DeadLettersQuery};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Auth, RequestOrigin, ValidQuery};

fn timestamp(field: &str, text: Option<&str>) -> Result<Option<OffsetDateTime>, Error> {
    text.map(|t| {
        OffsetDateTime::parse(t, &Rfc3339).map_err(|_| Error::validation(field, "must be an RFC 3339 timestamp, e.g. 2026-11-24T00:00:00Z"))
    })
    .transpose()
}

/// Every user's jobs with totals per status (admin role). Each call is audited.
#[utoipa::path(get, path = "/api/v1/admin/jobs", tag = "admin",
    params(AdminJobsQuery),
    responses((status = 200, body = AdminJobsResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn jobs(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    RequestOrigin(origin): RequestOrigin,
    ValidQuery(q): ValidQuery<AdminJobsQuery>,
) -> ApiResult<Json<AdminJobsResponse>> {
    let filter = AdminJobFilter {
        status: q.status,
        from: timestamp("from", q.from.as_deref())?,
        to: timestamp("to", q.to.as_deref())?,
        limit: 0, // set by the use case from the page size asked for
        cursor: decode_cursor(q.cursor.as_deref())?,
    };
    let page = app.admin_jobs(&principal, filter, q.limit, &origin).await?;
    let items = page
        .items
        .into_iter()
        .map(|j| AdminJob {
            job_id: j.id,
            user_id: j.user_id,
            status: j.status,
            score: j.score,
            confidence: j.confidence,
            created_at: j.created_at,
            completed_at: j.completed_at,
        })
        .collect();
    Ok(Json(AdminJobsResponse { items, totals: page.totals, next_cursor: page.next_cursor.map(encode_cursor) }))
}

/// Webhook deliveries that were given up on, newest first (admin role). Each call is audited.
#[utoipa::path(get, path = "/api/v1/admin/dead-letters", tag = "admin",
    params(DeadLettersQuery),
    responses((status = 200, body = DeadLetterList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn dead_letters(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    RequestOrigin(origin): RequestOrigin,
    ValidQuery(q): ValidQuery<DeadLettersQuery>,
) -> ApiResult<Json<DeadLetterList>> {
    let items = app
        .dead_letters(&principal, q.limit, &origin)
        .await?
        .into_iter()
        .map(|d| DeadLetter {
            delivery_id: d.id,
            job_id: d.job_id,
            target_url: d.target_url,
            event: d.event,
            attempts: d.attempts,
            last_error: d.last_error,
            created_at: d.created_at,
            dead_at: d.updated_at,
        })
        .collect();
    Ok(Json(DeadLetterList { items }))
}
