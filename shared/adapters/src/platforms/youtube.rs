//! YouTube Data API v3 with Google's OAuth 2.0 (authorization code + PKCE, offline access).
//! Reads: `channels.list` (the creator's channel, subscribers, uploads playlist),
//! `playlistItems.list` (recent uploads, paged by `pageToken`), `videos.list` (statistics and
//! snippet, at most 50 ids a call). Errors follow Google's shape:
//! `{"error": {"code", "message", "errors": [{"reason", "domain"}], "status"}}` — `quotaExceeded`
//! spends the day (until midnight Pacific), `rateLimitExceeded` backs off.

use std::sync::Arc;

use async_trait::async_trait;
use domain::accounts::{AuthorizeRequest, PlatformApi, PlatformError, PlatformProfile, PostStats, TokenGrant};
use domain::model::Platform;
use domain::ports::Counters;
use serde_json::Value;

use super::{Caller, PlatformSettings, Reply, count, host_and_path, oauth_tokens, plain_id, rfc3339, text, token_classifier};

const AUTHORIZE: &str = "https://accounts.google.com";
const TOKEN: &str = "https://oauth2.googleapis.com";
const API: &str = "https://www.googleapis.com";
pub const SCOPE: &str = "https://www.googleapis.com/auth/youtube.readonly";
/// `videos.list` takes at most 50 ids.
const IDS_PER_CALL: usize = 50;

pub struct YouTube {
    settings: PlatformSettings,
    caller: Caller,
}

impl YouTube {
    pub fn new(settings: PlatformSettings, counters: Option<Arc<dyn Counters>>) -> YouTube {
        YouTube { caller: Caller::new(Platform::Youtube, &settings, counters), settings }
    }

    fn api(&self, path: &str) -> String {
        self.settings.url(API, &format!("/youtube/v3{path}"))
    }

    async fn get(&self, what: &str, url: String, token: &str) -> Result<Value, PlatformError> {
        self.caller.get(what, &url, token, classify).await
    }

    async fn token(&self, form: &[(&str, &str)], refreshing: bool) -> Result<TokenGrant, PlatformError> {
        let url = self.settings.url(TOKEN, "/token");
        let body = self.caller.call("token", || self.caller.http().post(&url).form(form), None, token_classifier(refreshing)).await?;
        oauth_tokens(&body, ' ')
    }

    fn stats(item: &Value) -> Result<PostStats, PlatformError> {
        let id = text(&item["id"]).ok_or_else(|| PlatformError::Malformed("a video without an id".into()))?;
        let s = &item["statistics"];
        Ok(PostStats {
            permalink: Some(format!("https://www.youtube.com/watch?v={id}")),
            post_id: id,
            author_id: text(&item["snippet"]["channelId"]),
            posted_at: rfc3339(&item["snippet"]["publishedAt"]),
            views: count(&s["viewCount"]),
            likes: count(&s["likeCount"]),
            comments: count(&s["commentCount"]),
            shares: None,
        })
    }

    async fn channel(&self, token: &str, parts: &str, filter: &str) -> Result<Value, PlatformError> {
        let body = self.get("channels.list", self.api(&format!("/channels?part={parts}&{filter}")), token).await?;
        let items = body["items"].as_array().ok_or_else(|| PlatformError::Malformed("channels.list without items".into()))?;
        items.first().cloned().ok_or_else(|| PlatformError::NotFound("no YouTube channel on this Google account".into()))
    }
}

/// Google's error body, sorted.
fn classify(reply: &Reply) -> Option<PlatformError> {
    if (200..300).contains(&reply.status) || reply.status == 304 {
        return None;
    }
    let error = &reply.body["error"];
    let reason = error["errors"][0]["reason"].as_str().unwrap_or_default();
    let message = format!("{reason}: {}", error["message"].as_str().unwrap_or_default());
    Some(match (reply.status, reason) {
        (_, "quotaExceeded" | "dailyLimitExceeded") => PlatformError::QuotaExhausted { until: next_pacific_midnight() },
        (403 | 429, "rateLimitExceeded" | "userRateLimitExceeded") | (429, _) => {
            PlatformError::RateLimited { retry_after: std::time::Duration::ZERO }
        }
        (401, _) => PlatformError::Unauthorized(message),
        (403, _) => PlatformError::Forbidden(message),
        (404, _) => PlatformError::NotFound(message),
        (500.., _) => PlatformError::Unavailable(format!("HTTP {} {message}", reply.status)),
        _ => PlatformError::Refused(format!("HTTP {} {message}", reply.status)),
    })
}

/// YouTube's quota resets at midnight Pacific Time (08:00 UTC in winter, 07:00 in summer;
/// the later is taken, so a retry never comes early).
fn next_pacific_midnight() -> time::OffsetDateTime {
    let now = domain::model::now();
    let today = now.replace_time(time::macros::time!(08:00));
    if today > now { today } else { today + time::Duration::days(1) }
}

#[async_trait]
impl PlatformApi for YouTube {
    fn platform(&self) -> Platform {
        Platform::Youtube
    }

    fn authorize_url(&self, r: &AuthorizeRequest) -> String {
        let mut url = url::Url::parse(&self.settings.url(AUTHORIZE, "/o/oauth2/v2/auth")).expect("a valid base URL");
        url.query_pairs_mut()
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", &r.redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", SCOPE)
            .append_pair("access_type", "offline")
            .append_pair("include_granted_scopes", "true")
            .append_pair("prompt", "consent")
            .append_pair("state", &r.state)
            .append_pair("code_challenge", &r.code_challenge)
            .append_pair("code_challenge_method", "S256");
        url.into()
    }

    async fn exchange_code(&self, code: &str, verifier: &str, redirect_uri: &str) -> Result<TokenGrant, PlatformError> {
        let s = &self.settings;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", redirect_uri),
            ("client_id", &s.client_id),
            ("client_secret", &s.client_secret),
        ];
        self.token(&form, false).await
    }

    async fn refresh(&self, current: &TokenGrant) -> Result<TokenGrant, PlatformError> {
        let refresh = current.refresh_token.as_deref().ok_or_else(|| PlatformError::Revoked("Google gave no refresh token".into()))?;
        let s = &self.settings;
        let form =
            [("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", &s.client_id), ("client_secret", &s.client_secret)];
        self.token(&form, true).await
    }

    async fn profile(&self, token: &str) -> Result<PlatformProfile, PlatformError> {
        let channel = self.channel(token, "snippet,statistics", "mine=true").await?;
        let external_id = text(&channel["id"]).ok_or_else(|| PlatformError::Malformed("a channel without an id".into()))?;
        let hidden = channel["statistics"]["hiddenSubscriberCount"].as_bool().unwrap_or(false);
        Ok(PlatformProfile {
            external_id,
            handle: text(&channel["snippet"]["customUrl"]).or_else(|| text(&channel["snippet"]["title"])),
            followers: if hidden { None } else { count(&channel["statistics"]["subscriberCount"]) },
        })
    }

    async fn followers(&self, token: &str, account: &str) -> Result<Option<u64>, PlatformError> {
        let id = plain_id(account).ok_or_else(|| PlatformError::NotFound(format!("channel {account}")))?;
        let channel = self.channel(token, "statistics", &format!("id={id}")).await?;
        let hidden = channel["statistics"]["hiddenSubscriberCount"].as_bool().unwrap_or(false);
        Ok(if hidden { None } else { count(&channel["statistics"]["subscriberCount"]) })
    }

    async fn posts(&self, token: &str, _account: &str, ids: &[String]) -> Result<Vec<PostStats>, PlatformError> {
        let ids: Vec<String> = ids.iter().filter_map(|i| plain_id(i)).collect();
        let mut out = Vec::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            let url = self.api(&format!("/videos?part=statistics,snippet&id={}&maxResults={IDS_PER_CALL}", chunk.join(",")));
            let body = self.get("videos.list", url, token).await?;
            let items = body["items"].as_array().ok_or_else(|| PlatformError::Malformed("videos.list without items".into()))?;
            for item in items {
                out.push(Self::stats(item)?);
            }
        }
        Ok(out)
    }

    async fn recent_posts(&self, token: &str, _account: &str, max: usize) -> Result<Vec<PostStats>, PlatformError> {
        let channel = self.channel(token, "contentDetails", "mine=true").await?;
        let uploads = text(&channel["contentDetails"]["relatedPlaylists"]["uploads"])
            .and_then(|p| plain_id(&p))
            .ok_or_else(|| PlatformError::Malformed("a channel without an uploads playlist".into()))?;
        let mut ids = Vec::new();
        let mut page: Option<String> = None;
        while ids.len() < max {
            let mut url = self.api(&format!("/playlistItems?part=contentDetails&playlistId={uploads}&maxResults=50"));
            if let Some(p) = &page {
                url.push_str(&format!("&pageToken={}", form_urlencoded::byte_serialize(p.as_bytes()).collect::<String>()));
            }
            let body = self.get("playlistItems.list", url, token).await?;
            let items = body["items"].as_array().ok_or_else(|| PlatformError::Malformed("playlistItems.list without items".into()))?;
            ids.extend(items.iter().filter_map(|i| text(&i["contentDetails"]["videoId"])));
            page = text(&body["nextPageToken"]);
            if page.is_none() || items.is_empty() {
                break;
            }
        }
        ids.truncate(max);
        let mut posts = self.posts(token, _account, &ids).await?;
        posts.sort_by_key(|p| std::cmp::Reverse(p.posted_at));
        Ok(posts)
    }

    fn post_id(&self, post_url: &str) -> Option<String> {
        let (host, segments, url) = host_and_path(post_url)?;
        match host.as_str() {
            "youtu.be" => plain_id(segments.first()?),
            "youtube.com" => match segments.first().map(String::as_str) {
                Some("watch") => url.query_pairs().find(|(k, _)| k == "v").and_then(|(_, v)| plain_id(&v)),
                Some("shorts" | "live" | "embed") => plain_id(segments.get(1)?),
                _ => None,
            },
            _ => None,
        }
    }
}
