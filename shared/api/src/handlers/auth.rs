use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use domain::Error;
use domain::service::{App, Credentials};

use axum::response::{IntoResponse, Response};
use domain::service::{AuthMethod, Principal};
use http::{HeaderValue, StatusCode, header};

use crate::dto::{SessionRequest, SessionResponse, TokenRequest, TokenResponse};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Auth, JsonBody, RequestOrigin, SESSION_COOKIE};

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

/// Sign in to the dashboard: the API key is exchanged for a session in an HttpOnly,
/// SameSite=Strict cookie (the page never keeps the key), and a CSRF token for the page.
#[utoipa::path(post, path = "/api/v1/auth/session", tag = "auth", request_body = SessionRequest,
    responses(
        (status = 200, body = SessionResponse, headers(("Set-Cookie" = String, description = "`gv_session=…; HttpOnly; SameSite=Strict; Path=/`"))),
        (status = 401, description = "Unknown or wrong key", body = ErrorBody),
        (status = 403, description = "Revoked key or inactive user; sent by another site's page", body = ErrorBody),
        (status = 415, description = "The body is not declared `application/json`", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "Too many failed attempts from this address or for this key", body = ErrorBody),
        (status = 503, description = "Authentication is busy; retry after `Retry-After`", body = ErrorBody),
    ))]
pub async fn open_session(
    State(app): State<Arc<App>>,
    RequestOrigin(origin): RequestOrigin,
    headers: http::HeaderMap,
    JsonBody(body): JsonBody<SessionRequest>,
) -> ApiResult<Response> {
    from_our_pages(&app, &headers)?;
    let session = app.open_session(&body.api_key, &origin).await?;
    let max_age = (session.expires_at - domain::model::now()).whole_seconds().max(0);
    let cookie = session_cookie(&session.token, max_age, app.settings.secure_cookies);
    let mut response = session_response(session.user, Some(session.csrf_token), Some(session.expires_at));
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// Who is signed in (any credential), and for a cookie session its CSRF token: a page that
/// was reloaded asks here.
#[utoipa::path(get, path = "/api/v1/auth/session", tag = "auth",
    responses((status = 200, body = SessionResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []), ("session" = [])))]
pub async fn session(Auth(principal): Auth) -> ApiResult<Response> {
    let Principal { user, method } = principal;
    let (csrf_token, expires_at) = match method {
        AuthMethod::Session { csrf, .. } => (Some(csrf), None),
        _ => (None, None),
    };
    Ok(session_response(user, csrf_token, expires_at))
}

/// Who is signed in, never cached (it carries the CSRF token).
fn session_response(user: domain::model::User, csrf_token: Option<String>, expires_at: Option<time::OffsetDateTime>) -> Response {
    let body = SessionResponse { user_id: user.id, email: user.email, plan: user.plan, roles: user.roles, csrf_token, expires_at };
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Sign out: the session is ended on the server (a copy of the cookie stops working too) and
/// the cookie cleared. Needs no credentials (a stale cookie can always be dropped), but
/// another site cannot sign a browser out.
#[utoipa::path(delete, path = "/api/v1/auth/session", tag = "auth",
    responses((status = 204), (status = 403, description = "Sent by another site's page", body = ErrorBody)))]
pub async fn close_session(
    State(app): State<Arc<App>>,
    RequestOrigin(origin): RequestOrigin,
    headers: http::HeaderMap,
) -> ApiResult<Response> {
    from_our_pages(&app, &headers)?;
    if let Some(token) = crate::extract::session_cookie(&headers) {
        app.close_session(token, &origin).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::SET_COOKIE, session_cookie("", 0, app.settings.secure_cookies));
    Ok(response)
}

/// Refuses a browser request made by another site's page (login CSRF: a page elsewhere,
/// even on another port of this host, must not sign the browser in as someone else). Browsers
/// say where a request comes from in `Sec-Fetch-Site` and `Origin`; clients that are not
/// browsers send neither and are let through.
fn from_our_pages(app: &App, headers: &http::HeaderMap) -> Result<(), Error> {
    let refused = |why: &str| Err(Error::Forbidden(format!("sign-in and sign-out are only taken from GoViralNow's own pages ({why})")));
    // A browser names the page's origin on every POST and DELETE: it must be ours (the
    // API's own, or where the dashboard is served, which may be another site of ours).
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default().trim_end_matches('/');
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
        let own = origin.split_once("://").is_some_and(|(_, authority)| !host.is_empty() && authority.eq_ignore_ascii_case(host));
        let dashboard = app.settings.dashboard_origins.iter().any(|p| p.eq_ignore_ascii_case(origin));
        return if own || dashboard { Ok(()) } else { refused(&format!("Origin: {origin}")) };
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or_default();
        if !matches!(site, "same-origin" | "none") {
            return refused(&format!("Sec-Fetch-Site: {site}"));
        }
    }
    Ok(())
}

fn session_cookie(token: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}{secure}"))
        .expect("a JWT is a valid cookie value")
}
