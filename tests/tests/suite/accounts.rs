//! Connected accounts and the learning loop's outcome collection: each platform adapter
//! against a fake of its API (success, pagination, an expired token refreshed, a missing
//! scope, 429 back-off, spent quotas, malformed answers), then the whole flow through the
//! app — connect (OAuth with PKCE), follow a post, collect at 24 h and 7 days — on SQLite
//! and PostgreSQL, with the tokens unreadable in the database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::accounts::{AuthorizeRequest, PlatformApi, PlatformError, code_challenge};
use domain::model::JobResult;
use domain::model::{Plan, Platform};
use goviral_adapters::platforms::{Budget, PlatformSettings, instagram::Instagram, tiktok::TikTok, x::XApi, youtube::YouTube};
use goviral_testkit::platforms::{FakePlatform, Fault};
use goviral_testkit::{Backend, TestApp, TestDb};
use http::StatusCode;
use serde_json::json;

const ALL: [Platform; 4] = [Platform::Youtube, Platform::X, Platform::Instagram, Platform::Tiktok];
const REDIRECT: &str = "https://app.example/api/v1/accounts/callback";

fn adapter(fake: &FakePlatform, settings: PlatformSettings, counters: Option<Arc<dyn domain::ports::Counters>>) -> Arc<dyn PlatformApi> {
    match fake.platform {
        Platform::Youtube => Arc::new(YouTube::new(settings, counters)),
        Platform::X => Arc::new(XApi::new(settings, counters)),
        Platform::Instagram => Arc::new(Instagram::new(settings, counters)),
        Platform::Tiktok => Arc::new(TikTok::new(settings, counters)),
    }
}

/// The OAuth dance as a browser would do it: consent, then the code exchanged with the verifier.
async fn grant(api: &dyn PlatformApi, fake: &FakePlatform) -> domain::accounts::TokenGrant {
    let verifier = "v".repeat(20) + &"erifier-0123456789-abcdefghijklmnopqrstuvw"[..30];
    let request = AuthorizeRequest { state: "st4te".into(), code_challenge: code_challenge(&verifier), redirect_uri: REDIRECT.into() };
    let back = url::Url::parse(&fake.consent(&api.authorize_url(&request))).unwrap();
    let code = back.query_pairs().find(|(k, _)| k == "code").unwrap().1.to_string();
    assert!(
        api.exchange_code(&code, "a-wrong-verifier-a-wrong-verifier-a-wrong-verifier", REDIRECT).await.is_err()
            || fake.platform == Platform::Instagram
    );
    // A code is good once (and above, a wrong verifier used it up where PKCE applies).
    let back = url::Url::parse(&fake.consent(&api.authorize_url(&request))).unwrap();
    let code = back.query_pairs().find(|(k, _)| k == "code").unwrap().1.to_string();
    let tokens = api.exchange_code(&code, &verifier, REDIRECT).await.expect("the code exchanged");
    assert!(api.exchange_code(&code, &verifier, REDIRECT).await.is_err(), "a code is used once");
    assert!(tokens.expires_at.is_some() && !tokens.scopes.is_empty(), "{tokens:?}");
    tokens
}

async fn adapter_meets_its_api(platform: Platform) {
    let fake = FakePlatform::start(platform, 120).await;
    let api = adapter(&fake, fake.settings(), None);
    let tokens = grant(api.as_ref(), &fake).await;
    let token = tokens.access_token.clone();

    // Who, and how many follow.
    let profile = api.profile(&token).await.unwrap();
    assert_eq!((profile.external_id.as_str(), profile.followers), (fake.account_id().as_str(), Some(12_345)));
    assert_eq!(api.followers(&token, &profile.external_id).await.unwrap(), Some(12_345));

    // Counts of given posts, batched under each API's limit, missing ones left out.
    let posts = fake.posts();
    let mut ids: Vec<String> = posts.iter().take(60).map(|p| p.id.clone()).collect();
    ids.push(if platform == Platform::Youtube { "vidMISSING".into() } else { "1".into() });
    let stats = api.posts(&token, &profile.external_id, &ids).await.unwrap();
    assert_eq!(stats.len(), 60, "{platform}: every existing post, none invented");
    let first = stats.iter().find(|s| s.post_id == posts[0].id).unwrap();
    assert_eq!((first.likes, first.comments), (Some(posts[0].likes), Some(posts[0].comments)));
    assert_eq!(first.views, Some(posts[0].views), "{platform}: views");
    assert_eq!(first.posted_at, Some(posts[0].created_at));
    let calls = fake.log().iter().filter(|l| !l.contains("token")).count();
    assert!(calls >= 2, "{platform}: 61 ids take more than one call ({calls})");

    // Recent posts, paged through.
    fake.clear_log();
    let recent = api.recent_posts(&token, &profile.external_id, 110).await.unwrap();
    assert_eq!(recent.len(), 110, "{platform}");
    assert_eq!(
        recent.iter().map(|p| p.post_id.clone()).collect::<Vec<_>>(),
        posts.iter().take(110).map(|p| p.id.clone()).collect::<Vec<_>>()
    );
    assert!(recent.iter().all(|p| p.permalink.is_some()));
    assert!(fake.log().len() >= 2, "{platform}: more than one page: {:?}", fake.log());

    // 401: the token expired; a refresh brings a new one (X and TikTok rotate the refresh token).
    fake.expire_access_tokens();
    assert!(matches!(api.posts(&token, &profile.external_id, &ids[..1]).await, Err(PlatformError::Unauthorized(_))), "{platform}");
    if platform == Platform::Instagram {
        // Instagram refreshes a live long-lived token with itself; an expired one is gone.
        assert!(matches!(api.refresh(&tokens).await, Err(PlatformError::Revoked(_))), "{platform}");
        return instagram_refresh(&fake, api.as_ref()).await;
    }
    let fresh = api.refresh(&tokens).await.expect("refreshed");
    assert_ne!(fresh.access_token, token);
    assert_eq!(api.posts(&fresh.access_token, &profile.external_id, &ids[..1]).await.unwrap().len(), 1);
    if matches!(platform, Platform::X | Platform::Tiktok) {
        assert!(matches!(api.refresh(&tokens).await, Err(PlatformError::Revoked(_))), "{platform}: a rotated refresh token is spent");
    }
    fake.revoke_refresh_tokens();
    let current =
        domain::accounts::TokenGrant { refresh_token: fresh.refresh_token.clone().or(tokens.refresh_token.clone()), ..fresh.clone() };
    assert!(matches!(api.refresh(&current).await, Err(PlatformError::Revoked(_))), "{platform}: the creator revoked the app");
    faults(&fake, api.as_ref(), &fresh.access_token, &profile.external_id, &ids[..1]).await;
}

async fn instagram_refresh(fake: &FakePlatform, api: &dyn PlatformApi) {
    let tokens = grant(api, fake).await;
    let fresh = api.refresh(&tokens).await.expect("a live long-lived token renews itself");
    assert!(fresh.refresh_token.is_none() && fresh.expires_at.unwrap() > domain::model::now() + time::Duration::days(59));
    assert!(api.profile(&tokens.access_token).await.is_err(), "the renewed token replaces the old one");
    let account = api.profile(&fresh.access_token).await.unwrap().external_id;
    faults(fake, api, &fresh.access_token, &account, &[fake.posts()[0].id.clone()]).await;
}

/// Scope, throttling, quota, malformed and server errors, as each platform words them.
async fn faults(fake: &FakePlatform, api: &dyn PlatformApi, token: &str, account: &str, ids: &[String]) {
    let platform = fake.platform;
    fake.fail_next([Fault::Scope]);
    assert!(matches!(api.posts(token, account, ids).await, Err(PlatformError::Forbidden(_))), "{platform}: 403 scope");

    // A short throttle is waited out (Retry-After, x-rate-limit-reset, or exponential).
    fake.clear_log();
    fake.fail_next([Fault::RateLimited { retry_after_secs: 1 }]);
    let started = Instant::now();
    assert_eq!(api.posts(token, account, ids).await.unwrap().len(), 1, "{platform}: served after backing off");
    if matches!(platform, Platform::Youtube | Platform::X) {
        assert!(started.elapsed() >= Duration::from_millis(900), "{platform}: waited as told ({:?})", started.elapsed());
    }
    // A long one goes back to the caller with the wait, without sleeping it.
    fake.fail_next([Fault::RateLimited { retry_after_secs: 600 }; 4]);
    let started = Instant::now();
    match api.posts(token, account, ids).await {
        Err(PlatformError::RateLimited { retry_after }) => {
            if matches!(platform, Platform::Youtube | Platform::X) {
                assert!(retry_after >= Duration::from_secs(590), "{platform}: {retry_after:?}");
            }
        }
        other => panic!("{platform}: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3), "{platform}: did not sleep 600 s");
    fake.clear_faults();

    // A malformed 200, and a 503 retried then served.
    fake.fail_next([Fault::Malformed]);
    assert!(matches!(api.posts(token, account, ids).await, Err(PlatformError::Malformed(_))), "{platform}: malformed");
    fake.fail_next([Fault::ServerError, Fault::ServerError]);
    assert_eq!(api.posts(token, account, ids).await.unwrap().len(), 1, "{platform}: 503s retried");

    // The platform's own quota: YouTube's day, X's monthly cap. Not asked again until then.
    if matches!(platform, Platform::Youtube | Platform::X) {
        fake.fail_next([Fault::Quota]);
        let until = match api.posts(token, account, ids).await {
            Err(PlatformError::QuotaExhausted { until }) => until,
            other => panic!("{platform}: {other:?}"),
        };
        if platform == Platform::Youtube {
            assert_eq!((until.hour(), until.minute()), (8, 0), "midnight Pacific");
        }
        fake.clear_log();
        assert!(matches!(api.posts(token, account, ids).await, Err(PlatformError::QuotaExhausted { .. })));
        assert!(fake.log().is_empty(), "{platform}: no call while the quota is spent");
    }
}

#[tokio::test]
async fn youtube_adapter_meets_its_api() {
    adapter_meets_its_api(Platform::Youtube).await
}

#[tokio::test]
async fn x_adapter_meets_its_api() {
    adapter_meets_its_api(Platform::X).await
}

#[tokio::test]
async fn instagram_adapter_meets_its_api() {
    adapter_meets_its_api(Platform::Instagram).await
}

#[tokio::test]
async fn tiktok_adapter_meets_its_api() {
    adapter_meets_its_api(Platform::Tiktok).await
}

/// Our own budget per platform, counted in the shared counters: spent, no call is made.
#[tokio::test]
async fn budgets_stop_calls_before_the_platform_must() {
    let db = TestDb::new(Backend::Sqlite).await;
    let counters: Arc<dyn domain::ports::Counters> = Arc::new(db.store.clone());
    for platform in ALL {
        let fake = FakePlatform::start(platform, 3).await;
        let tokens = grant(adapter(&fake, fake.settings(), None).as_ref(), &fake).await;
        let mut settings = fake.settings();
        settings.budget = Budget { calls: 5, window: Duration::from_secs(3600), offset: Duration::ZERO, per_user: 5 };
        let api = adapter(&fake, settings, Some(counters.clone()));
        let account = fake.account_id();
        fake.clear_log();
        let ids = [fake.posts()[0].id.clone()];
        let mut served = 0;
        let until = loop {
            match api.posts(&tokens.access_token, &account, &ids).await {
                Ok(_) => served += 1,
                Err(PlatformError::QuotaExhausted { until }) => break until,
                Err(e) => panic!("{platform}: {e}"),
            }
            assert!(served < 10, "{platform}: the budget never ran out");
        };
        // Instagram reads a post with two calls (the media, its insights).
        assert_eq!(served, if platform == Platform::Instagram { 2 } else { 5 }, "{platform}");
        let calls = fake.log().len();
        assert_eq!(calls, 5, "{platform}: the budget counts calls");
        assert!(api.posts(&tokens.access_token, &account, &ids).await.is_err());
        assert_eq!(fake.log().len(), calls, "{platform}: nothing sent once spent");
        assert!(until > domain::model::now() && until <= domain::model::now() + time::Duration::hours(1), "{platform}: {until}");
    }
}

/// YouTube answers a repeated read with 304 when nothing changed; the kept body is used.
#[tokio::test]
async fn youtube_reads_are_revalidated_with_etags() {
    let fake = FakePlatform::start(Platform::Youtube, 5).await;
    let api = adapter(&fake, fake.settings(), None);
    let tokens = grant(api.as_ref(), &fake).await;
    let ids: Vec<String> = fake.posts().iter().map(|p| p.id.clone()).collect();
    let first = api.posts(&tokens.access_token, "", &ids).await.unwrap();
    let again = api.posts(&tokens.access_token, "", &ids).await.unwrap();
    assert_eq!((first, fake.not_modified()), (again, 1));
    let mut changed = fake.posts()[0].clone();
    changed.views += 1;
    fake.set_post(changed);
    let third = api.posts(&tokens.access_token, "", &ids).await.unwrap();
    assert_eq!(third.iter().find(|p| p.post_id == ids[0]).unwrap().views, Some(1_001), "a change is seen");
}

fn path_and_query(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    format!("{}?{}", u.path(), u.query().unwrap_or_default())
}

async fn complete(t: &TestApp, key: &str, user: uuid::Uuid) -> uuid::Uuid {
    let body = json!({"content_type": "text", "caption": "3 things nobody tells you about sourdough", "user_id": user});
    let r = t.post("/api/v1/analyze").api_key(key).json(&body).send().await;
    let job: uuid::Uuid = r.body["job_id"].as_str().unwrap().parse().unwrap();
    let result = JobResult { score: 64.0, confidence: 0.7, insights: vec![], metrics: json!({}) };
    t.app.store.complete_job(job, &result, None, domain::model::now()).await.unwrap();
    job
}

async fn connect_follow_and_collect(backend: Backend) {
    let mut fakes = Vec::new();
    for p in ALL {
        fakes.push(FakePlatform::start(p, 30).await);
    }
    let apps: Vec<_> = fakes.iter().map(|f| (f.platform, f.settings())).collect();
    let t = TestApp::spawn_tuned(backend, Default::default(), Default::default(), move |c| c.accounts.apps = apps).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let bo = t.user("bo@example.com", Plan::Pro, false).await;

    // Connect each platform: consent, then the platform's redirect to our callback.
    let mut accounts = Vec::new();
    for fake in &fakes {
        let r = t.post("/api/v1/accounts/connect").api_key(&ann.api_key).json(&json!({"platform": fake.platform})).send().await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let back = fake.consent(r.body["authorize_url"].as_str().unwrap());
        assert!(back.starts_with(&format!("http://{}/api/v1/accounts/callback?", t.addr)), "{back}");
        // No credentials and no browser: an API client finishes with its own credentials.
        let anonymous = t.get(&path_and_query(&back)).send().await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{:?}", anonymous.body);
        let done = t.get(&path_and_query(&back)).api_key(&ann.api_key).send().await;
        assert_eq!(done.status, StatusCode::CREATED, "{}: {:?}", fake.platform, done.body);
        assert_eq!((done.body["status"].as_str(), done.body["followers"].as_u64()), (Some("active"), Some(12_345)));
        assert_eq!(done.body["external_id"].as_str(), Some(fake.account_id().as_str()));
        // A browser coming back is sent on to the dashboard's accounts page with what the
        // platform said, and the page finishes the connection with the creator's session.
        if fake.platform == Platform::X {
            let again = t.post("/api/v1/accounts/connect").api_key(&ann.api_key).json(&json!({"platform": "x"})).send().await;
            let back = fake.consent(again.body["authorize_url"].as_str().unwrap());
            let browser = t.get(&path_and_query(&back)).header("accept", "text/html,application/xhtml+xml").send().await;
            assert_eq!(browser.status, StatusCode::SEE_OTHER);
            let location = browser.header("location").unwrap().to_string();
            let sent_on = url::Url::parse(&format!("http://dashboard.invalid{location}")).unwrap();
            assert_eq!(sent_on.path(), "/accounts");
            let params: std::collections::HashMap<String, String> = sent_on.query_pairs().into_owned().collect();
            let original: std::collections::HashMap<String, String> = url::Url::parse(&back).unwrap().query_pairs().into_owned().collect();
            assert_eq!((params.get("state"), params.get("code")), (original.get("state"), original.get("code")));
            let finish = json!({"state": params["state"], "code": params["code"]});
            let finished = t.post("/api/v1/accounts/callback").api_key(&ann.api_key).json(&finish).send().await;
            assert_eq!(finished.status, StatusCode::CREATED, "{:?}", finished.body);
            let stale = t.post("/api/v1/accounts/callback").api_key(&ann.api_key).json(&finish).send().await;
            assert_eq!((stale.status, stale.error_fields()), (StatusCode::UNPROCESSABLE_ENTITY, vec!["state".to_string()]));
        }
        let replay = t.get(&path_and_query(&back)).api_key(&ann.api_key).send().await;
        assert_eq!(
            (replay.status, replay.error_fields()),
            (StatusCode::UNPROCESSABLE_ENTITY, vec!["state".to_string()]),
            "a state is used once"
        );
        accounts.push(done.body["account_id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap());
    }
    let declined = t.post("/api/v1/accounts/connect").api_key(&ann.api_key).json(&json!({"platform": "x"})).send().await;
    let state = declined.body["state"].as_str().unwrap();
    let no = t
        .get(&format!("/api/v1/accounts/callback?state={state}&error=access_denied&error_description=The+user+denied"))
        .api_key(&ann.api_key)
        .send()
        .await;
    assert_eq!(no.status, StatusCode::FORBIDDEN);
    let bad = t.post("/api/v1/accounts/connect").api_key(&ann.api_key).json(&json!({"platform": "myspace"})).send().await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

    let listed = t.get("/api/v1/accounts").api_key(&ann.api_key).send().await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 4);
    assert!(t.get("/api/v1/accounts").api_key(&bo.api_key).send().await.body["items"].as_array().unwrap().is_empty());
    let text = String::from_utf8_lossy(&listed.raw).to_string();
    for fake in &fakes {
        for token in fake.access_tokens().iter().chain(fake.refresh_tokens().iter()) {
            assert!(!text.contains(token.as_str()), "the API never shows a token");
        }
    }
    tokens_unreadable_in_the_dump(&t, &fakes).await;

    // Follow one post per platform; Instagram's is found by its permalink.
    let job = complete(&t, &ann.api_key, ann.user.id).await;
    let path = format!("/api/v1/analyze/{job}/posts");
    for (fake, account) in fakes.iter().zip(&accounts) {
        let post = &fake.posts()[1];
        let r =
            t.post(&path).api_key(&ann.api_key).json(&json!({"account_id": account, "post_url": fake.permalink(&post.id)})).send().await;
        assert_eq!(r.status, StatusCode::CREATED, "{}: {:?}", fake.platform, r.body);
        assert_eq!(r.body["post"]["post_id"].as_str(), Some(post.id.as_str()));
        let posted = post.created_at.format(&time::format_description::well_known::Rfc3339).unwrap();
        let day = (post.created_at + time::Duration::hours(24)).format(&time::format_description::well_known::Rfc3339).unwrap();
        assert_eq!(
            (r.body["post"]["posted_at"].as_str(), r.body["post"]["next_check_at"].as_str()),
            (Some(posted.as_str()), Some(day.as_str()))
        );
        assert_eq!(
            (r.body["observation"]["likes"].as_u64(), r.body["observation"]["followers"].as_u64()),
            (Some(post.likes), Some(12_345))
        );
        assert_eq!(r.body["observation"]["source"].as_str(), Some("platform"));
        let again = t.post(&path).api_key(&ann.api_key).json(&json!({"account_id": account, "post_id": post.id})).send().await;
        assert_eq!(again.status, StatusCode::CONFLICT, "followed once");
    }
    // Someone else's account, someone else's job, a post that is not there.
    let theirs = t.post(&path).api_key(&ann.api_key).json(&json!({"account_id": uuid::Uuid::now_v7(), "post_id": "1"})).send().await;
    assert_eq!((theirs.status, theirs.error_fields()), (StatusCode::UNPROCESSABLE_ENTITY, vec!["account_id".to_string()]));
    let bo_job = complete(&t, &bo.api_key, bo.user.id).await;
    let r = t
        .post(&format!("/api/v1/analyze/{bo_job}/posts"))
        .api_key(&bo.api_key)
        .json(&json!({"account_id": accounts[0], "post_id": "x"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "not bo's account");
    let r = t
        .post(&format!("/api/v1/analyze/{bo_job}/posts"))
        .api_key(&ann.api_key)
        .json(&json!({"account_id": accounts[0], "post_id": "x"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "not ann's job");
    let r = t
        .post(&path)
        .api_key(&ann.api_key)
        .json(&json!({"account_id": accounts[1], "post_url": "https://x.com/a/status/999"}))
        .send()
        .await;
    assert_eq!((r.status, r.error_fields()), (StatusCode::UNPROCESSABLE_ENTITY, vec!["post_url".to_string()]), "{:?}", r.body);

    // The schedule: read at 24 h, then at 7 days, then no more. Expired tokens are refreshed
    // on the way; the counts are what the platform says at each reading.
    let posted = fakes.iter().map(|f| f.posts()[1].created_at).max().unwrap();
    for fake in &fakes {
        // (Instagram's long-lived tokens do not lapse early; an expired one cannot be renewed.)
        if fake.platform != Platform::Instagram {
            fake.expire_access_tokens();
        }
        let mut p = fake.posts()[1].clone();
        p.views += 500;
        fake.set_post(p);
    }
    let day = t.app.collect_outcomes_at(posted + time::Duration::hours(24) + time::Duration::minutes(1), 100).await.unwrap();
    assert_eq!((day.due, day.observed, day.deferred, day.ended), (4, 4, 0, 0), "{day:?}");
    let week = posted + time::Duration::days(7);
    let tracked = t.get(&path).api_key(&ann.api_key).send().await;
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    for item in tracked.body["items"].as_array().unwrap() {
        assert_eq!(item["checks_done"].as_u64(), Some(2));
        let posted_at = time::OffsetDateTime::parse(item["posted_at"].as_str().unwrap(), rfc3339).unwrap();
        assert_eq!(item["next_check_at"].as_str(), Some((posted_at + time::Duration::days(7)).format(rfc3339).unwrap().as_str()));
    }
    let none = t.app.collect_outcomes_at(posted + time::Duration::days(3), 100).await.unwrap();
    assert_eq!(none.due, 0, "nothing between the readings");

    // At 7 days X throttles for 10 minutes: its check moves, the others are read.
    fakes[1].fail_next([Fault::RateLimited { retry_after_secs: 600 }]);
    let at = week + time::Duration::minutes(1);
    let r = t.app.collect_outcomes_at(at, 100).await.unwrap();
    assert_eq!((r.observed, r.deferred), (3, 1), "{r:?}");
    let r = t.app.collect_outcomes_at(at + time::Duration::minutes(11), 100).await.unwrap();
    assert_eq!((r.due, r.observed), (1, 1), "{r:?}");
    assert_eq!(t.app.collect_outcomes_at(at + time::Duration::days(30), 100).await.unwrap().due, 0, "done after 7 days");

    let history = t.get(&format!("/api/v1/analyze/{job}/outcome")).api_key(&ann.api_key).send().await;
    let observations = history.body["observations"].as_array().unwrap();
    assert_eq!(observations.len(), 12, "3 readings × 4 platforms");
    let views: Vec<u64> = observations.iter().filter(|o| o["platform"] == "tiktok").map(|o| o["views"].as_u64().unwrap()).collect();
    let base = fakes[3].posts()[0].views;
    assert_eq!(views.len(), 3);
    assert!(views.contains(&base) && views.contains(&(base - 500)), "{views:?}");

    // A revoked grant: the account asks to be reconnected, its checks move, nothing is lost.
    let job2 = complete(&t, &ann.api_key, ann.user.id).await;
    let fresh = fakes[0].posts()[5].clone();
    let r = t
        .post(&format!("/api/v1/analyze/{job2}/posts"))
        .api_key(&ann.api_key)
        .json(&json!({"account_id": accounts[0], "post_id": fresh.id}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    fakes[0].expire_access_tokens();
    fakes[0].revoke_refresh_tokens();
    let r = t.app.collect_outcomes_at(fresh.created_at + time::Duration::hours(25), 100).await.unwrap();
    assert_eq!((r.deferred, r.accounts_needing_reconnect), (1, 1), "{r:?}");
    let listed = t.get("/api/v1/accounts").api_key(&ann.api_key).send().await;
    let yt = listed.body["items"].as_array().unwrap().iter().find(|a| a["platform"] == "youtube").unwrap().clone();
    assert_eq!(yt["status"].as_str(), Some("reauth_required"), "{yt:?}");
    let posts = t.get(&format!("/api/v1/analyze/{job2}/posts")).api_key(&ann.api_key).send().await;
    assert!(posts.body["items"][0]["last_error"].as_str().unwrap().contains("reconnect"), "{:?}", posts.body);

    // Disconnecting deletes the tokens and stops following its posts.
    let r = t.delete(&format!("/api/v1/accounts/{}", accounts[0])).api_key(&ann.api_key).send().await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(t.delete(&format!("/api/v1/accounts/{}", accounts[0])).api_key(&ann.api_key).send().await.status, StatusCode::NOT_FOUND);
    assert!(
        t.get(&format!("/api/v1/analyze/{job2}/posts")).api_key(&ann.api_key).send().await.body["items"].as_array().unwrap().is_empty()
    );
}

/// Whoever reads the database (a dump, a backup) finds no token, and no PKCE verifier.
async fn tokens_unreadable_in_the_dump(t: &TestApp, fakes: &[FakePlatform]) {
    let mut dump = Vec::new();
    match t.db.sqlite_path() {
        Some(file) => {
            for suffix in ["", "-wal"] {
                if let Ok(bytes) = std::fs::read(format!("{}{suffix}", file.display())) {
                    dump.extend(bytes);
                }
            }
        }
        None => {
            let out =
                std::process::Command::new("pg_dump").arg("--data-only").arg(&t.db.url).output().expect("pg_dump (postgresql-client)");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            dump = out.stdout;
            // bytea is dumped as hex: look for the tokens' hex too.
            let text = String::from_utf8_lossy(&dump).to_string();
            assert!(text.contains("COPY public.connected_accounts"), "the accounts are in the dump");
        }
    }
    assert!(dump.len() > 1000);
    for fake in fakes {
        for token in fake.access_tokens().iter().chain(fake.refresh_tokens().iter()) {
            let hex = hex_of(token.as_bytes());
            for needle in [token.as_bytes(), hex.as_bytes()] {
                assert!(!dump.windows(needle.len()).any(|w| w == needle), "{}: token {token} readable in the dump", fake.platform);
            }
        }
    }
}

/// On AWS the data keys are wrapped by KMS (moto): a sealed token opens only under its own
/// context, and only with the key that wrapped it.
#[tokio::test]
async fn kms_wraps_the_data_keys() {
    use domain::accounts::TokenCipher;
    use goviral_adapters::envelope::Envelope;
    let config = crate::aws::config().await;
    let kms = aws_sdk_kms::Client::new(&config);
    let key = |description: &'static str| {
        let kms = kms.clone();
        async move { kms.create_key().description(description).send().await.unwrap().key_metadata().unwrap().arn().unwrap().to_string() }
    };
    let (mine, other) = (key("platform tokens").await, key("another key").await);
    let cipher = Envelope::new(Arc::new(goviral_aws::KmsMasterKey::new(&config, mine)));
    let sealed = cipher.seal(b"ya29.a0-secret-token", "account:1:access").await.unwrap();
    assert!(!sealed.windows(20).any(|w| w == b"ya29.a0-secret-token"));
    assert_eq!(cipher.open(&sealed, "account:1:access").await.unwrap(), b"ya29.a0-secret-token");
    assert!(cipher.open(&sealed, "account:2:access").await.is_err(), "KMS refuses another context");
    let elsewhere = Envelope::new(Arc::new(goviral_aws::KmsMasterKey::new(&config, other)));
    let other_sealed = elsewhere.seal(b"x", "account:1:access").await.unwrap();
    assert_eq!(elsewhere.open(&other_sealed, "account:1:access").await.unwrap(), b"x");
    let mut swapped = sealed.clone();
    swapped.truncate(3);
    assert!(cipher.open(&swapped, "account:1:access").await.is_err(), "cut short");
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Once a creator has five posts with outcomes on a platform, a result says how the new post
/// is expected to do against their own median, and how well past scores ranked their posts.
async fn creator_baselines_come_from_their_own_outcomes(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let job_on = |platform: &'static str, score: f64| {
        let (t, key, user) = (&t, ann.api_key.clone(), ann.user.id);
        async move {
            let body =
                json!({"content_type": "text", "caption": format!("post scoring {score}"), "user_id": user, "platform_hint": platform});
            let r = t.post("/api/v1/analyze").api_key(&key).json(&body).send().await;
            let job: uuid::Uuid = r.body["job_id"].as_str().unwrap().parse().unwrap();
            let result = JobResult { score, confidence: 0.7, insights: vec![], metrics: json!({"model": "test"}) };
            t.app.store.complete_job(job, &result, None, domain::model::now()).await.unwrap();
            job
        }
    };
    let observe = |job: uuid::Uuid, platform: &'static str, views: u64, day: u32| {
        let (t, key) = (&t, ann.api_key.clone());
        async move {
            let body = json!({"platform": platform, "observed_at": format!("2026-11-{day:02}T09:00:00Z"), "views": views});
            let r = t.post(&format!("/api/v1/analyze/{job}/outcome")).api_key(&key).json(&body).send().await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        }
    };
    let new = job_on("tiktok", 90.0).await;
    let baseline = |job: uuid::Uuid| {
        let (t, key) = (&t, ann.api_key.clone());
        async move {
            t.get(&format!("/api/v1/analyze/{job}?expand=metrics")).api_key(&key).send().await.body["metrics"]["creator_baseline"].clone()
        }
    };
    assert_eq!(baseline(new).await["sample_size"].as_u64(), Some(0));
    assert!(baseline(new).await["predicted_vs_median"].is_null(), "nothing to go on yet");

    // Six past TikTok posts whose views rose with their scores; the latest reading counts.
    for (i, score) in [30.0, 40.0, 50.0, 60.0, 70.0, 80.0].into_iter().enumerate() {
        let job = job_on("tiktok", score).await;
        observe(job, "tiktok", 10, 1).await;
        observe(job, "tiktok", 1_000 * 2u64.pow(i as u32), 8).await;
    }
    // Posts elsewhere, and ones without views, do not count.
    let elsewhere = job_on("youtube", 20.0).await;
    observe(elsewhere, "youtube", 9_999_999, 8).await;
    let b = baseline(new).await;
    assert_eq!((b["sample_size"].as_u64(), b["platform"].as_str()), (Some(6), Some("tiktok")), "{b}");
    assert_eq!(b["median_views"].as_f64(), Some(5_657.0), "the median of 1k..32k on a log scale: {b}");
    assert_eq!(b["calibration"]["pairwise_accuracy"].as_f64(), Some(1.0));
    assert_eq!(b["calibration"]["pairs"].as_u64(), Some(15));
    assert_eq!(b["percentile_among_past"].as_f64(), Some(1.0));
    let lift = b["predicted_vs_median"].as_f64().unwrap();
    let band = [b["predicted_vs_median_band"][0].as_f64().unwrap(), b["predicted_vs_median_band"][1].as_f64().unwrap()];
    assert!(lift > 1.5 && band[0] <= lift && lift <= band[1], "{b}");
    // A low score of theirs is expected below their median; the platform's own baseline holds.
    let low = job_on("tiktok", 25.0).await;
    assert!(baseline(low).await["predicted_vs_median"].as_f64().unwrap() < 1.0);
    assert_eq!(baseline(elsewhere).await["sample_size"].as_u64(), Some(0), "a YouTube post's baseline is its YouTube past");
}

contract!(connect_follow_and_collect, creator_baselines_come_from_their_own_outcomes);
