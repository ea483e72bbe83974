//! X API v2 with OAuth 2.0 (authorization code + PKCE, confidential client: Basic auth at the
//! token endpoint; `offline.access` for a refresh token, which X rotates on every refresh).
//! Reads: `GET /2/users/me` and `/2/users/:id` (`public_metrics.followers_count`),
//! `GET /2/tweets?ids=…` (at most 100 ids; missing ones come back under `errors`), and
//! `GET /2/users/:id/tweets` (paged by `pagination_token`). Errors are problem documents
//! (`{"title", "detail", "type", "status"}`); a 429 names its reset in `x-rate-limit-reset`
//! (epoch seconds), and `UsageCapExceeded` means the month's post cap is spent.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::accounts::{AuthorizeRequest, PlatformApi, PlatformError, PlatformProfile, PostStats, TokenGrant};
use domain::model::{Platform, now};
use domain::ports::Counters;
use serde_json::Value;

use super::{Caller, PlatformSettings, Reply, count, host_and_path, oauth_tokens, plain_id, rfc3339, text, token_classifier};

const AUTHORIZE: &str = "https://x.com";
const API: &str = "https://api.x.com";
pub const SCOPES: &str = "tweet.read users.read offline.access";
const IDS_PER_CALL: usize = 100;
const TWEET_FIELDS: &str = "tweet.fields=public_metrics,created_at,author_id";

pub struct XApi {
    settings: PlatformSettings,
    caller: Caller,
}

impl XApi {
    pub fn new(settings: PlatformSettings, counters: Option<Arc<dyn Counters>>) -> XApi {
        XApi { caller: Caller::new(Platform::X, &settings, counters), settings }
    }

    fn api(&self, path: &str) -> String {
        self.settings.url(API, &format!("/2{path}"))
    }

    async fn get(&self, what: &str, url: String, token: &str) -> Result<Value, PlatformError> {
        self.caller.get(what, &url, token, classify).await
    }

    async fn token(&self, form: &[(&str, &str)], refreshing: bool) -> Result<TokenGrant, PlatformError> {
        let url = self.api("/oauth2/token");
        let s = &self.settings;
        let request = || self.caller.http().post(&url).basic_auth(&s.client_id, Some(&s.client_secret)).form(form);
        let body = self.caller.call("token", request, None, token_classifier(refreshing)).await?;
        oauth_tokens(&body, ' ')
    }

    fn stats(tweet: &Value, username: Option<&str>) -> Result<PostStats, PlatformError> {
        let id = text(&tweet["id"]).ok_or_else(|| PlatformError::Malformed("a post without an id".into()))?;
        let m = &tweet["public_metrics"];
        let shares = match (count(&m["retweet_count"]), count(&m["quote_count"])) {
            (None, None) => None,
            (r, q) => Some(r.unwrap_or(0).saturating_add(q.unwrap_or(0))),
        };
        Ok(PostStats {
            permalink: Some(format!("https://x.com/{}/status/{id}", username.unwrap_or("i/web"))),
            post_id: id,
            author_id: text(&tweet["author_id"]),
            posted_at: rfc3339(&tweet["created_at"]),
            views: count(&m["impression_count"]),
            likes: count(&m["like_count"]),
            comments: count(&m["reply_count"]),
            shares,
        })
    }

    fn tweets(body: &Value) -> Result<Vec<PostStats>, PlatformError> {
        match &body["data"] {
            // Every id missing: X answers with only `errors`.
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => items.iter().map(|t| Self::stats(t, None)).collect(),
            _ => Err(PlatformError::Malformed("`data` is not a list of posts".into())),
        }
    }
}

fn classify(reply: &Reply) -> Option<PlatformError> {
    if (200..300).contains(&reply.status) || reply.status == 304 {
        return None;
    }
    let title = reply.body["title"].as_str().unwrap_or_default();
    let message = format!("{title}: {}", reply.body["detail"].as_str().unwrap_or_default());
    Some(match reply.status {
        429 if title == "UsageCapExceeded" => PlatformError::QuotaExhausted { until: now() + time::Duration::days(1) },
        429 => {
            let reset = reply.headers.get("x-rate-limit-reset").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok());
            let wait = reset.map_or(0, |r| (r - now().unix_timestamp()).max(1));
            PlatformError::RateLimited { retry_after: Duration::from_secs(wait as u64) }
        }
        401 => PlatformError::Unauthorized(message),
        403 => PlatformError::Forbidden(message),
        404 => PlatformError::NotFound(message),
        500.. => PlatformError::Unavailable(format!("HTTP {} {message}", reply.status)),
        _ => PlatformError::Refused(format!("HTTP {} {message}", reply.status)),
    })
}

#[async_trait]
impl PlatformApi for XApi {
    fn platform(&self) -> Platform {
        Platform::X
    }

    fn authorize_url(&self, r: &AuthorizeRequest) -> String {
        let mut url = url::Url::parse(&self.settings.url(AUTHORIZE, "/i/oauth2/authorize")).expect("a valid base URL");
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", &r.redirect_uri)
            .append_pair("scope", SCOPES)
            .append_pair("state", &r.state)
            .append_pair("code_challenge", &r.code_challenge)
            .append_pair("code_challenge_method", "S256");
        url.into()
    }

    async fn exchange_code(&self, code: &str, verifier: &str, redirect_uri: &str) -> Result<TokenGrant, PlatformError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
            ("client_id", &self.settings.client_id),
        ];
        self.token(&form, false).await
    }

    async fn refresh(&self, current: &TokenGrant) -> Result<TokenGrant, PlatformError> {
        let refresh = current.refresh_token.as_deref().ok_or_else(|| PlatformError::Revoked("X gave no refresh token".into()))?;
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", &self.settings.client_id)];
        self.token(&form, true).await
    }

    async fn profile(&self, token: &str) -> Result<PlatformProfile, PlatformError> {
        let body = self.get("users.me", self.api("/users/me?user.fields=public_metrics"), token).await?;
        let user = &body["data"];
        Ok(PlatformProfile {
            external_id: text(&user["id"]).ok_or_else(|| PlatformError::Malformed("a user without an id".into()))?,
            handle: text(&user["username"]),
            followers: count(&user["public_metrics"]["followers_count"]),
        })
    }

    async fn followers(&self, token: &str, account: &str) -> Result<Option<u64>, PlatformError> {
        let id = plain_id(account).ok_or_else(|| PlatformError::NotFound(format!("user {account}")))?;
        let body = self.get("users.lookup", self.api(&format!("/users/{id}?user.fields=public_metrics")), token).await?;
        if body["data"].is_null() {
            return Err(PlatformError::NotFound(format!("user {id}")));
        }
        Ok(count(&body["data"]["public_metrics"]["followers_count"]))
    }

    async fn posts(&self, token: &str, _account: &str, ids: &[String]) -> Result<Vec<PostStats>, PlatformError> {
        let ids: Vec<String> = ids.iter().filter_map(|i| plain_id(i)).collect();
        let mut out = Vec::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            let body = self.get("tweets.lookup", self.api(&format!("/tweets?ids={}&{TWEET_FIELDS}", chunk.join(","))), token).await?;
            out.extend(Self::tweets(&body)?);
        }
        Ok(out)
    }

    async fn recent_posts(&self, token: &str, account: &str, max: usize) -> Result<Vec<PostStats>, PlatformError> {
        let id = plain_id(account).ok_or_else(|| PlatformError::NotFound(format!("user {account}")))?;
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        while out.len() < max {
            let mut url = self.api(&format!("/users/{id}/tweets?max_results=100&{TWEET_FIELDS}"));
            if let Some(n) = &next {
                url.push_str(&format!("&pagination_token={}", form_urlencoded::byte_serialize(n.as_bytes()).collect::<String>()));
            }
            let body = self.get("users.tweets", url, token).await?;
            let page = Self::tweets(&body)?;
            next = text(&body["meta"]["next_token"]);
            let empty = page.is_empty();
            out.extend(page);
            if next.is_none() || empty {
                break;
            }
        }
        out.truncate(max);
        Ok(out)
    }

    fn post_id(&self, post_url: &str) -> Option<String> {
        let (host, segments, _) = host_and_path(post_url)?;
        if host != "x.com" && host != "twitter.com" {
            return None;
        }
        let at = segments.iter().position(|s| s == "status")?;
        segments.get(at + 1).filter(|id| id.chars().all(|c| c.is_ascii_digit())).and_then(|id| plain_id(id))
    }
}
