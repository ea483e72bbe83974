use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use domain::outcomes::OutcomeInput;
use domain::service::App;
use http::StatusCode;

use super::path_id;
use crate::dto::{OutcomeHistoryResponse, OutcomeItem, OutcomeRequest};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Auth, JsonBody};

/// Record what a job's post did: counts observed at one moment (a history is kept, nothing is
/// overwritten). The job must be yours and complete.
#[utoipa::path(post, path = "/api/v1/analyze/{job_id}/outcome", tag = "analysis", request_body = OutcomeRequest,
    params(("job_id" = uuid::Uuid, Path)),
    responses(
        (status = 201, body = OutcomeItem),
        (status = 401, body = ErrorBody), (status = 404, description = "No such job of yours", body = ErrorBody),
        (status = 409, description = "The job is not complete, or already has 1,000 observations", body = ErrorBody),
        (status = 422, description = "Negative or absurd counts, a future time, a post address off the platform, no count at all", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn record(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    Path(job_id): Path<String>,
    JsonBody(body): JsonBody<OutcomeRequest>,
) -> ApiResult<(StatusCode, Json<OutcomeItem>)> {
    let input = OutcomeInput {
        platform: body.platform,
        post_url: body.post_url,
        observed_at: body.observed_at,
        views: body.views,
        likes: body.likes,
        comments: body.comments,
        shares: body.shares,
        followers: body.followers,
    };
    let outcome = app.record_outcome(&principal, path_id(&job_id, "job")?, input).await?;
    Ok((StatusCode::CREATED, Json(outcome.into())))
}

/// A job's prediction beside every observation of its post, newest first.
#[utoipa::path(get, path = "/api/v1/analyze/{job_id}/outcome", tag = "analysis",
    params(("job_id" = uuid::Uuid, Path)),
    responses((status = 200, body = OutcomeHistoryResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn history(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    Path(job_id): Path<String>,
) -> ApiResult<Json<OutcomeHistoryResponse>> {
    let h = app.outcomes(&principal, path_id(&job_id, "job")?).await?;
    Ok(Json(OutcomeHistoryResponse {
        job_id: h.job.id,
        status: h.job.status,
        score: h.job.score,
        confidence: h.job.confidence,
        observations: h.observations.into_iter().map(OutcomeItem::from).collect(),
    }))
}
