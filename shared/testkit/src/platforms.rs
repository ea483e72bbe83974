//! Fakes of the four platforms' APIs on 127.0.0.1, each answering at its real paths with its
//! documented shapes, and enforcing what the real ones enforce:
//!
//! - the authorization step ([`FakePlatform::consent`] plays the creator's browser): the
//!   client id and redirect address must be the app's; a code is issued for the PKCE
//!   challenge (not on Instagram, which takes none) and used once;
//! - the token endpoint checks the client's credentials (X: HTTP Basic), the code, the
//!   redirect address and `BASE64URL(SHA256(verifier)) == challenge`; refresh tokens rotate
//!   where the platform rotates them (X, TikTok) and are refused once revoked;
//! - every API call needs a live bearer token (an expired one gets the platform's 401);
//! - pagination as each API pages (YouTube `pageToken`, X `pagination_token`, Instagram
//!   cursors, TikTok `cursor`/`has_more`) and batch limits (50, 100, 20 ids);
//! - YouTube answers with an `ETag` and honours `If-None-Match` (304);
//! - scripted [`Fault`]s come first: an expired token, a missing scope, a 429 with its
//!   platform's retry hint, a spent quota, a malformed body, a server error.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use domain::model::Platform;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "goviral-test-client";
pub const CLIENT_SECRET: &str = "goviral-test-secret";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// The platform's answer to an expired access token.
    Expired,
    /// The grant lacks a permission.
    Scope,
    /// Throttled, with the platform's hint to wait this long.
    RateLimited { retry_after_secs: u64 },
    /// The app's quota with the platform is spent (YouTube's day, X's monthly cap).
    Quota,
    /// A 200 whose body is not the documented shape.
    Malformed,
    /// 503.
    ServerError,
}

#[derive(Debug, Clone)]
pub struct FakePost {
    pub id: String,
    pub created_at: time::OffsetDateTime,
    pub views: u64,
    pub likes: u64,
    pub comments: u64,
    pub shares: u64,
}

struct Grant {
    challenge: Option<String>,
    redirect_uri: String,
}

struct State {
    platform: Platform,
    account_id: String,
    handle: String,
    followers: u64,
    posts: Vec<FakePost>,
    codes: HashMap<String, Grant>,
    /// token → still valid.
    access: HashMap<String, bool>,
    refresh: HashMap<String, bool>,
    faults: VecDeque<Fault>,
    /// Method and path (with query) of every request.
    log: Vec<String>,
    not_modified: u64,
    counter: u64,
}

#[derive(Clone)]
pub struct FakePlatform {
    pub platform: Platform,
    pub base_url: String,
    state: Arc<Mutex<State>>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn query(uri: &Uri) -> HashMap<String, String> {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect()
}

fn bearer(headers: &HeaderMap, q: &HashMap<String, String>) -> Option<String> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
        .or_else(|| q.get("access_token").cloned())
}

fn json_reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

impl FakePlatform {
    /// A fake with one account holding `posts` posts, newest first, one an hour apart.
    pub async fn start(platform: Platform, posts: usize) -> FakePlatform {
        let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let numeric = matches!(platform, Platform::X | Platform::Tiktok | Platform::Instagram);
        let posts = (0..posts)
            .map(|i| FakePost {
                id: if numeric { format!("{}", 7_100_000_000_000_000_000u64 + i as u64) } else { format!("vid{i:08}") },
                created_at: now - time::Duration::hours(i as i64 + 1),
                views: 1_000 * (i as u64 + 1),
                likes: 100 + i as u64,
                comments: 10 + i as u64,
                shares: 5 + i as u64,
            })
            .collect();
        let state = Arc::new(Mutex::new(State {
            platform,
            account_id: match platform {
                Platform::Youtube => "UCgoviralTestChannel0001".into(),
                Platform::X => "2244994945".into(),
                Platform::Instagram => "17841400000000001".into(),
                Platform::Tiktok => "open-id-test-0001".into(),
            },
            handle: "goviral_creator".into(),
            followers: 12_345,
            posts,
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            faults: VecDeque::new(),
            log: Vec::new(),
            not_modified: 0,
            counter: 0,
        }));
        let shared = state.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
            let state = shared.clone();
            async move { handle(&state, method, uri, headers, body) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakePlatform { platform, base_url, state }
    }

    /// The adapter settings that reach this fake.
    pub fn settings(&self) -> goviral_adapters::platforms::PlatformSettings {
        use goviral_adapters::platforms::{Backoff, PlatformSettings};
        PlatformSettings {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            base_url: Some(self.base_url.clone()),
            timeout: std::time::Duration::from_secs(5),
            budget: PlatformSettings::default_budget(self.platform),
            backoff: Backoff { retries: 3, first: std::time::Duration::from_millis(20), max_wait: std::time::Duration::from_secs(3) },
        }
    }

    /// The creator's browser on the consent page: grants access and returns where the
    /// platform redirects (the app's callback with `code` and `state`).
    pub fn consent(&self, authorize_url: &str) -> String {
        let url = url::Url::parse(authorize_url).expect("an authorize URL");
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        let client = if self.platform == Platform::Tiktok { &q["client_key"] } else { &q["client_id"] };
        assert_eq!(client, CLIENT_ID, "the app's client id");
        assert_eq!(q["response_type"], "code");
        assert!(q.get("scope").is_some_and(|s| !s.is_empty()), "scopes are asked for");
        let challenge = q.get("code_challenge").cloned();
        if self.platform == Platform::Instagram {
            assert!(challenge.is_none(), "Instagram takes no PKCE");
        } else {
            assert_eq!(q.get("code_challenge_method").map(String::as_str), Some("S256"));
            assert!(challenge.as_ref().is_some_and(|c| c.len() == 43), "an S256 challenge");
        }
        let code = format!("code-{}", self.next());
        self.state.lock().unwrap().codes.insert(code.clone(), Grant { challenge, redirect_uri: q["redirect_uri"].clone() });
        let mut back = url::Url::parse(&q["redirect_uri"]).expect("a redirect address");
        back.query_pairs_mut().append_pair("code", &code).append_pair("state", &q["state"]);
        back.into()
    }

    fn next(&self) -> u64 {
        let mut s = self.state.lock().unwrap();
        s.counter += 1;
        s.counter
    }

    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state.lock().unwrap().faults.extend(faults);
    }

    pub fn clear_faults(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    /// Every access token issued so far stops working (it expired, or was revoked).
    pub fn expire_access_tokens(&self) {
        self.state.lock().unwrap().access.values_mut().for_each(|v| *v = false);
    }

    /// Every refresh token is refused from now on (the creator revoked the app).
    pub fn revoke_refresh_tokens(&self) {
        let mut s = self.state.lock().unwrap();
        s.refresh.values_mut().for_each(|v| *v = false);
        if s.platform == Platform::Instagram {
            s.access.values_mut().for_each(|v| *v = false);
        }
    }

    pub fn access_tokens(&self) -> Vec<String> {
        self.state.lock().unwrap().access.keys().cloned().collect()
    }

    pub fn refresh_tokens(&self) -> Vec<String> {
        self.state.lock().unwrap().refresh.keys().cloned().collect()
    }

    pub fn posts(&self) -> Vec<FakePost> {
        self.state.lock().unwrap().posts.clone()
    }

    pub fn account_id(&self) -> String {
        self.state.lock().unwrap().account_id.clone()
    }

    pub fn set_post(&self, post: FakePost) {
        let mut s = self.state.lock().unwrap();
        s.posts.retain(|p| p.id != post.id);
        s.posts.insert(0, post);
    }

    pub fn remove_post(&self, id: &str) {
        self.state.lock().unwrap().posts.retain(|p| p.id != id);
    }

    /// Requests seen, as `METHOD /path?query`.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// Requests answered 304 Not Modified.
    pub fn not_modified(&self) -> u64 {
        self.state.lock().unwrap().not_modified
    }

    /// The post's address on the platform.
    pub fn permalink(&self, id: &str) -> String {
        match self.platform {
            Platform::Youtube => format!("https://www.youtube.com/watch?v={id}"),
            Platform::X => format!("https://x.com/goviral_creator/status/{id}"),
            Platform::Instagram => format!("https://www.instagram.com/p/Sc{id}/"),
            Platform::Tiktok => format!("https://www.tiktok.com/@goviral_creator/video/{id}"),
        }
    }
}

/// Tokens, in each platform's style.
fn issue(s: &mut State, refresh: bool) -> (String, Option<String>) {
    s.counter += 1;
    let access = match s.platform {
        Platform::Youtube => format!("ya29.a0test{}", s.counter),
        Platform::Instagram => format!("IGAAtest{}", s.counter),
        Platform::Tiktok => format!("act.test{}", s.counter),
        Platform::X => format!("xaccess{}", s.counter),
    };
    s.access.insert(access.clone(), true);
    let refresh = refresh.then(|| {
        let r = format!("refresh-{}-{}", s.platform, s.counter);
        s.refresh.insert(r.clone(), true);
        r
    });
    (access, refresh)
}

/// The platform's documented error body for a fault (or for a dead token: `Expired`).
fn fault_reply(platform: Platform, fault: Fault) -> Response {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    match (platform, fault) {
        (_, Fault::ServerError) => json_reply(StatusCode::SERVICE_UNAVAILABLE, json!({"error": {"code": 503, "message": "Backend Error"}})),
        (Platform::Youtube, f) => {
            let (status, reason, message, domain) = match f {
                Fault::Expired => {
                    (401, "authError", "Request had invalid authentication credentials. Expected OAuth 2 access token.", "global")
                }
                Fault::Scope => (403, "insufficientPermissions", "Request had insufficient authentication scopes.", "global"),
                Fault::RateLimited { .. } => (
                    429,
                    "rateLimitExceeded",
                    "The request cannot be completed because you have exceeded your rate limit.",
                    "youtube.quota",
                ),
                Fault::Quota => {
                    (403, "quotaExceeded", "The request cannot be completed because you have exceeded your quota.", "youtube.quota")
                }
                Fault::Malformed => return (StatusCode::OK, "<html><body>Temporarily unavailable</body></html>").into_response(),
                Fault::ServerError => unreachable!(),
            };
            let mut r = json_reply(
                StatusCode::from_u16(status).unwrap(),
                json!({"error": {"code": status, "message": message, "errors": [{"message": message, "domain": domain, "reason": reason}],
                    "status": if status == 401 { "UNAUTHENTICATED" } else if status == 429 { "RESOURCE_EXHAUSTED" } else { "PERMISSION_DENIED" }}}),
            );
            if let Fault::RateLimited { retry_after_secs } = f {
                r.headers_mut().insert("retry-after", retry_after_secs.to_string().parse().unwrap());
            }
            r
        }
        (Platform::X, f) => {
            let mut r = match f {
                Fault::Expired => json_reply(
                    StatusCode::UNAUTHORIZED,
                    json!({"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}),
                ),
                Fault::Scope => json_reply(
                    StatusCode::FORBIDDEN,
                    json!({"title": "Forbidden", "type": "about:blank", "status": 403, "detail": "Forbidden"}),
                ),
                Fault::RateLimited { .. } => json_reply(
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}),
                ),
                Fault::Quota => json_reply(
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({"title": "UsageCapExceeded", "detail": "Usage cap exceeded: Monthly product cap", "type": "https://api.twitter.com/2/problems/usage-capped", "period": "Monthly", "scope": "Product"}),
                ),
                Fault::Malformed => json_reply(StatusCode::OK, json!({"data": "not a list"})),
                Fault::ServerError => unreachable!(),
            };
            if let Fault::RateLimited { retry_after_secs } = f {
                let h = r.headers_mut();
                h.insert("x-rate-limit-limit", "15".parse().unwrap());
                h.insert("x-rate-limit-remaining", "0".parse().unwrap());
                h.insert("x-rate-limit-reset", (now + retry_after_secs as i64).to_string().parse().unwrap());
            }
            r
        }
        (Platform::Instagram, f) => {
            let (status, code, subcode, message) = match f {
                Fault::Expired => (400, 190, 463, "Error validating access token: Session has expired."),
                Fault::Scope => (400, 10, 0, "(#10) Application does not have permission for this action"),
                Fault::RateLimited { .. } => (400, 4, 0, "(#4) Application request limit reached"),
                Fault::Quota => (400, 80002, 0, "There have been too many calls to this Instagram account."),
                Fault::Malformed => return (StatusCode::OK, "{\"data\": [").into_response(),
                Fault::ServerError => unreachable!(),
            };
            json_reply(
                StatusCode::from_u16(status).unwrap(),
                json!({"error": {"message": message, "type": "OAuthException", "code": code, "error_subcode": subcode, "fbtrace_id": "AbCdEfGh"}}),
            )
        }
        (Platform::Tiktok, f) => {
            let (status, code, message) = match f {
                Fault::Expired => (401, "access_token_invalid", "The access token is invalid or not found in the request."),
                Fault::Scope => (401, "scope_not_authorized", "The user did not authorize the scope required for completing this request."),
                Fault::RateLimited { .. } | Fault::Quota => (429, "rate_limit_exceeded", "The API rate limit was exceeded."),
                Fault::Malformed => {
                    return json_reply(
                        StatusCode::OK,
                        json!({"data": {"videos": 12}, "error": {"code": "ok", "message": "", "log_id": "x"}}),
                    );
                }
                Fault::ServerError => unreachable!(),
            };
            json_reply(
                StatusCode::from_u16(status).unwrap(),
                json!({"data": {}, "error": {"code": code, "message": message, "log_id": "20261204000000TEST"}}),
            )
        }
    }
}

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    json_reply(StatusCode::from_u16(status).unwrap(), json!({"error": error, "error_description": description, "log_id": "20261204TEST"}))
}

fn handle(state: &Mutex<State>, method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let mut s = state.lock().unwrap();
    let path = uri.path().to_string();
    s.log.push(format!("{method} {}", uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")));
    let q = query(&uri);
    let platform = s.platform;
    // The token endpoints.
    let token_path = match platform {
        Platform::Youtube => "/token",
        Platform::X => "/2/oauth2/token",
        Platform::Instagram => "/oauth/access_token",
        Platform::Tiktok => "/v2/oauth/token/",
    };
    if path == token_path && method == Method::POST {
        return token(&mut s, &headers, &form(&body));
    }
    if platform == Platform::Instagram && (path == "/access_token" || path == "/refresh_access_token") {
        return instagram_long_lived(&mut s, &path, &headers, &q);
    }
    if let Some(fault) = s.faults.pop_front() {
        return fault_reply(platform, fault);
    }
    let live = bearer(&headers, &q).and_then(|t| s.access.get(&t).copied()).unwrap_or(false);
    if !live {
        return fault_reply(platform, Fault::Expired);
    }
    match platform {
        Platform::Youtube => youtube(&mut s, &path, &q, &headers),
        Platform::X => x(&s, &path, &q),
        Platform::Instagram => instagram(&s, &path, &q),
        Platform::Tiktok => tiktok(&s, &method, &path, &body),
    }
}

fn token(s: &mut State, headers: &HeaderMap, f: &HashMap<String, String>) -> Response {
    let platform = s.platform;
    // Client authentication: X takes HTTP Basic (a confidential client); the others the form.
    let client_ok = match platform {
        Platform::X => {
            headers.get("authorization").and_then(|v| v.to_str().ok())
                == Some(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))))
        }
        Platform::Tiktok => {
            f.get("client_key").map(String::as_str) == Some(CLIENT_ID) && f.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
        }
        _ => f.get("client_id").map(String::as_str) == Some(CLIENT_ID) && f.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET),
    };
    if !client_ok {
        return oauth_error(401, "invalid_client", "Client authentication failed.");
    }
    let rotates = matches!(platform, Platform::X | Platform::Tiktok);
    match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some(grant) = f.get("code").and_then(|c| s.codes.remove(c)) else {
                return oauth_error(400, "invalid_grant", "Authorization code is invalid or has been used.");
            };
            if f.get("redirect_uri") != Some(&grant.redirect_uri) {
                return oauth_error(400, "invalid_grant", "redirect_uri does not match.");
            }
            if let Some(challenge) = &grant.challenge {
                let verifier = f.get("code_verifier").cloned().unwrap_or_default();
                if !(43..=128).contains(&verifier.len()) || b64(&Sha256::digest(verifier.as_bytes())) != *challenge {
                    return oauth_error(400, "invalid_grant", "code_verifier does not match the challenge.");
                }
            }
            if platform == Platform::Instagram {
                let (access, _) = issue(s, false);
                // Instagram Login's short-lived token (an hour).
                return json_reply(
                    StatusCode::OK,
                    json!({"data": [{"access_token": access, "user_id": s.account_id, "permissions": "instagram_business_basic,instagram_business_manage_insights"}]}),
                );
            }
            let (access, refresh) = issue(s, true);
            token_body(platform, &access, refresh.as_deref(), &s.account_id)
        }
        Some("refresh_token") => {
            let presented = f.get("refresh_token").cloned().unwrap_or_default();
            if !s.refresh.get(&presented).copied().unwrap_or(false) {
                return oauth_error(400, "invalid_grant", "Token has been expired or revoked.");
            }
            if rotates {
                s.refresh.insert(presented, false);
            }
            let (access, refresh) = issue(s, rotates);
            token_body(platform, &access, refresh.as_deref(), &s.account_id)
        }
        _ => oauth_error(400, "unsupported_grant_type", "grant_type"),
    }
}

fn token_body(platform: Platform, access: &str, refresh: Option<&str>, account: &str) -> Response {
    let body = match platform {
        Platform::Youtube => {
            json!({"access_token": access, "expires_in": 3599, "refresh_token": refresh, "scope": youtube_scope(), "token_type": "Bearer"})
        }
        Platform::X => {
            json!({"token_type": "bearer", "expires_in": 7200, "access_token": access, "scope": "tweet.read users.read offline.access", "refresh_token": refresh})
        }
        Platform::Tiktok => {
            json!({"access_token": access, "expires_in": 86400, "open_id": account, "refresh_expires_in": 31536000, "refresh_token": refresh, "scope": "user.info.basic,user.info.stats,video.list", "token_type": "Bearer"})
        }
        Platform::Instagram => unreachable!(),
    };
    // Google leaves the refresh token out of a refresh's answer.
    let mut body = body;
    if refresh.is_none() {
        body.as_object_mut().unwrap().remove("refresh_token");
    }
    json_reply(StatusCode::OK, body)
}

fn youtube_scope() -> &'static str {
    "https://www.googleapis.com/auth/youtube.readonly"
}

fn instagram_long_lived(s: &mut State, path: &str, headers: &HeaderMap, q: &HashMap<String, String>) -> Response {
    let token = bearer(headers, q).unwrap_or_default();
    let live = s.access.get(&token).copied().unwrap_or(false);
    let ok = match (path, q.get("grant_type").map(String::as_str)) {
        ("/access_token", Some("ig_exchange_token")) => q.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET),
        ("/refresh_access_token", Some("ig_refresh_token")) => true,
        _ => false,
    };
    if !ok {
        return json_reply(
            StatusCode::BAD_REQUEST,
            json!({"error": {"message": "Invalid grant_type or client_secret", "type": "OAuthException", "code": 100, "fbtrace_id": "X"}}),
        );
    }
    if !live {
        return fault_reply(Platform::Instagram, Fault::Expired);
    }
    if path == "/refresh_access_token" {
        s.access.insert(token, false);
    }
    let (access, _) = issue(s, false);
    json_reply(StatusCode::OK, json!({"access_token": access, "token_type": "bearer", "expires_in": 5_183_944}))
}

fn page<'a>(posts: &'a [FakePost], offset: usize, size: usize) -> (&'a [FakePost], Option<usize>) {
    let end = (offset + size).min(posts.len());
    let slice = posts.get(offset..end).unwrap_or(&[]);
    (slice, (end < posts.len()).then_some(end))
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

fn youtube(s: &mut State, path: &str, q: &HashMap<String, String>, headers: &HeaderMap) -> Response {
    let channel = s.account_id.clone();
    let body = match path {
        "/youtube/v3/channels" => {
            if q.get("mine").map(String::as_str) != Some("true") && q.get("id") != Some(&channel) {
                json!({"kind": "youtube#channelListResponse", "etag": "e0", "pageInfo": {"totalResults": 0, "resultsPerPage": 5}, "items": []})
            } else {
                json!({"kind": "youtube#channelListResponse", "etag": "e1", "items": [{
                    "kind": "youtube#channel", "etag": "c1", "id": channel,
                    "snippet": {"title": "GoViral Creator", "customUrl": "@goviral_creator"},
                    "contentDetails": {"relatedPlaylists": {"likes": "", "uploads": format!("UU{}", &channel[2..])}},
                    "statistics": {"viewCount": "123456", "subscriberCount": s.followers.to_string(), "hiddenSubscriberCount": false, "videoCount": s.posts.len().to_string()},
                }]})
            }
        }
        "/youtube/v3/playlistItems" => {
            let size = q.get("maxResults").and_then(|m| m.parse().ok()).unwrap_or(5usize).min(50);
            let offset = q.get("pageToken").and_then(|t| t.strip_prefix("CAU")).and_then(|t| t.parse().ok()).unwrap_or(0);
            let (items, next) = page(&s.posts, offset, size);
            let mut body = json!({"kind": "youtube#playlistItemListResponse", "etag": "p", "pageInfo": {"totalResults": s.posts.len(), "resultsPerPage": size},
                "items": items.iter().map(|p| json!({"kind": "youtube#playlistItem", "id": format!("pi-{}", p.id),
                    "contentDetails": {"videoId": p.id, "videoPublishedAt": rfc3339(p.created_at)}})).collect::<Vec<_>>()});
            if let Some(n) = next {
                body["nextPageToken"] = json!(format!("CAU{n}"));
            }
            body
        }
        "/youtube/v3/videos" => {
            let ids: Vec<&str> = q.get("id").map(|i| i.split(',').collect()).unwrap_or_default();
            if ids.len() > 50 {
                return json_reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": {"code": 400, "message": "too many ids", "errors": [{"reason": "invalidFilters", "domain": "youtube.parameter"}]}}),
                );
            }
            let items: Vec<Value> = s.posts.iter().filter(|p| ids.contains(&p.id.as_str())).map(|p| json!({
                "kind": "youtube#video", "etag": format!("v-{}-{}", p.id, p.views), "id": p.id,
                "snippet": {"publishedAt": rfc3339(p.created_at), "channelId": channel, "title": format!("Video {}", p.id)},
                "statistics": {"viewCount": p.views.to_string(), "likeCount": p.likes.to_string(), "favoriteCount": "0", "commentCount": p.comments.to_string()},
            })).collect();
            json!({"kind": "youtube#videoListResponse", "pageInfo": {"totalResults": items.len(), "resultsPerPage": items.len()}, "items": items})
        }
        _ => {
            return json_reply(
                StatusCode::NOT_FOUND,
                json!({"error": {"code": 404, "message": "Not Found", "errors": [{"reason": "notFound"}]}}),
            );
        }
    };
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(body.to_string().as_bytes())[..8]));
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        s.not_modified += 1;
        return (StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response();
    }
    let mut r = json_reply(StatusCode::OK, body);
    r.headers_mut().insert("etag", etag.parse().unwrap());
    r
}

fn tweet(p: &FakePost, author: &str) -> Value {
    json!({"id": p.id, "text": format!("post {}", p.id), "created_at": rfc3339(p.created_at), "author_id": author, "edit_history_tweet_ids": [p.id],
        "public_metrics": {"retweet_count": p.shares, "reply_count": p.comments, "like_count": p.likes, "quote_count": 1, "bookmark_count": 0, "impression_count": p.views}})
}

fn x(s: &State, path: &str, q: &HashMap<String, String>) -> Response {
    let user = json!({"id": s.account_id, "name": "GoViral Creator", "username": s.handle,
        "public_metrics": {"followers_count": s.followers, "following_count": 10, "tweet_count": s.posts.len(), "listed_count": 1}});
    let me = format!("/2/users/{}", s.account_id);
    if path == "/2/users/me" || path == me {
        return json_reply(StatusCode::OK, json!({"data": user}));
    }
    if path == "/2/tweets" {
        let ids: Vec<&str> = q.get("ids").map(|i| i.split(',').collect()).unwrap_or_default();
        if ids.is_empty() || ids.len() > 100 {
            return json_reply(
                StatusCode::BAD_REQUEST,
                json!({"title": "Invalid Request", "detail": "One or more parameters to your request was invalid.", "type": "https://api.twitter.com/2/problems/invalid-request"}),
            );
        }
        let data: Vec<Value> = s.posts.iter().filter(|p| ids.contains(&p.id.as_str())).map(|p| tweet(p, &s.account_id)).collect();
        let errors: Vec<Value> = ids
            .iter()
            .filter(|id| !s.posts.iter().any(|p| p.id == **id))
            .map(|id| {
                json!({
            "value": id, "detail": format!("Could not find tweet with ids: [{id}]."), "title": "Not Found Error", "resource_type": "tweet",
            "parameter": "ids", "resource_id": id, "type": "https://api.twitter.com/2/problems/resource-not-found"})
            })
            .collect();
        let mut body = json!({});
        if !data.is_empty() {
            body["data"] = json!(data);
        }
        if !errors.is_empty() {
            body["errors"] = json!(errors);
        }
        return json_reply(StatusCode::OK, body);
    }
    if path == format!("{me}/tweets") {
        let size = q.get("max_results").and_then(|m| m.parse().ok()).unwrap_or(10usize).clamp(5, 100);
        let offset = q.get("pagination_token").and_then(|t| t.strip_prefix("7140dibdnow9c7btw")).and_then(|t| t.parse().ok()).unwrap_or(0);
        let (items, next) = page(&s.posts, offset, size);
        let mut meta = json!({"result_count": items.len()});
        if let Some(n) = next {
            meta["next_token"] = json!(format!("7140dibdnow9c7btw{n}"));
        }
        return json_reply(
            StatusCode::OK,
            json!({"data": items.iter().map(|p| tweet(p, &s.account_id)).collect::<Vec<_>>(), "meta": meta}),
        );
    }
    json_reply(StatusCode::NOT_FOUND, json!({"title": "Not Found Error", "type": "about:blank", "status": 404, "detail": "Not Found"}))
}

fn instagram_media(p: &FakePost) -> Value {
    json!({"id": p.id, "timestamp": p.created_at.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+0000")).unwrap(),
        "permalink": format!("https://www.instagram.com/p/Sc{}/", p.id), "like_count": p.likes, "comments_count": p.comments, "media_type": "VIDEO"})
}

fn instagram(s: &State, path: &str, q: &HashMap<String, String>) -> Response {
    let Some(rest) = path.strip_prefix("/v23.0/") else {
        return fault_reply(Platform::Instagram, Fault::Scope);
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let missing = || {
        json_reply(
            StatusCode::BAD_REQUEST,
            json!({"error": {"message": "Unsupported get request. Object does not exist", "type": "GraphMethodException", "code": 100, "error_subcode": 33, "fbtrace_id": "X"}}),
        )
    };
    match parts.as_slice() {
        ["me"] => json_reply(
            StatusCode::OK,
            json!({"user_id": s.account_id, "username": s.handle, "followers_count": s.followers, "id": s.account_id}),
        ),
        [id] if *id == s.account_id => json_reply(StatusCode::OK, json!({"followers_count": s.followers, "id": s.account_id})),
        [id, "media"] if *id == s.account_id => {
            let size = q.get("limit").and_then(|m| m.parse().ok()).unwrap_or(25usize).min(100);
            let offset = q.get("after").and_then(|t| t.strip_prefix("QVFI")).and_then(|t| t.parse().ok()).unwrap_or(0);
            let (items, next) = page(&s.posts, offset, size);
            let mut paging =
                json!({"cursors": {"before": format!("QVFI{offset}"), "after": format!("QVFI{}", next.unwrap_or(offset + items.len()))}});
            if next.is_some() {
                paging["next"] = json!(format!("https://graph.instagram.com/v23.0/{id}/media?after=QVFI{}", next.unwrap()));
            }
            json_reply(StatusCode::OK, json!({"data": items.iter().map(instagram_media).collect::<Vec<_>>(), "paging": paging}))
        }
        [id] => match s.posts.iter().find(|p| p.id == *id) {
            Some(p) => json_reply(StatusCode::OK, instagram_media(p)),
            None => missing(),
        },
        [id, "insights"] => match s.posts.iter().find(|p| p.id == *id) {
            Some(p) => {
                let metric = |name: &str, v: u64| json!({"name": name, "period": "lifetime", "values": [{"value": v}], "title": name, "description": "", "id": format!("{id}/insights/{name}/lifetime")});
                json_reply(StatusCode::OK, json!({"data": [metric("views", p.views), metric("shares", p.shares)]}))
            }
            None => missing(),
        },
        _ => missing(),
    }
}

fn tiktok_video(p: &FakePost) -> Value {
    json!({"id": p.id, "create_time": p.created_at.unix_timestamp(), "share_url": format!("https://www.tiktok.com/@goviral_creator/video/{}", p.id),
        "view_count": p.views, "like_count": p.likes, "comment_count": p.comments, "share_count": p.shares})
}

fn tiktok(s: &State, method: &Method, path: &str, body: &[u8]) -> Response {
    let ok = json!({"code": "ok", "message": "", "log_id": "20261204TEST"});
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match (method.as_str(), path) {
        ("GET", "/v2/user/info/") => json_reply(
            StatusCode::OK,
            json!({"data": {"user": {"open_id": s.account_id, "username": s.handle, "display_name": "GoViral Creator", "follower_count": s.followers}}, "error": ok}),
        ),
        ("POST", "/v2/video/query/") => {
            let ids: Vec<String> = request["filters"]["video_ids"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
                .unwrap_or_default();
            if ids.is_empty() || ids.len() > 20 {
                return json_reply(
                    StatusCode::BAD_REQUEST,
                    json!({"data": {}, "error": {"code": "invalid_params", "message": "video_ids: 1 to 20", "log_id": "x"}}),
                );
            }
            let videos: Vec<Value> = s.posts.iter().filter(|p| ids.contains(&p.id)).map(tiktok_video).collect();
            json_reply(StatusCode::OK, json!({"data": {"videos": videos}, "error": ok}))
        }
        ("POST", "/v2/video/list/") => {
            let size = request["max_count"].as_u64().unwrap_or(10).min(20) as usize;
            let cursor = request["cursor"].as_u64().unwrap_or(0) as usize;
            let (items, next) = page(&s.posts, cursor, size);
            json_reply(
                StatusCode::OK,
                json!({"data": {"videos": items.iter().map(tiktok_video).collect::<Vec<_>>(), "cursor": next.unwrap_or(cursor + items.len()), "has_more": next.is_some()}, "error": ok}),
            )
        }
        _ => json_reply(
            StatusCode::NOT_FOUND,
            json!({"data": {}, "error": {"code": "invalid_params", "message": "no such endpoint", "log_id": "x"}}),
        ),
    }
}
