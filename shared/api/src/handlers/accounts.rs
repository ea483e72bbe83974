use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use domain::accounts::Callback;
use domain::collect::TrackInput;
use domain::service::App;
use http::StatusCode;

use super::path_id;
use crate::dto::{
    AccountItem, AccountsResponse, CallbackQuery, ConnectRequest, ConnectResponse, FinishConnectionRequest, TrackPostRequest,
    TrackPostResponse, TrackedPostsResponse,
};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Auth, JsonBody, RequestOrigin, ValidQuery};

/// Start connecting a YouTube, X, Instagram or TikTok account: send the creator to
/// `authorize_url`; the platform brings them back to the callback within 10 minutes.
#[utoipa::path(post, path = "/api/v1/accounts/connect", tag = "accounts", request_body = ConnectRequest,
    responses(
        (status = 201, body = ConnectResponse),
        (status = 401, body = ErrorBody),
        (status = 409, description = "Too many connections waiting for consent", body = ErrorBody),
        (status = 422, description = "A platform this deployment has no app for", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn connect(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    JsonBody(body): JsonBody<ConnectRequest>,
) -> ApiResult<(StatusCode, Json<ConnectResponse>)> {
    let start = app.start_connection(&principal, body.platform).await?;
    Ok((
        StatusCode::CREATED,
        Json(ConnectResponse {
            platform: start.platform,
            authorize_url: start.authorize_url,
            state: start.state,
            expires_at: start.expires_at,
        }),
    ))
}

/// Where the platform sends the creator back. A browser (which arrives without its session:
/// the cookie is not sent on another site's redirect) is sent on to the dashboard's
/// `/accounts` page with what the platform said, and the page finishes the connection with
/// the creator's own session (`POST`). An API client finishes it here with its credentials.
/// Either way only the account that started the connection can finish it.
#[utoipa::path(get, path = "/api/v1/accounts/callback", tag = "accounts", params(CallbackQuery),
    responses(
        (status = 201, body = AccountItem),
        (status = 303, description = "A browser (Accept: text/html) is sent on to the dashboard's /accounts, which finishes the connection"),
        (status = 401, description = "No credentials: finish in the dashboard, or call with the credentials that started it", body = ErrorBody),
        (status = 403, description = "The creator declined; the grant lacks a permission; another account started this connection", body = ErrorBody),
        (status = 409, description = "Too many accounts connected", body = ErrorBody),
        (status = 422, description = "Unknown, used or expired state; a code the platform refused", body = ErrorBody),
        (status = 503, description = "The platform did not answer", body = ErrorBody),
    ),
    security((), ("bearer" = []), ("api_key" = [])))]
pub async fn callback(
    State(app): State<Arc<App>>,
    RequestOrigin(origin): RequestOrigin,
    ValidQuery(q): ValidQuery<CallbackQuery>,
    mut parts: http::request::Parts,
) -> ApiResult<axum::response::Response> {
    use axum::extract::FromRequestParts;
    use axum::response::IntoResponse;
    let browser = parts.headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    let credentials = ["authorization", "x-api-key"].iter().any(|h| parts.headers.contains_key(*h));
    if browser && !credentials {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("state", &q.state);
        for (name, value) in [("code", &q.code), ("error", &q.error), ("error_description", &q.error_description)] {
            if let Some(v) = value {
                query.append_pair(name, v);
            }
        }
        let location = format!("/accounts?{}", query.finish());
        let mut response = (StatusCode::SEE_OTHER, [(http::header::LOCATION, location)]).into_response();
        // The code is single-use and bound to our verifier, but keep it out of referrers.
        response.headers_mut().insert(http::header::REFERRER_POLICY, http::HeaderValue::from_static("no-referrer"));
        return Ok(response);
    }
    let Auth(principal) = Auth::from_request_parts(&mut parts, &app).await?;
    let callback = Callback { state: Some(q.state), code: q.code, error: q.error, error_description: q.error_description };
    let account = app.finish_connection(&principal, callback, &origin).await?;
    Ok((StatusCode::CREATED, Json(AccountItem::from(account))).into_response())
}

/// Finish a connection with what the platform's redirect brought (the dashboard sends it on
/// from `/accounts`, with the signed-in creator's session). Only the account that started the
/// connection can finish it.
#[utoipa::path(post, path = "/api/v1/accounts/callback", tag = "accounts", request_body = FinishConnectionRequest,
    responses(
        (status = 201, body = AccountItem),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The creator declined; the grant lacks a permission; another account started this connection", body = ErrorBody),
        (status = 409, description = "Too many accounts connected", body = ErrorBody),
        (status = 422, description = "Unknown, used or expired state; a code the platform refused", body = ErrorBody),
        (status = 503, description = "The platform did not answer", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []), ("session" = [])))]
pub async fn finish(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    RequestOrigin(origin): RequestOrigin,
    JsonBody(body): JsonBody<FinishConnectionRequest>,
) -> ApiResult<(StatusCode, Json<AccountItem>)> {
    let callback = Callback { state: Some(body.state), code: body.code, error: body.error, error_description: body.error_description };
    let account = app.finish_connection(&principal, callback, &origin).await?;
    Ok((StatusCode::CREATED, Json(AccountItem::from(account))))
}

/// Your connected accounts (never their tokens).
#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts",
    responses((status = 200, body = AccountsResponse), (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list(State(app): State<Arc<App>>, Auth(principal): Auth) -> ApiResult<Json<AccountsResponse>> {
    let items = app.accounts(&principal).await?.into_iter().map(AccountItem::from).collect();
    Ok(Json(AccountsResponse { items }))
}

/// Disconnect an account: its tokens are deleted and its posts no longer followed.
#[utoipa::path(delete, path = "/api/v1/accounts/{account_id}", tag = "accounts",
    params(("account_id" = uuid::Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn disconnect(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    RequestOrigin(origin): RequestOrigin,
    Path(account_id): Path<String>,
) -> ApiResult<StatusCode> {
    app.disconnect_account(&principal, path_id(&account_id, "account")?, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Follow a job's post on one of your connected accounts: read now, then at about 24 hours
/// and 7 days after posting; every reading is an outcome of the job.
#[utoipa::path(post, path = "/api/v1/analyze/{job_id}/posts", tag = "accounts", request_body = TrackPostRequest,
    params(("job_id" = uuid::Uuid, Path)),
    responses(
        (status = 201, body = TrackPostResponse),
        (status = 401, body = ErrorBody), (status = 404, description = "No such job of yours", body = ErrorBody),
        (status = 409, description = "The job is not complete, the post is followed already, or the account must be reconnected", body = ErrorBody),
        (status = 422, description = "Not your account; no such post on it; another account's post", body = ErrorBody),
        (status = 503, description = "The platform did not answer, or its quota is spent", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn track(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    Path(job_id): Path<String>,
    JsonBody(body): JsonBody<TrackPostRequest>,
) -> ApiResult<(StatusCode, Json<TrackPostResponse>)> {
    let input = TrackInput { account_id: body.account_id, post_url: body.post_url, post_id: body.post_id };
    let tracked = app.track_post(&principal, path_id(&job_id, "job")?, input).await?;
    Ok((StatusCode::CREATED, Json(TrackPostResponse { post: tracked.post.into(), observation: tracked.observation.into() })))
}

/// The posts followed for a job, with their schedule.
#[utoipa::path(get, path = "/api/v1/analyze/{job_id}/posts", tag = "accounts",
    params(("job_id" = uuid::Uuid, Path)),
    responses((status = 200, body = TrackedPostsResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn tracked(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    Path(job_id): Path<String>,
) -> ApiResult<Json<TrackedPostsResponse>> {
    let items = app.tracked_posts(&principal, path_id(&job_id, "job")?).await?.into_iter().map(Into::into).collect();
    Ok(Json(TrackedPostsResponse { items }))
}
