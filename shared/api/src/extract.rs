//! Extractors that turn a request into domain inputs, each failing with the standard body.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use domain::Error;
use domain::service::{App, Origin, Principal};
use http::header;
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The caller's address, put on the request by whoever accepted the connection (the local
/// server from the socket, the Lambda wrapper from API Gateway's request context).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// Where the request came from, for the audit log.
pub struct RequestOrigin(pub Origin);

impl<S: Send + Sync> FromRequestParts<S> for RequestOrigin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(RequestOrigin(Origin { ip: parts.extensions.get::<ClientIp>().map(|c| c.0) }))
    }
}

/// The dashboard's session cookie (HttpOnly; the browser sends it, page scripts cannot read it).
pub const SESSION_COOKIE: &str = "gv_session";

/// The session cookie's value, from any `Cookie` header.
pub fn session_cookie(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// An authenticated caller: `Authorization: Bearer <jwt>`, `X-API-Key: <key>`, or the
/// dashboard's session cookie (with `X-CSRF-Token` on anything that changes state).
pub struct Auth(pub Principal);

impl FromRequestParts<Arc<App>> for Auth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let bearer = parts.headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or_default());
        let api_key = parts.headers.get("x-api-key").map(|v| v.to_str().unwrap_or_default());
        let principal = match (bearer, api_key) {
            (Some(value), _) => {
                let token = value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| Error::Unauthorized("the Authorization header must be `Bearer <token>`".into()))?;
                app.authenticate_bearer(token).await?
            }
            (None, Some(key)) => {
                let origin = Origin { ip: parts.extensions.get::<ClientIp>().map(|c| c.0) };
                app.authenticate_api_key(key.trim(), &origin).await?
            }
            (None, None) => match session_cookie(&parts.headers) {
                Some(token) => {
                    let changes_state = !matches!(parts.method, http::Method::GET | http::Method::HEAD | http::Method::OPTIONS);
                    let csrf = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
                    app.authenticate_session(token, csrf, changes_state).await?
                }
                None => {
                    return Err(Error::Unauthorized("authenticate with `Authorization: Bearer <token>` or `X-API-Key`".into()).into());
                }
            },
        };
        Ok(Auth(principal))
    }
}

/// A JSON body, with every problem reported precisely: not JSON → 400, wrong media type →
/// 415, too large → 413, wrong shape → 422 naming the field.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        // Declared JSON or refused: a body with no type is what another site's page can send
        // without asking the browser first (a "simple" request), so it is never taken as JSON.
        let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
        let essence = content_type.as_deref().unwrap_or_default().split(';').next().unwrap_or_default().trim().to_string();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(request, state).await.map_err(body_error)?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Why a body could not be read: too large, stalled past the server's body timeout, or broken.
pub fn body_error(rejection: axum::extract::rejection::BytesRejection) -> ApiError {
    if rejection.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&rejection);
    while let Some(e) = source {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return ApiError::BodyTimeout;
        }
        source = e.source();
    }
    ApiError::MalformedJson(rejection.body_text())
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, so "not JSON" and "JSON of the wrong shape" get different answers.
    let StrictJson(value) = serde_json::from_slice(bytes).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    // Every body of this API is an object; serde would otherwise read an array positionally.
    if !value.is_object() {
        return Err(ApiError::Domain(Error::validation("body", "expected a JSON object")));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_string() } else { path };
        let message = e.into_inner().to_string();
        ApiError::Domain(Error::validation(&field, message))
    })
}

/// A query string, shape errors reported as 422 naming the parameter.
pub struct ValidQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ValidQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(ValidQuery).map_err(|e| {
            let field = e.path().to_string();
            ApiError::Domain(Error::validation(if field == "." { "query" } else { &field }, e.into_inner().to_string()))
        })
    }
}

/// A JSON value that refuses an object naming the same key twice. serde_json keeps the last
/// one, so `{"user_id": mine, "user_id": theirs}` would mean different things to different
/// parsers in front of us; an ambiguous body is refused instead.
struct StrictJson(serde_json::Value);

impl<'de> serde::Deserialize<'de> for StrictJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictJson)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictJson(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(serde_json::Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictJson(value) = map.next_value()?;
            if object.insert(key.clone(), value).is_some() {
                return Err(serde::de::Error::custom(format!("the key `{key}` appears twice in one object")));
            }
        }
        Ok(serde_json::Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        #[derive(serde::Deserialize, Debug)]
        struct Body {
            #[allow(dead_code)]
            a: serde_json::Value,
        }
        assert!(parse_json::<Body>(br#"{"a": {"b": [1, 2.5, "x", null, true]}}"#).is_ok());
        for body in [&br#"{"a": 1, "a": 2}"#[..], br#"{"a": {"b": 1, "b": 1}}"#, br#"{"a": [{"c": 1, "c": 2}]}"#] {
            match parse_json::<Body>(body) {
                Err(ApiError::MalformedJson(why)) => assert!(why.contains("appears twice"), "{why}"),
                other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }
}
