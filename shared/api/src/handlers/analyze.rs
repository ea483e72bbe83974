use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use domain::Error;
use domain::service::{App, QuotaStatus, RateStatus};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::path_id;
use crate::dto::{AnalyzeRequest, AnalyzeResponse, JobQuery, JobResponse};
use crate::error::{ApiResult, ErrorBody, RatePolicy, insert_rate_policies};
use crate::extract::{Auth, JsonBody, RequestOrigin, ValidQuery};

/// Submit content for analysis. Returns at once with a job id; the pipeline does the work.
#[utoipa::path(post, path = "/api/v1/analyze", tag = "analysis", request_body = AnalyzeRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body return the same job; same key, other body: 409")),
    responses(
        (status = 201, body = AnalyzeResponse, headers(("Location" = String), ("X-RateLimit-Remaining" = u64),
            ("RateLimit-Policy" = String, description = "`\"submissions\";q=<limit>;w=60, \"monthly\";q=<allowance>;w=<seconds in the month>`"),
            ("RateLimit" = String, description = "`\"submissions\";r=<remaining>;t=<seconds>, \"monthly\";r=<units left>;t=<seconds to the reset>`"),
            ("X-Credits-Remaining" = u64, description = "Prepaid units left, on accounts that pay in advance"))),
        (status = 402, description = "`insufficient_credits`: prepaid credits do not cover it; details say what is needed and held", body = ErrorBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "`upload_id` names no upload of yours", body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "`rate_limit_exceeded` (the per-minute burst; retry after Retry-After) or `quota_exceeded` \
            (the month's allowance is spent: details give allowance, used and resets_at; Retry-After is the time to the reset)", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn submit(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    headers: HeaderMap,
    JsonBody(body): JsonBody<AnalyzeRequest>,
) -> ApiResult<Response> {
    let idempotency_key = idempotency_key(&headers)?;
    let (submitted, rate) = app.submit(&principal, body.into(), idempotency_key).await?;
    let body = AnalyzeResponse {
        job_id: submitted.job_id,
        status: submitted.status,
        estimated_completion_sec: submitted.estimated_completion_sec,
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    let h = response.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_str(&format!("/api/v1/analyze/{}", submitted.job_id)).expect("uuid is ASCII"));
    insert_metered_headers(h, submitted.replayed, rate.as_ref(), submitted.quota.as_ref());
    Ok(response)
}

/// The request's `Idempotency-Key`, if any.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| Error::validation("Idempotency-Key", "must be visible ASCII")),
    }
}

/// What every metered answer says: a replay, the per-minute limit and the monthly allowance
/// as IETF RateLimit fields, and prepaid credits left.
pub(crate) fn insert_metered_headers(h: &mut HeaderMap, replayed: bool, rate: Option<&RateStatus>, quota: Option<&QuotaStatus>) {
    if replayed {
        h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    let Some(&RateStatus { limit, remaining, reset_secs, window_secs }) = rate else { return };
    h.insert("x-ratelimit-limit", HeaderValue::from(limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    let mut policies = vec![RatePolicy { name: "submissions", limit, window_secs, remaining, reset_secs }];
    if let Some(q) = quota {
        // The monthly allowance, as a second policy of the same fields.
        policies.push(RatePolicy {
            name: "monthly",
            limit: q.allowance,
            window_secs: q.period_secs,
            remaining: q.remaining(),
            reset_secs: q.reset_secs,
        });
        if let Some(credits) = q.credits {
            h.insert("x-credits-remaining", HeaderValue::from(credits));
        }
    }
    insert_rate_policies(h, &policies);
}

/// A job's status, and once complete its score, confidence and (on request) insights and metrics.
#[utoipa::path(get, path = "/api/v1/analyze/{job_id}", tag = "analysis",
    params(("job_id" = uuid::Uuid, Path), JobQuery),
    responses((status = 200, body = JobResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn status(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    Path(job_id): Path<String>,
    ValidQuery(q): ValidQuery<JobQuery>,
) -> ApiResult<Json<JobResponse>> {
    let expand_metrics = match q.expand.as_deref() {
        None | Some("") => false,
        Some("metrics") => true,
        Some(other) => return Err(Error::validation("expand", format!("unknown expansion `{other}`; expected `metrics`")).into()),
    };
    let view = app.job_view(&principal, path_id(&job_id, "job")?, q.include_insights).await?;
    let job = view.job;
    Ok(Json(JobResponse {
        job_id: job.id,
        status: job.status,
        score: job.score,
        confidence: job.confidence,
        insights: view.insights,
        metrics: if expand_metrics { app.metrics_for_client(&job).await? } else { None },
        errors: job.errors,
        moderation_flags: job.moderation_flags,
        created_at: job.created_at,
        completed_at: job.completed_at,
    }))
}

/// Archive (soft-delete) a job: it leaves history and can no longer be read.
#[utoipa::path(delete, path = "/api/v1/analyze/{job_id}", tag = "analysis",
    params(("job_id" = uuid::Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn archive(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    RequestOrigin(origin): RequestOrigin,
    Path(job_id): Path<String>,
) -> ApiResult<StatusCode> {
    app.archive_job(&principal, path_id(&job_id, "job")?, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}
