//! Credentials: random secrets, Argon2id hashes, JWTs and webhook signatures.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub const API_KEY_PREFIX: &str = "gvk";
const JWT_ISSUER: &str = "goviralnow";
const JWT_AUDIENCE: &str = "goviralnow-api";
/// How far a webhook signature's timestamp may be from now.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

#[derive(Clone)]
pub struct AuthConfig {
    pub jwt_secret: Vec<u8>,
    pub token_ttl_secs: u64,
    /// Argon2id memory cost in KiB (OWASP: 19456 with t=2, p=1).
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("jwt_secret", &"<redacted>")
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("argon2_memory_kib", &self.argon2_memory_kib)
            .field("argon2_iterations", &self.argon2_iterations)
            .finish()
    }
}

impl AuthConfig {
    fn argon2(&self) -> argon2::Argon2<'static> {
        let params = argon2::Params::new(self.argon2_memory_kib, self.argon2_iterations, 1, None)
            .expect("argon2 parameters are validated at config load");
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
    }

    /// Argon2id PHC string of `secret` with a fresh salt.
    pub fn hash_secret(&self, secret: &str) -> Result<String> {
        let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| Error::Internal(e.to_string()))?;
        self.argon2()
            .hash_password(secret.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("hashing failed: {e}")))
    }

    /// A hash of a random secret, verified against when the real one is missing, so an
    /// unknown client id takes as long to reject as a wrong secret.
    pub fn decoy_hash(&self) -> String {
        self.hash_secret("decoy").unwrap_or_default()
    }

    /// A token for the user; `key_id` names the API key it was exchanged for, so the token
    /// ends with the key.
    pub fn issue_token(&self, user_id: uuid::Uuid, key_id: Option<uuid::Uuid>, now_unix: i64) -> Result<String> {
        let claims = Claims {
            sub: user_id.to_string(),
            kid: key_id.map(|k| k.to_string()),
            iss: JWT_ISSUER.into(),
            aud: JWT_AUDIENCE.into(),
            iat: now_unix,
            exp: now_unix + self.token_ttl_secs as i64,
        };
        self.sign(&claims)
    }

    /// Every token of ours is these claims signed with HS256 and the one secret.
    fn sign(&self, claims: &impl Serialize) -> Result<String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(&self.jwt_secret))
            .map_err(|e| Error::Internal(format!("signing token: {e}")))
    }

    /// Verifies signature (HS256 only: `none` and every other algorithm are refused),
    /// expiry, issuer and audience; returns whom (and which key) it was issued to.
    pub fn verify_token(&self, token: &str) -> Result<TokenSubject> {
        let data =
            jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&self.jwt_secret), &validation(JWT_AUDIENCE)).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let reason = match e.kind() {
                    ErrorKind::ExpiredSignature => "token expired",
                    ErrorKind::InvalidSignature => "token signature invalid",
                    ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "token algorithm not accepted",
                    _ => "token invalid",
                };
                Error::Unauthorized(reason.into())
            })?;
        let invalid = || Error::Unauthorized("token invalid".into());
        let user_id = data.claims.sub.parse().map_err(|_| invalid())?;
        let key_id = data.claims.kid.as_deref().map(str::parse).transpose().map_err(|_| invalid())?;
        Ok(TokenSubject { user_id, key_id })
    }
}

/// What every token of ours must be: HS256 only (`none` and every other algorithm are
/// refused), ours, for `audience`, unexpired (5 s of clock skew allowed).
fn validation(audience: &str) -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[JWT_ISSUER]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    validation.leeway = 5;
    validation
}

/// A stream token's audience: it opens one job's live stream, and nothing else.
const STREAM_AUDIENCE: &str = "goviral-stream";
/// How long a stream token opens the stream for (a connection made in time may outlive it).
pub const STREAM_TOKEN_TTL_SECS: i64 = 300;

#[derive(Debug, Serialize, Deserialize)]
struct StreamClaims {
    sub: String,
    job: String,
    /// The API key behind the credential it was minted with: the stream ends with the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    /// The dashboard session it was minted in: the stream ends with the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
}

impl AuthConfig {
    /// A short-lived token that opens the live stream of `job_id` for `user_id` (browsers'
    /// EventSource cannot send headers, and an API key must never sit in a URL).
    /// It names the key and session the caller used, so revoking either ends it too.
    pub fn issue_stream_token(&self, subject: &StreamSubject, job_id: uuid::Uuid, now_unix: i64) -> Result<String> {
        let claims = StreamClaims {
            sub: subject.user_id.to_string(),
            job: job_id.to_string(),
            kid: subject.key_id.map(|k| k.to_string()),
            sid: subject.session_id.map(|s| s.to_string()),
            iss: JWT_ISSUER.into(),
            aud: STREAM_AUDIENCE.into(),
            iat: now_unix,
            exp: now_unix + STREAM_TOKEN_TTL_SECS,
        };
        self.sign(&claims)
    }

    /// Whom a stream token was issued to (and through which key and session), if it is
    /// valid, unexpired and for `job_id`.
    pub fn verify_stream_token(&self, token: &str, job_id: uuid::Uuid) -> Result<StreamSubject> {
        let key = DecodingKey::from_secret(&self.jwt_secret);
        let data = jsonwebtoken::decode::<StreamClaims>(token, &key, &validation(STREAM_AUDIENCE)).map_err(|e| {
            let expired = matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature);
            Error::Unauthorized(if expired { "stream token expired: ask for a new one" } else { "stream token invalid" }.into())
        })?;
        if data.claims.job != job_id.to_string() {
            return Err(Error::Unauthorized("this stream token is for another job".into()));
        }
        let invalid = || Error::Unauthorized("stream token invalid".into());
        Ok(StreamSubject {
            user_id: data.claims.sub.parse().map_err(|_| invalid())?,
            key_id: data.claims.kid.as_deref().map(str::parse).transpose().map_err(|_| invalid())?,
            session_id: data.claims.sid.as_deref().map(str::parse).transpose().map_err(|_| invalid())?,
        })
    }
}

/// Who a stream token speaks for, and the credentials it hangs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSubject {
    pub user_id: uuid::Uuid,
    pub key_id: Option<uuid::Uuid>,
    pub session_id: Option<uuid::Uuid>,
}

/// A dashboard session's audience: it rides in an HttpOnly cookie, never in a header.
const SESSION_AUDIENCE: &str = "goviral-session";
/// How long a dashboard session lasts before the user signs in again.
pub const SESSION_TTL_SECS: i64 = 12 * 3600;

#[derive(Debug, Serialize, Deserialize)]
struct SessionClaims {
    sub: String,
    /// The session's id: it is checked on every request, so ending it on the server ends
    /// every copy of the cookie.
    sid: String,
    /// The API key the session was opened with: the session ends with the key.
    kid: String,
    /// What every state-changing request of the session must send back in `X-CSRF-Token`.
    csrf: String,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
}

/// Who a verified session speaks for, and its CSRF token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSubject {
    pub user_id: uuid::Uuid,
    pub session_id: uuid::Uuid,
    pub key_id: uuid::Uuid,
    pub csrf: String,
}

impl AuthConfig {
    /// A session for the dashboard, opened with an API key (which is then forgotten by the
    /// browser): its own audience, so it is neither an access token nor a stream token.
    pub fn issue_session_token(&self, session: &SessionSubject, now_unix: i64) -> Result<String> {
        let (user_id, key_id, csrf) = (session.user_id, session.key_id, &session.csrf);
        let claims = SessionClaims {
            sub: user_id.to_string(),
            sid: session.session_id.to_string(),
            kid: key_id.to_string(),
            csrf: csrf.to_string(),
            iss: JWT_ISSUER.into(),
            aud: SESSION_AUDIENCE.into(),
            iat: now_unix,
            exp: now_unix + SESSION_TTL_SECS,
        };
        self.sign(&claims)
    }

    pub fn verify_session_token(&self, token: &str) -> Result<SessionSubject> {
        let key = DecodingKey::from_secret(&self.jwt_secret);
        let data = jsonwebtoken::decode::<SessionClaims>(token, &key, &validation(SESSION_AUDIENCE)).map_err(|e| {
            let expired = matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature);
            Error::Unauthorized(if expired { "the session has expired: sign in again" } else { "session invalid" }.into())
        })?;
        let invalid = || Error::Unauthorized("session invalid".into());
        Ok(SessionSubject {
            user_id: data.claims.sub.parse().map_err(|_| invalid())?,
            session_id: data.claims.sid.parse().map_err(|_| invalid())?,
            key_id: data.claims.kid.parse().map_err(|_| invalid())?,
            csrf: data.claims.csrf,
        })
    }
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSubject {
    pub user_id: uuid::Uuid,
    /// The API key the token was exchanged for (none for client credentials).
    pub key_id: Option<uuid::Uuid>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    /// The API key the token was exchanged for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

pub fn verify_secret(phc: &str, secret: &str) -> bool {
    match PasswordHash::new(phc) {
        // The parameters come from the hash itself, so old hashes verify after a cost change.
        Ok(hash) => argon2::Argon2::default().verify_password(secret.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the OS random source is available");
    buf
}

/// URL-safe random token with `bytes` bytes of entropy.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source is available");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// A new API key: `gvk_<12 hex prefix>_<43 char secret>`, and its prefix.
pub fn new_api_key() -> (String, String) {
    let prefix = hex::encode(random_bytes::<6>());
    (format!("{API_KEY_PREFIX}_{prefix}_{}", random_token(32)), prefix)
}

/// The lookup prefix of a well-formed key, or None.
pub fn api_key_prefix(key: &str) -> Option<&str> {
    let mut parts = key.splitn(3, '_');
    let (tag, prefix, secret) = (parts.next()?, parts.next()?, parts.next()?);
    let well_formed =
        tag == API_KEY_PREFIX && prefix.len() == 12 && prefix.bytes().all(|b| b.is_ascii_hexdigit()) && (20..=128).contains(&secret.len());
    well_formed.then_some(prefix)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `X-GVN-Signature` value for `body` sent at `timestamp`: `t=<unix>,v1=<hex hmac>`, the HMAC
/// being HMAC-SHA256 with the subscription secret over `"<unix>.<raw body>"`.
pub fn sign_webhook(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", hex::encode(webhook_mac(secret, timestamp, body).finalize().into_bytes()))
}

fn webhook_mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks a signature header against the raw body; the comparison is constant-time.
/// Returns the signed timestamp.
pub fn verify_webhook_signature(secret: &str, header: &str, body: &[u8], now_unix: i64) -> Result<i64, &'static str> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.push(hex::decode(v).map_err(|_| "signature is not hex")?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or("signature header has no timestamp")?;
    if (now_unix - timestamp).abs() > SIGNATURE_TOLERANCE_SECS {
        return Err("signature timestamp outside the 5 minute tolerance");
    }
    if signatures.is_empty() {
        return Err("signature header has no v1 signature");
    }
    // Several v1 values are allowed so a secret can be rolled without downtime.
    let valid = signatures.iter().any(|sig| webhook_mac(secret, timestamp, body).verify_slice(sig).is_ok());
    if valid { Ok(timestamp) } else { Err("signature mismatch") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AuthConfig {
        AuthConfig {
            jwt_secret: b"0123456789abcdef0123456789abcdef".to_vec(),
            token_ttl_secs: 60,
            argon2_memory_kib: 1024,
            argon2_iterations: 1,
        }
    }

    #[test]
    fn secrets_hash_and_verify() {
        let cfg = config();
        let hash = cfg.hash_secret("s3cret").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_secret(&hash, "s3cret"));
        assert!(!verify_secret(&hash, "s3cret!"));
        assert!(!verify_secret("not a hash", "s3cret"));
    }

    #[test]
    fn api_keys_parse() {
        let (key, prefix) = new_api_key();
        assert_eq!(api_key_prefix(&key), Some(prefix.as_str()));
        assert_eq!(api_key_prefix("gvk_short_abc"), None);
        assert_eq!(api_key_prefix("xyz_0123456789ab_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), None);
        assert_eq!(api_key_prefix(""), None);
    }

    #[test]
    fn tokens_round_trip_and_expire() {
        let cfg = config();
        let user = uuid::Uuid::new_v4();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert_eq!(cfg.verify_token(&cfg.issue_token(user, None, now).unwrap()).unwrap(), TokenSubject { user_id: user, key_id: None });
        let key = uuid::Uuid::new_v4();
        assert_eq!(cfg.verify_token(&cfg.issue_token(user, Some(key), now).unwrap()).unwrap().key_id, Some(key));
        let expired = cfg.issue_token(user, None, now - 3600).unwrap();
        assert!(matches!(cfg.verify_token(&expired), Err(Error::Unauthorized(m)) if m == "token expired"));
        let other = AuthConfig { jwt_secret: b"another-secret-another-secret-xx".to_vec(), ..config() };
        let forged = other.issue_token(user, None, now).unwrap();
        assert!(matches!(cfg.verify_token(&forged), Err(Error::Unauthorized(m)) if m == "token signature invalid"));
    }

    #[test]
    fn webhook_signatures_verify_in_window_only() {
        let body = br#"{"job_id":"x"}"#;
        let header = sign_webhook("whsec", 1_000_000, body);
        assert_eq!(verify_webhook_signature("whsec", &header, body, 1_000_100), Ok(1_000_000));
        assert_eq!(verify_webhook_signature("other", &header, body, 1_000_100), Err("signature mismatch"));
        assert_eq!(verify_webhook_signature("whsec", &header, b"{}", 1_000_100), Err("signature mismatch"));
        assert!(verify_webhook_signature("whsec", &header, body, 1_000_301).is_err());
        assert!(verify_webhook_signature("whsec", "v1=zz", body, 1_000_000).is_err());
        assert!(verify_webhook_signature("whsec", "t=1000000", body, 1_000_000).is_err());
    }
}

/// Equality that takes as long whatever the first difference (a token compared with a
/// header must not leak its prefix by timing).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
