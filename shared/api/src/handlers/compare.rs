use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use domain::service::{App, CompareInput};
use http::HeaderMap;

use super::analyze::{idempotency_key, insert_metered_headers};
use crate::dto::{CompareRequest, CompareResponse};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Auth, JsonBody};

/// Rank 2–10 variants of a caption or headline, strongest first, with calibrated pairwise
/// probabilities and the reasons each leads the next. Synchronous (milliseconds); metered as
/// one unit, like a text analysis, against the same allowance, credits and rate limit.
#[utoipa::path(post, path = "/api/v1/compare", tag = "analysis", request_body = CompareRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body: the same ranking, not charged again; same key, other body: 409")),
    responses(
        (status = 200, body = CompareResponse, headers(("X-RateLimit-Remaining" = u64),
            ("RateLimit-Policy" = String, description = "`\"submissions\";q=<limit>;w=60, \"monthly\";q=<allowance>;w=<seconds in the month>`"),
            ("RateLimit" = String, description = "`\"submissions\";r=<remaining>;t=<seconds>, \"monthly\";r=<units left>;t=<seconds to the reset>`"),
            ("X-Credits-Remaining" = u64, description = "Prepaid units left, on accounts that pay in advance"))),
        (status = 402, description = "`insufficient_credits`", body = ErrorBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "`rate_limit_exceeded` or `quota_exceeded`, as for analyses", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn compare(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CompareRequest>,
) -> ApiResult<Response> {
    let input = CompareInput { variants: body.variants, platform_hint: body.platform_hint };
    let platform_hint = input.platform_hint;
    let (compared, rate) = app.compare(&principal, input, idempotency_key(&headers)?).await?;
    let ranking = compared.ranking;
    let body = CompareResponse {
        comparison_id: compared.comparison_id,
        ranking: ranking.ranking,
        pairwise: ranking.pairwise,
        confidence: ranking.confidence,
        platform_hint,
        model: ranking.model,
    };
    let mut response = Json(body).into_response();
    insert_metered_headers(response.headers_mut(), compared.replayed, rate.as_ref(), compared.quota.as_ref());
    Ok(response)
}
