use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use domain::service::App;
use http::{HeaderMap, StatusCode};

use crate::error::{ApiResult, ErrorBody};
use crate::extract::RequestOrigin;

/// Receives a signed completion notice. `X-GVN-Webhook-Id` names the subscription whose secret
/// signed it; `X-GVN-Signature: t=<unix>,v1=<hex>` is HMAC-SHA256 over `"<t>.<raw body>"`,
/// accepted within 5 minutes of `t`.
#[utoipa::path(post, path = "/api/v1/hooks/completion", tag = "webhooks", request_body = crate::dto::CompletionNoticeBody,
    params(("X-GVN-Webhook-Id" = String, Header), ("X-GVN-Signature" = String, Header)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn completion(
    State(app): State<Arc<App>>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<StatusCode> {
    let body = body.map_err(crate::extract::body_error)?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    app.receive_completion(header("x-gvn-webhook-id"), header("x-gvn-signature"), &body, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}
