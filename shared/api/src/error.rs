//! The one error mapping of the HTTP edge: domain errors and request problems become a
//! status and the standard body `{"error": {"code", "message", "details"?}}`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use domain::Error;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `validation_failed`, `unauthorized`, `not_found`, …
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// Everything a handler can fail with.
#[derive(Debug)]
pub enum ApiError {
    Domain(Error),
    /// The body is not JSON at all.
    MalformedJson(String),
    UnsupportedMediaType,
    PayloadTooLarge,
    /// The body stopped arriving (the server's body idle timeout).
    BodyTimeout,
    MethodNotAllowed,
    NoRoute(String),
    /// The health check failed: the store cannot take writes.
    Unhealthy,
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Domain(e)
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Domain(e) => match e {
                Error::NotFound(_) => StatusCode::NOT_FOUND,
                Error::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
                Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
                Error::Forbidden(_) => StatusCode::FORBIDDEN,
                Error::Conflict(_) | Error::InProgress(_) => StatusCode::CONFLICT,
                Error::RateLimited { .. } | Error::QuotaExceeded { .. } | Error::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
                Error::InsufficientCredits { .. } => StatusCode::PAYMENT_REQUIRED,
                Error::Unavailable(_) | Error::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
                Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
            ApiError::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// What a person is told, as one line: the message, and a validation error's fields.
    pub fn public_message(&self) -> String {
        let message = self.body().message;
        match self {
            ApiError::Domain(Error::Validation(fields)) => {
                let named: Vec<String> = fields.iter().map(|f| format!("{}: {}", f.field, f.message)).collect();
                format!("{message} ({})", named.join("; "))
            }
            _ => message,
        }
    }

    fn body(&self) -> ErrorDetail {
        let (code, message, details) = match self {
            ApiError::Domain(e) => {
                let details = match e {
                    Error::Validation(fields) => Some(serde_json::json!({ "fields": fields })),
                    Error::RateLimited { policy, limit, window_secs, retry_after_secs } => Some(serde_json::json!({
                        "policy": policy, "limit": limit, "window_secs": window_secs, "retry_after_secs": retry_after_secs
                    })),
                    Error::QuotaExceeded { allowance, used, required, resets_at } => Some(serde_json::json!({
                        "allowance": allowance, "used": used, "required": required,
                        "remaining": allowance.saturating_sub(*used),
                        "resets_at": resets_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                    })),
                    Error::InsufficientCredits { required, balance } => Some(serde_json::json!({"required": required, "balance": balance})),
                    Error::TooMany { what, limit, .. } => Some(serde_json::json!({"what": what, "limit": limit})),
                    _ => None,
                };
                let message = match e {
                    // Never leak internals (SQL, paths) to callers; they are in the logs.
                    Error::Internal(_) => "internal error".to_string(),
                    Error::Unavailable(_) => "a dependency is unavailable; try again shortly".to_string(),
                    other => other.to_string(),
                };
                (e.code().to_string(), message, details)
            }
            ApiError::MalformedJson(why) => ("malformed_json".into(), format!("the body is not valid JSON: {why}"), None),
            ApiError::UnsupportedMediaType => ("unsupported_media_type".into(), "send the body as application/json".into(), None),
            ApiError::PayloadTooLarge => ("payload_too_large".into(), format!("the body exceeds {} bytes", crate::BODY_LIMIT_BYTES), None),
            ApiError::BodyTimeout => ("request_timeout".into(), "the request body stopped arriving".into(), None),
            ApiError::MethodNotAllowed => ("method_not_allowed".into(), "this route does not take that method".into(), None),
            ApiError::NoRoute(path) => ("not_found".into(), format!("no route for {path}"), None),
            ApiError::Unhealthy => {
                ("unavailable".into(), "the store cannot take writes".into(), Some(serde_json::json!({"store": "unwritable"})))
            }
        };
        ErrorDetail { code, message, details }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Domain(e @ (Error::Internal(_) | Error::Unavailable(_))) => tracing::error!(error = %e, "request failed"),
            _ => tracing::debug!(status = status.as_u16(), "request rejected"),
        }
        let mut response = (status, Json(ErrorBody { error: self.body() })).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Domain(Error::RateLimited { policy, limit, window_secs, retry_after_secs }) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
                insert_rate_headers(headers, policy, *limit, *window_secs, 0, *retry_after_secs);
            }
            ApiError::Domain(Error::QuotaExceeded { allowance, resets_at, .. }) => {
                // Not worth retrying before the period resets.
                let now = time::OffsetDateTime::now_utc();
                let secs = ((*resets_at - now).whole_seconds()).max(1) as u64;
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
                let period = (*resets_at - domain::usage::Period::of(now).starts_at).whole_seconds().max(1) as u64;
                insert_rate_headers(headers, "monthly", *allowance, period, 0, secs);
            }
            ApiError::Domain(Error::Unavailable(_) | Error::Overloaded(_) | Error::InProgress(_)) | ApiError::Unhealthy => {
                // Busy or a dependency down: worth retrying soon.
                headers.insert(header::RETRY_AFTER, HeaderValue::from(1u32));
            }
            ApiError::Domain(Error::Unauthorized(_)) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"goviralnow\""));
            }
            _ => {}
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// One limit as the IETF RateLimit fields describe it (draft-ietf-httpapi-ratelimit-headers):
/// quota `limit` per window `window_secs`, `remaining` left, `reset_secs` until more.
pub struct RatePolicy<'a> {
    pub name: &'a str,
    pub limit: u64,
    pub window_secs: u64,
    pub remaining: u64,
    pub reset_secs: u64,
}

/// The IETF RateLimit fields for one policy: `RateLimit-Policy` (`"name";q=…;w=…`) and
/// `RateLimit` (`"name";r=…;t=…`, `t` in seconds, never an epoch).
pub fn insert_rate_headers(headers: &mut http::HeaderMap, policy: &str, limit: u64, window_secs: u64, remaining: u64, reset_secs: u64) {
    insert_rate_policies(headers, &[RatePolicy { name: policy, limit, window_secs, remaining, reset_secs }]);
}

/// The IETF RateLimit fields for several policies at once, as lists in one field each.
pub fn insert_rate_policies(headers: &mut http::HeaderMap, policies: &[RatePolicy<'_>]) {
    let policy: Vec<String> = policies.iter().map(|p| format!("\"{}\";q={};w={}", p.name, p.limit, p.window_secs)).collect();
    let state: Vec<String> = policies.iter().map(|p| format!("\"{}\";r={};t={}", p.name, p.remaining, p.reset_secs)).collect();
    if let (Ok(p), Ok(s)) = (HeaderValue::from_str(&policy.join(", ")), HeaderValue::from_str(&state.join(", "))) {
        headers.insert("ratelimit-policy", p);
        headers.insert("ratelimit", s);
    }
}
