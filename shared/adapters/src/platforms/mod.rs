//! The platforms' APIs behind [`domain::accounts::PlatformApi`]: YouTube Data API v3, X API v2,
//! Instagram's Graph API (Instagram Login) and TikTok's Display API. Each adapter speaks its
//! API's documented shapes; what they share lives here:
//!
//! - one budget per platform (calls per window, counted in the hot counters so every Lambda
//!   shares it): spent, the adapter answers "quota exhausted until …" without calling; and
//!   within it a share per user (the user a call is made for, named by
//!   [`domain::accounts::spending_for`]), so one tenant cannot spend everyone's budget: theirs
//!   spent, they are told "share spent until …" and the others carry on;
//! - back-off: a 429 (or the platform's rate-limit error) waits for `Retry-After` (or X's
//!   `x-rate-limit-reset`) or an exponential delay, a few times, when the wait is short; a
//!   longer one is handed back as "rate limited, retry in …" for the scheduler;
//! - ETag revalidation: a GET answered with an `ETag` is asked again with `If-None-Match`, and
//!   a 304 reuses the kept body (bounded);
//! - answers read to at most 4 MiB; no redirects followed; a timeout per request.

pub mod instagram;
pub mod tiktok;
pub mod x;
pub mod youtube;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::accounts::{PlatformError, TokenGrant};
use domain::model::{Platform, now, to_micros};
use domain::ports::Counters;
use reqwest::header::{ETAG, HeaderMap, IF_NONE_MATCH, RETRY_AFTER};
use serde_json::Value;
use time::OffsetDateTime;

/// The largest answer read from a platform.
const BODY_MAX: usize = 4 * 1024 * 1024;
/// Bodies kept for ETag revalidation.
const ETAG_CACHE_MAX: usize = 512;

/// Calls allowed per window, per platform (the app's quota with it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub calls: u64,
    pub window: Duration,
    /// Windows start this long after each multiple of `window` since the epoch (YouTube's
    /// day starts at midnight Pacific: 08:00 UTC).
    pub offset: Duration,
    /// Calls one user's work may make per window (connecting, following, collecting).
    pub per_user: u64,
}

impl Budget {
    /// A tenth of the budget per user (at least one call): ten busy tenants can share a
    /// window, and no one of them can empty it.
    pub fn default_share(calls: u64) -> u64 {
        (calls / 10).max(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Retries after the first attempt.
    pub retries: u32,
    /// The first exponential delay (doubled each retry) when the platform names none.
    pub first: Duration,
    /// The longest wait slept inside one call; a longer one goes back to the caller.
    pub max_wait: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { retries: 3, first: Duration::from_millis(500), max_wait: Duration::from_secs(10) }
    }
}

#[derive(Clone, PartialEq)]
pub struct PlatformSettings {
    pub client_id: String,
    pub client_secret: String,
    /// None: the platform's real hosts. Some: every endpoint under this base, at the real
    /// path (a loopback fake in tests).
    pub base_url: Option<String>,
    pub timeout: Duration,
    pub budget: Budget,
    pub backoff: Backoff,
}

impl std::fmt::Debug for PlatformSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client secret never reaches a log.
        f.debug_struct("PlatformSettings")
            .field("client_id", &self.client_id)
            .field("base_url", &self.base_url)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl PlatformSettings {
    /// The platform's documented quota as the default budget.
    pub fn default_budget(platform: Platform) -> Budget {
        let (calls, window, offset) = match platform {
            // 10,000 units a day; every read used here costs 1.
            Platform::Youtube => (10_000, 86_400, 8 * 3600),
            // App-level reads per 15 minutes (the Basic tier's order of magnitude).
            Platform::X => (300, 900, 0),
            // 200 calls per hour per account, kept app-wide to stay clear of it.
            Platform::Instagram => (200, 3600, 0),
            // 600 requests per minute per endpoint.
            Platform::Tiktok => (600, 60, 0),
        };
        Budget { calls, window: Duration::from_secs(window), offset: Duration::from_secs(offset), per_user: Budget::default_share(calls) }
    }

    pub(crate) fn url(&self, real: &str, path: &str) -> String {
        match &self.base_url {
            Some(base) => format!("{}{path}", base.trim_end_matches('/')),
            None => format!("{real}{path}"),
        }
    }
}

/// An answer as read: status, headers and the body as JSON (Null when it is not JSON).
pub(crate) struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub json: bool,
}

impl Reply {
    pub fn retry_after(&self) -> Option<Duration> {
        let value = self.headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
        if let Ok(secs) = value.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        let at = OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
        Some(Duration::from_secs((at - now()).whole_seconds().max(0) as u64))
    }
}

/// How an adapter reads an answer: None for success, else what went wrong.
pub(crate) type Classify = fn(&Reply) -> Option<PlatformError>;

pub(crate) struct Caller {
    platform: Platform,
    http: reqwest::Client,
    budget: Budget,
    backoff: Backoff,
    counters: Option<Arc<dyn Counters>>,
    /// URL + token digest → (ETag, body).
    etags: Mutex<HashMap<String, (String, Value)>>,
    /// When the platform last said our quota is spent, until when.
    paused_until: Mutex<Option<OffsetDateTime>>,
}

impl Caller {
    pub fn new(platform: Platform, settings: &PlatformSettings, counters: Option<Arc<dyn Counters>>) -> Caller {
        let http =
            reqwest::Client::builder().timeout(settings.timeout).redirect(reqwest::redirect::Policy::none()).build().expect("a TLS client");
        Caller {
            platform,
            http,
            budget: settings.budget,
            backoff: settings.backoff,
            counters,
            etags: Mutex::new(HashMap::new()),
            paused_until: Mutex::new(None),
        }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The current budget window's end, and its counter key.
    fn window(&self, at: OffsetDateTime) -> (OffsetDateTime, String) {
        let (len, offset) = (self.budget.window.as_secs().max(1) as i64, self.budget.offset.as_secs() as i64);
        let index = (at.unix_timestamp() - offset).div_euclid(len);
        let end = OffsetDateTime::from_unix_timestamp((index + 1) * len + offset).unwrap_or(at);
        (end, format!("platform-budget:{}:{index}", self.platform.as_str()))
    }

    /// Takes one call from the user's share (when the call is made for a user) and from the
    /// budget, or says when there will be one. The share is counted first, so a user past it
    /// spends nothing of the others'.
    async fn spend(&self) -> Result<(), PlatformError> {
        let at = now();
        if let Some(until) = *self.paused_until.lock().unwrap_or_else(|p| p.into_inner())
            && until > at
        {
            return Err(PlatformError::QuotaExhausted { until });
        }
        let Some(counters) = &self.counters else { return Ok(()) };
        let (end, key) = self.window(at);
        if let Some(user) = domain::accounts::spent_for() {
            let used = counters
                .increment(&format!("{key}:user:{user}"), to_micros(end) + 3_600_000_000, to_micros(at))
                .await
                .map_err(|e| PlatformError::Unavailable(format!("the quota counter: {e}")))?;
            if used > self.budget.per_user {
                return Err(PlatformError::ShareSpent { until: end, share: self.budget.per_user, window: self.budget.window });
            }
        }
        let used = counters
            .increment(&key, to_micros(end) + 3_600_000_000, to_micros(at))
            .await
            .map_err(|e| PlatformError::Unavailable(format!("the quota counter: {e}")))?;
        if used > self.budget.calls { Err(PlatformError::QuotaExhausted { until: end }) } else { Ok(()) }
    }

    /// Remembers that the platform said our quota is spent.
    fn pause(&self, until: OffsetDateTime) {
        *self.paused_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(until);
    }

    /// Sends what `request` builds, under the budget, backing off and revalidating as the
    /// module describes; the body of a successful answer.
    pub async fn call(
        &self,
        what: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
        cache_key: Option<String>,
        classify: Classify,
    ) -> Result<Value, PlatformError> {
        use tracing::Instrument;
        let span = tracing::info_span!("platform_call", platform = self.platform.as_str(), call = what);
        self.attempts(what, request, cache_key, classify).instrument(span).await
    }

    /// A GET with the bearer token, revalidated with its ETag where the platform sends one.
    pub async fn get(&self, what: &str, url: &str, token: &str, classify: Classify) -> Result<Value, PlatformError> {
        self.call(what, || self.http.get(url).bearer_auth(token), Some(cache_key(url, token)), classify).await
    }

    async fn attempts(
        &self,
        what: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
        cache_key: Option<String>,
        classify: Classify,
    ) -> Result<Value, PlatformError> {
        let mut attempt = 0u32;
        loop {
            self.spend().await?;
            let mut builder = request();
            let cached = cache_key.as_ref().and_then(|k| self.etags.lock().unwrap_or_else(|p| p.into_inner()).get(k).cloned());
            if let Some((etag, _)) = &cached {
                builder = builder.header(IF_NONE_MATCH, etag);
            }
            let (failure, wait) = match self.send(builder).await {
                Err(e) => (e, None),
                Ok(reply) if reply.status == 304 && cached.is_some() => return Ok(cached.map(|(_, body)| body).unwrap_or_default()),
                Ok(reply) => match classify(&reply) {
                    None if !reply.json => return Err(PlatformError::Malformed(format!("{what}: the answer is not JSON"))),
                    None => {
                        self.keep_etag(cache_key.as_deref(), &reply);
                        return Ok(reply.body);
                    }
                    Some(PlatformError::QuotaExhausted { until }) => {
                        self.pause(until);
                        return Err(PlatformError::QuotaExhausted { until });
                    }
                    Some(e @ PlatformError::RateLimited { .. }) => {
                        let named = match e {
                            PlatformError::RateLimited { retry_after } if retry_after > Duration::ZERO => Some(retry_after),
                            _ => reply.retry_after(),
                        };
                        (e, named)
                    }
                    Some(e @ PlatformError::Unavailable(_)) => (e, reply.retry_after()),
                    Some(other) => return Err(other),
                },
            };
            let wait = wait.unwrap_or(self.backoff.first * 2u32.saturating_pow(attempt));
            if attempt >= self.backoff.retries || wait > self.backoff.max_wait {
                tracing::warn!(platform = self.platform.as_str(), call = what, attempts = attempt + 1, error = %failure, "giving up for now");
                return Err(match failure {
                    PlatformError::RateLimited { .. } => PlatformError::RateLimited { retry_after: wait },
                    other => other,
                });
            }
            tracing::info!(platform = self.platform.as_str(), call = what, wait_ms = wait.as_millis() as u64, error = %failure, "backing off");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn send(&self, builder: reqwest::RequestBuilder) -> Result<Reply, PlatformError> {
        let mut response = builder.send().await.map_err(|e| PlatformError::Unavailable(domain::error::chain(&e)))?;
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| PlatformError::Unavailable(domain::error::chain(&e)))? {
            if bytes.len() + chunk.len() > BODY_MAX {
                return Err(PlatformError::Malformed(format!("an answer over {} MiB", BODY_MAX >> 20)));
            }
            bytes.extend_from_slice(&chunk);
        }
        let parsed = serde_json::from_slice::<Value>(&bytes);
        let json = parsed.is_ok();
        Ok(Reply { status, headers, body: parsed.unwrap_or(Value::Null), json })
    }

    fn keep_etag(&self, key: Option<&str>, reply: &Reply) {
        let (Some(key), Some(etag)) = (key, reply.headers.get(ETAG).and_then(|v| v.to_str().ok())) else { return };
        let mut cache = self.etags.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= ETAG_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key.to_string(), (etag.to_string(), reply.body.clone()));
    }
}

/// A cache key for a GET: the URL and a digest of the token (answers differ by grant).
pub(crate) fn cache_key(url: &str, token: &str) -> String {
    use sha2::Digest;
    format!("{url}#{}", hex::encode(&sha2::Sha256::digest(token.as_bytes())[..8]))
}

/// A count as the platforms write them: a number, or a number in a string (YouTube).
pub(crate) fn count(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub(crate) fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

pub(crate) fn rfc3339(v: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(v.as_str()?, &time::format_description::well_known::Rfc3339).ok()
}

/// The standard OAuth2 token answer (RFC 6749 §5.1), as Google, X and TikTok send it.
pub(crate) fn oauth_tokens(body: &Value, scope_separator: char) -> Result<TokenGrant, PlatformError> {
    let access = body["access_token"].as_str().filter(|t| !t.is_empty());
    let access = access.ok_or_else(|| PlatformError::Malformed("the token answer has no access_token".into()))?;
    Ok(TokenGrant {
        access_token: access.to_string(),
        refresh_token: text(&body["refresh_token"]).filter(|t| !t.is_empty()),
        expires_at: count(&body["expires_in"]).map(|s| now() + time::Duration::seconds(s.min(10 * 365 * 86_400) as i64)),
        scopes: body["scope"]
            .as_str()
            .unwrap_or_default()
            .split(scope_separator)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

/// The error of an OAuth2 token endpoint (RFC 6749 §5.2): `invalid_grant` on a refresh means
/// the grant is gone.
pub(crate) fn oauth_error(reply: &Reply, refreshing: bool) -> Option<PlatformError> {
    if (200..300).contains(&reply.status) && reply.body.get("error").is_none_or(Value::is_null) {
        return None;
    }
    let code = reply.body["error"].as_str().unwrap_or_default();
    let message = format!("{code}: {}", reply.body["error_description"].as_str().unwrap_or_default());
    Some(match (reply.status, code) {
        (429, _) => PlatformError::RateLimited { retry_after: Duration::ZERO },
        (500.., _) => PlatformError::Unavailable(format!("HTTP {}", reply.status)),
        (_, "invalid_grant" | "invalid_token") if refreshing => PlatformError::Revoked(message),
        (_, "invalid_scope" | "access_denied") => PlatformError::Forbidden(message),
        _ => PlatformError::Refused(format!("HTTP {} {message}", reply.status)),
    })
}

/// [`oauth_error`] as a classifier.
pub(crate) fn token_classifier(refreshing: bool) -> Classify {
    if refreshing { |r| oauth_error(r, true) } else { |r| oauth_error(r, false) }
}

/// The host of a post address, without `www.` or `m.`.
pub(crate) fn host_and_path(url: &str) -> Option<(String, Vec<String>, url::Url)> {
    let u = url::Url::parse(url).ok()?;
    let host = u.host_str()?.trim_start_matches("www.").trim_start_matches("m.").to_string();
    let segments = u.path_segments()?.filter(|s| !s.is_empty()).map(str::to_string).collect();
    Some((host, segments, u))
}

/// An id as the platforms use them: short, and letters, digits, `-` or `_` only.
pub(crate) fn plain_id(s: &str) -> Option<String> {
    (!s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(headers: &[(&str, &str)]) -> Reply {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        Reply { status: 429, headers: map, body: Value::Null, json: false }
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        assert_eq!(reply(&[("retry-after", "7")]).retry_after(), Some(Duration::from_secs(7)));
        let soon = (now() + time::Duration::seconds(30)).format(&time::format_description::well_known::Rfc2822).unwrap();
        let wait = reply(&[("retry-after", &soon)]).retry_after().unwrap();
        assert!((28..=30).contains(&wait.as_secs()), "{wait:?}");
        assert_eq!(reply(&[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")]).retry_after(), Some(Duration::ZERO));
        assert_eq!(reply(&[]).retry_after(), None);
    }

    #[test]
    fn youtubes_quota_day_starts_at_midnight_pacific() {
        let s = PlatformSettings {
            client_id: "c".into(),
            client_secret: "s".into(),
            base_url: None,
            timeout: Duration::from_secs(1),
            budget: PlatformSettings::default_budget(Platform::Youtube),
            backoff: Backoff::default(),
        };
        let caller = Caller::new(Platform::Youtube, &s, None);
        let (end, key) = caller.window(time::macros::datetime!(2026-12-04 07:59 UTC));
        assert_eq!(end, time::macros::datetime!(2026-12-04 08:00 UTC));
        let (end2, key2) = caller.window(time::macros::datetime!(2026-12-04 08:00 UTC));
        assert_eq!(end2, time::macros::datetime!(2026-12-05 08:00 UTC));
        assert_ne!(key, key2);
    }
}
