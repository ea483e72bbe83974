//! TikTok's Display API with Login Kit (authorization code + PKCE; `client_key`, not
//! `client_id`). Access tokens last 24 h and refresh tokens a year, rotated on refresh.
//! Reads: `GET /v2/user/info/` (`follower_count`), `POST /v2/video/query/` (at most 20 ids)
//! and `POST /v2/video/list/` (paged by `cursor` while `has_more`). Every API answer carries
//! `{"error": {"code", "message", "log_id"}}`, `"ok"` on success; the token endpoint answers
//! errors as `{"error", "error_description", "log_id"}`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::accounts::{AuthorizeRequest, PlatformApi, PlatformError, PlatformProfile, PostStats, TokenGrant};
use domain::model::Platform;
use domain::ports::Counters;
use serde_json::{Value, json};

use super::{Caller, PlatformSettings, Reply, count, host_and_path, oauth_tokens, plain_id, text, token_classifier};

const AUTHORIZE: &str = "https://www.tiktok.com";
const API: &str = "https://open.tiktokapis.com";
pub const SCOPES: &str = "user.info.basic,user.info.stats,video.list";
const VIDEO_FIELDS: &str = "id,create_time,share_url,view_count,like_count,comment_count,share_count";
const IDS_PER_CALL: usize = 20;

pub struct TikTok {
    settings: PlatformSettings,
    caller: Caller,
}

impl TikTok {
    pub fn new(settings: PlatformSettings, counters: Option<Arc<dyn Counters>>) -> TikTok {
        TikTok { caller: Caller::new(Platform::Tiktok, &settings, counters), settings }
    }

    fn api(&self, path: &str) -> String {
        self.settings.url(API, &format!("/v2{path}"))
    }

    async fn token(&self, form: &[(&str, &str)], refreshing: bool) -> Result<TokenGrant, PlatformError> {
        let url = self.api("/oauth/token/");
        let body = self.caller.call("oauth.token", || self.caller.http().post(&url).form(form), None, token_classifier(refreshing)).await?;
        oauth_tokens(&body, ',')
    }

    async fn videos(&self, what: &str, token: &str, path: &str, body: Value) -> Result<Value, PlatformError> {
        let url = self.api(&format!("{path}?fields={VIDEO_FIELDS}"));
        let request = || self.caller.http().post(&url).bearer_auth(token).json(&body);
        self.caller.call(what, request, None, classify).await
    }

    fn stats(video: &Value) -> Result<PostStats, PlatformError> {
        let id = text(&video["id"]).or_else(|| count(&video["id"]).map(|n| n.to_string()));
        let id = id.ok_or_else(|| PlatformError::Malformed("a video without an id".into()))?;
        Ok(PostStats {
            post_id: id,
            permalink: text(&video["share_url"]),
            author_id: None,
            posted_at: count(&video["create_time"]).and_then(|t| time::OffsetDateTime::from_unix_timestamp(t as i64).ok()),
            views: count(&video["view_count"]),
            likes: count(&video["like_count"]),
            comments: count(&video["comment_count"]),
            shares: count(&video["share_count"]),
        })
    }

    fn video_list(body: &Value) -> Result<Vec<PostStats>, PlatformError> {
        match &body["data"]["videos"] {
            Value::Null => Ok(Vec::new()),
            Value::Array(v) => v.iter().map(Self::stats).collect(),
            _ => Err(PlatformError::Malformed("`data.videos` is not a list".into())),
        }
    }
}

fn classify(reply: &Reply) -> Option<PlatformError> {
    let code = reply.body["error"]["code"].as_str();
    if (200..300).contains(&reply.status) && code == Some("ok") {
        return None;
    }
    let code = code.unwrap_or_default();
    let message = format!(
        "{code}: {} (log_id {})",
        reply.body["error"]["message"].as_str().unwrap_or_default(),
        reply.body["error"]["log_id"].as_str().unwrap_or("-")
    );
    Some(match (reply.status, code) {
        (_, "access_token_invalid") | (401, "") => PlatformError::Unauthorized(message),
        (_, "scope_not_authorized" | "scope_permission_missed") => PlatformError::Forbidden(message),
        (_, "rate_limit_exceeded") | (429, _) => PlatformError::RateLimited { retry_after: Duration::ZERO },
        (_, "internal_error") | (500.., _) => PlatformError::Unavailable(message),
        (200..=299, "") => PlatformError::Malformed("an answer without `error.code`".into()),
        _ => PlatformError::Refused(format!("HTTP {} {message}", reply.status)),
    })
}

#[async_trait]
impl PlatformApi for TikTok {
    fn platform(&self) -> Platform {
        Platform::Tiktok
    }

    fn authorize_url(&self, r: &AuthorizeRequest) -> String {
        let mut url = url::Url::parse(&self.settings.url(AUTHORIZE, "/v2/auth/authorize/")).expect("a valid base URL");
        url.query_pairs_mut()
            .append_pair("client_key", &self.settings.client_id)
            .append_pair("scope", SCOPES)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &r.redirect_uri)
            .append_pair("state", &r.state)
            .append_pair("code_challenge", &r.code_challenge)
            .append_pair("code_challenge_method", "S256");
        url.into()
    }

    async fn exchange_code(&self, code: &str, verifier: &str, redirect_uri: &str) -> Result<TokenGrant, PlatformError> {
        let s = &self.settings;
        let form = [
            ("client_key", s.client_id.as_str()),
            ("client_secret", &s.client_secret),
            ("code", code),
            ("grant_type", "authorization_code"),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        self.token(&form, false).await
    }

    async fn refresh(&self, current: &TokenGrant) -> Result<TokenGrant, PlatformError> {
        let refresh = current.refresh_token.as_deref().ok_or_else(|| PlatformError::Revoked("TikTok gave no refresh token".into()))?;
        let s = &self.settings;
        let form = [
            ("client_key", s.client_id.as_str()),
            ("client_secret", &s.client_secret),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
        ];
        self.token(&form, true).await
    }

    async fn profile(&self, token: &str) -> Result<PlatformProfile, PlatformError> {
        let url = self.api("/user/info/?fields=open_id,username,display_name,follower_count");
        let body = self.caller.get("user.info", &url, token, classify).await?;
        let user = &body["data"]["user"];
        Ok(PlatformProfile {
            external_id: text(&user["open_id"]).ok_or_else(|| PlatformError::Malformed("a user without open_id".into()))?,
            handle: text(&user["username"]).or_else(|| text(&user["display_name"])),
            followers: count(&user["follower_count"]),
        })
    }

    /// The Display API shows only the token's own user, whatever `account` says.
    async fn followers(&self, token: &str, _account: &str) -> Result<Option<u64>, PlatformError> {
        Ok(self.profile(token).await?.followers)
    }

    async fn posts(&self, token: &str, _account: &str, ids: &[String]) -> Result<Vec<PostStats>, PlatformError> {
        let ids: Vec<String> = ids.iter().filter_map(|i| plain_id(i)).collect();
        let mut out = Vec::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            let body = self.videos("video.query", token, "/video/query/", json!({"filters": {"video_ids": chunk}})).await?;
            out.extend(Self::video_list(&body)?);
        }
        Ok(out)
    }

    async fn recent_posts(&self, token: &str, _account: &str, max: usize) -> Result<Vec<PostStats>, PlatformError> {
        let mut out = Vec::new();
        let mut cursor: Option<i64> = None;
        while out.len() < max {
            let mut request = json!({"max_count": 20});
            if let Some(c) = cursor {
                request["cursor"] = json!(c);
            }
            let body = self.videos("video.list", token, "/video/list/", request).await?;
            let page = Self::video_list(&body)?;
            let more = body["data"]["has_more"].as_bool().unwrap_or(false);
            cursor = body["data"]["cursor"].as_i64();
            let empty = page.is_empty();
            out.extend(page);
            if !more || cursor.is_none() || empty {
                break;
            }
        }
        out.truncate(max);
        Ok(out)
    }

    fn post_id(&self, post_url: &str) -> Option<String> {
        let (host, segments, _) = host_and_path(post_url)?;
        if host != "tiktok.com" {
            return None;
        }
        let at = segments.iter().position(|s| s == "video" || s == "photo")?;
        segments.get(at + 1).filter(|id| id.chars().all(|c| c.is_ascii_digit())).and_then(|id| plain_id(id))
    }
}
