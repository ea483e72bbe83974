//! Instagram's Graph API with Instagram Login (professional accounts). The authorization code
//! gives a short-lived token, exchanged at once for a 60-day one (`ig_exchange_token`), which
//! is refreshed with itself (`ig_refresh_token`); Instagram takes no PKCE and issues no refresh
//! token. Reads: `/me` and `/{user-id}` (`followers_count`), `/{user-id}/media` (paged by
//! cursor), `/{media-id}` (likes, comments) and `/{media-id}/insights` (`views`, `shares`).
//! Errors are Meta's: `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`
//! — code 190 a dead token, 10 and 200–299 a missing permission, 4/17/32/613 rate limits.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::accounts::{AuthorizeRequest, PlatformApi, PlatformError, PlatformProfile, PostStats, TokenGrant};
use domain::model::{Platform, now};
use domain::ports::Counters;
use serde_json::Value;

use super::{Caller, PlatformSettings, Reply, count, plain_id, text};

const AUTHORIZE: &str = "https://www.instagram.com";
const TOKEN: &str = "https://api.instagram.com";
const GRAPH: &str = "https://graph.instagram.com";
const VERSION: &str = "v23.0";
pub const SCOPES: &str = "instagram_business_basic,instagram_business_manage_insights";
const MEDIA_FIELDS: &str = "id,timestamp,permalink,like_count,comments_count";

pub struct Instagram {
    settings: PlatformSettings,
    caller: Caller,
}

impl Instagram {
    pub fn new(settings: PlatformSettings, counters: Option<Arc<dyn Counters>>) -> Instagram {
        Instagram { caller: Caller::new(Platform::Instagram, &settings, counters), settings }
    }

    fn graph(&self, path: &str) -> String {
        self.settings.url(GRAPH, &format!("/{VERSION}{path}"))
    }

    /// A long-lived token from `/access_token` or `/refresh_access_token`.
    fn long_lived(body: &Value, scopes: Vec<String>) -> Result<TokenGrant, PlatformError> {
        let access = text(&body["access_token"]).filter(|t| !t.is_empty());
        Ok(TokenGrant {
            access_token: access.ok_or_else(|| PlatformError::Malformed("no access_token".into()))?,
            refresh_token: None,
            expires_at: count(&body["expires_in"]).map(|s| now() + time::Duration::seconds(s.min(365 * 86_400) as i64)),
            scopes,
        })
    }

    fn stats(media: &Value) -> Result<PostStats, PlatformError> {
        let id = text(&media["id"]).ok_or_else(|| PlatformError::Malformed("media without an id".into()))?;
        Ok(PostStats {
            post_id: id,
            permalink: text(&media["permalink"]),
            author_id: None,
            posted_at: media["timestamp"].as_str().and_then(parse_timestamp),
            views: None,
            likes: count(&media["like_count"]),
            comments: count(&media["comments_count"]),
            shares: None,
        })
    }
}

/// Meta writes `2026-12-01T10:00:00+0000` (no colon in the offset).
fn parse_timestamp(s: &str) -> Option<time::OffsetDateTime> {
    let rfc3339 = time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(s, &rfc3339).ok().or_else(|| {
        let format =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory][offset_minute]");
        time::OffsetDateTime::parse(s, format).ok()
    })
}

fn meta_error(reply: &Reply, refreshing: bool) -> Option<PlatformError> {
    if (200..300).contains(&reply.status) || reply.status == 304 {
        return None;
    }
    let error = &reply.body["error"];
    let (code, subcode) = (error["code"].as_i64().unwrap_or(0), error["error_subcode"].as_i64().unwrap_or(0));
    let message = format!("({code}/{subcode}) {}", error["message"].as_str().unwrap_or_default());
    Some(match code {
        190 if refreshing => PlatformError::Revoked(message),
        190 => PlatformError::Unauthorized(message),
        10 | 200..=299 => PlatformError::Forbidden(message),
        4 | 17 | 32 | 613 | 80002 => PlatformError::RateLimited { retry_after: Duration::ZERO },
        100 if subcode == 33 => PlatformError::NotFound(message),
        1 | 2 => PlatformError::Unavailable(message),
        _ if reply.status == 429 => PlatformError::RateLimited { retry_after: Duration::ZERO },
        _ if reply.status >= 500 => PlatformError::Unavailable(format!("HTTP {} {message}", reply.status)),
        _ if reply.status == 401 => PlatformError::Unauthorized(message),
        _ => PlatformError::Refused(format!("HTTP {} {message}", reply.status)),
    })
}

fn classify(reply: &Reply) -> Option<PlatformError> {
    meta_error(reply, false)
}

fn classify_refresh(reply: &Reply) -> Option<PlatformError> {
    meta_error(reply, true)
}

/// The code exchange answers `{"data": [{access_token, user_id, permissions}]}` (older apps:
/// the fields at the top level); errors are `{"error_type", "code", "error_message"}`.
fn classify_exchange(reply: &Reply) -> Option<PlatformError> {
    if (200..300).contains(&reply.status) {
        return None;
    }
    if reply.body["error"].is_object() {
        return meta_error(reply, false);
    }
    let message =
        format!("{}: {}", reply.body["error_type"].as_str().unwrap_or_default(), reply.body["error_message"].as_str().unwrap_or_default());
    Some(if reply.status >= 500 { PlatformError::Unavailable(message) } else { PlatformError::Refused(message) })
}

#[async_trait]
impl PlatformApi for Instagram {
    fn platform(&self) -> Platform {
        Platform::Instagram
    }

    fn authorize_url(&self, r: &AuthorizeRequest) -> String {
        let mut url = url::Url::parse(&self.settings.url(AUTHORIZE, "/oauth/authorize")).expect("a valid base URL");
        url.query_pairs_mut()
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", &r.redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", SCOPES)
            .append_pair("state", &r.state);
        url.into()
    }

    async fn exchange_code(&self, code: &str, _verifier: &str, redirect_uri: &str) -> Result<TokenGrant, PlatformError> {
        let s = &self.settings;
        let url = self.settings.url(TOKEN, "/oauth/access_token");
        let form = [
            ("client_id", s.client_id.as_str()),
            ("client_secret", &s.client_secret),
            ("grant_type", "authorization_code"),
            ("redirect_uri", redirect_uri),
            ("code", code),
        ];
        let body = self.caller.call("oauth.access_token", || self.caller.http().post(&url).form(&form), None, classify_exchange).await?;
        let grant = if body["data"].is_array() { &body["data"][0] } else { &body };
        let short =
            text(&grant["access_token"]).ok_or_else(|| PlatformError::Malformed("the code exchange gave no access_token".into()))?;
        let scopes: Vec<String> = match &grant["permissions"] {
            Value::String(s) => s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect(),
            Value::Array(a) => a.iter().filter_map(text).collect(),
            _ => Vec::new(),
        };
        // The short-lived token lasts an hour: exchanged at once for a 60-day one.
        let url = self.settings.url(GRAPH, "/access_token");
        let query = [("grant_type", "ig_exchange_token"), ("client_secret", s.client_secret.as_str())];
        let request = || self.caller.http().get(&url).query(&query).bearer_auth(&short);
        let body = self.caller.call("access_token", request, None, classify).await?;
        Self::long_lived(&body, scopes)
    }

    async fn refresh(&self, current: &TokenGrant) -> Result<TokenGrant, PlatformError> {
        let url = self.settings.url(GRAPH, "/refresh_access_token");
        let request = || self.caller.http().get(&url).query(&[("grant_type", "ig_refresh_token")]).bearer_auth(&current.access_token);
        let body = self.caller.call("refresh_access_token", request, None, classify_refresh).await?;
        Self::long_lived(&body, current.scopes.clone())
    }

    async fn profile(&self, token: &str) -> Result<PlatformProfile, PlatformError> {
        let body = self.caller.get("me", &self.graph("/me?fields=user_id,username,followers_count"), token, classify).await?;
        let id = text(&body["user_id"]).or_else(|| text(&body["id"])).or_else(|| count(&body["user_id"]).map(|n| n.to_string()));
        Ok(PlatformProfile {
            external_id: id.ok_or_else(|| PlatformError::Malformed("a profile without an id".into()))?,
            handle: text(&body["username"]),
            followers: count(&body["followers_count"]),
        })
    }

    async fn followers(&self, token: &str, account: &str) -> Result<Option<u64>, PlatformError> {
        let id = plain_id(account).ok_or_else(|| PlatformError::NotFound(format!("account {account}")))?;
        let body = self.caller.get("user", &self.graph(&format!("/{id}?fields=followers_count")), token, classify).await?;
        Ok(count(&body["followers_count"]))
    }

    async fn posts(&self, token: &str, _account: &str, ids: &[String]) -> Result<Vec<PostStats>, PlatformError> {
        let mut out = Vec::new();
        for id in ids.iter().filter_map(|i| plain_id(i)) {
            let media = match self.caller.get("media", &self.graph(&format!("/{id}?fields={MEDIA_FIELDS}")), token, classify).await {
                Ok(m) => m,
                Err(PlatformError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let mut stats = Self::stats(&media)?;
            let insights =
                self.caller.get("media.insights", &self.graph(&format!("/{id}/insights?metric=views,shares")), token, classify).await;
            match insights {
                Ok(body) => {
                    for metric in body["data"].as_array().into_iter().flatten() {
                        let value = count(&metric["values"][0]["value"]).or_else(|| count(&metric["total_value"]["value"]));
                        match metric["name"].as_str() {
                            Some("views") => stats.views = value,
                            Some("shares") => stats.shares = value,
                            _ => {}
                        }
                    }
                }
                // Some media have no insights (posted before the account turned professional,
                // or in an album): the counts above still stand.
                Err(PlatformError::Forbidden(why) | PlatformError::Refused(why)) => {
                    tracing::info!(media = %id, %why, "no insights for this media");
                }
                Err(e) => return Err(e),
            }
            out.push(stats);
        }
        Ok(out)
    }

    async fn recent_posts(&self, token: &str, account: &str, max: usize) -> Result<Vec<PostStats>, PlatformError> {
        let id = plain_id(account).ok_or_else(|| PlatformError::NotFound(format!("account {account}")))?;
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        while out.len() < max {
            let mut url = self.graph(&format!("/{id}/media?fields={MEDIA_FIELDS}&limit=50"));
            if let Some(a) = &after {
                url.push_str(&format!("&after={}", form_urlencoded::byte_serialize(a.as_bytes()).collect::<String>()));
            }
            let body = self.caller.get("user.media", &url, token, classify).await?;
            let items = body["data"].as_array().ok_or_else(|| PlatformError::Malformed("media without `data`".into()))?;
            for item in items {
                out.push(Self::stats(item)?);
            }
            // Meta: `next` is present only while there is another page.
            after = body["paging"]["next"].is_string().then(|| text(&body["paging"]["cursors"]["after"])).flatten();
            if after.is_none() || items.is_empty() {
                break;
            }
        }
        out.truncate(max);
        Ok(out)
    }

    /// Instagram's addresses carry a shortcode, not the Graph API's media id: the post is
    /// found among the account's media by its permalink instead.
    fn post_id(&self, _post_url: &str) -> Option<String> {
        None
    }
}
