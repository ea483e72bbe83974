use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use domain::service::App;
use http::StatusCode;

use super::path_id;
use crate::dto::{CreateWebhookRequest, SigningSecretResponse, WebhookList, WebhookResponse};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Auth, JsonBody, RequestOrigin};

/// Subscribe an https URL to job events. The signing secret is in this response only.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = CreateWebhookRequest,
    responses((status = 201, body = WebhookResponse), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn create(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    RequestOrigin(origin): RequestOrigin,
    JsonBody(body): JsonBody<CreateWebhookRequest>,
) -> ApiResult<(StatusCode, Json<WebhookResponse>)> {
    let sub = app.create_webhook(&principal, &body.target_url, body.events, &origin).await?;
    let response = WebhookResponse { secret: Some(sub.secret.clone()), ..WebhookResponse::from(&sub) };
    Ok((StatusCode::CREATED, Json(response)))
}

/// Your webhook subscriptions (secrets are never shown again).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList), (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list(State(app): State<Arc<App>>, Auth(principal): Auth) -> ApiResult<Json<WebhookList>> {
    let items = app.list_webhooks(&principal).await?.iter().map(WebhookResponse::from).collect();
    Ok(Json(WebhookList { items }))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{webhook_id}", tag = "webhooks",
    params(("webhook_id" = uuid::Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn delete(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app.delete_webhook(&principal, path_id(&id, "webhook")?, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The secret that signs deliveries to your submissions' `notify_webhook` (subscriptions
/// have their own). Verify `X-GVN-Signature` with it, as for a subscription.
#[utoipa::path(get, path = "/api/v1/webhooks/signing-secret", tag = "webhooks",
    responses((status = 200, body = SigningSecretResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn signing_secret(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    RequestOrigin(origin): RequestOrigin,
) -> ApiResult<Json<SigningSecretResponse>> {
    let (signing_id, secret) = app.notify_signing_secret(&principal, &origin).await?;
    Ok(Json(SigningSecretResponse { signing_id, secret }))
}

/// Replaces the notify secret at once: deliveries signed from now on use the new one.
#[utoipa::path(post, path = "/api/v1/webhooks/signing-secret/rotate", tag = "webhooks",
    responses((status = 200, body = SigningSecretResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn rotate_signing_secret(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    RequestOrigin(origin): RequestOrigin,
) -> ApiResult<Json<SigningSecretResponse>> {
    let (signing_id, secret) = app.rotate_notify_secret(&principal, &origin).await?;
    Ok(Json(SigningSecretResponse { signing_id, secret }))
}
