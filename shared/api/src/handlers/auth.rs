use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use domain::Error;
use domain::service::{App, Credentials};

use crate::dto::{TokenRequest, TokenResponse};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{JsonBody, RequestOrigin};

/// Exchange a client id and secret, or an API key, for a bearer token.
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth", request_body = TokenRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "Unknown client or wrong secret/key", body = ErrorBody),
        (status = 403, description = "Revoked key or inactive user", body = ErrorBody),
        (status = 422, description = "Neither or both credential forms given", body = ErrorBody),
        (status = 429, description = "Too many failed attempts from this address or for this credential", body = ErrorBody),
        (status = 503, description = "Authentication is busy; retry after `Retry-After`", body = ErrorBody),
    ))]
pub async fn token(
    State(app): State<Arc<App>>,
    RequestOrigin(origin): RequestOrigin,
    JsonBody(body): JsonBody<TokenRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let credentials = match body {
        TokenRequest { client_id: Some(id), client_secret: Some(secret), api_key: None } => {
            Credentials::ClientSecret { client_id: id, client_secret: secret }
        }
        TokenRequest { client_id: None, client_secret: None, api_key: Some(key) } => Credentials::ApiKey(key),
        _ => return Err(Error::validation("body", "give either {client_id, client_secret} or {api_key}").into()),
    };
    let token = app.exchange_token(credentials, &origin).await?;
    Ok(Json(TokenResponse { access_token: token.access_token, expires_in: token.expires_in, token_type: "bearer" }))
}
