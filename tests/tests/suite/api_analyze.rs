//! Submitting content and reading jobs and history through the real HTTP stack.

use domain::model::{Insight, InsightCategory, JobResult, Plan};
use domain::service::RateLimits;
use goviral_testkit::{Backend, TestApp};
use http::StatusCode;
use serde_json::{Value, json};

fn text(user: uuid::Uuid, caption: &str) -> Value {
    json!({"content_type": "text", "caption": caption, "platform_hint": "tiktok", "user_id": user})
}

#[tokio::test]
async fn submit_creates_a_queued_job() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let token = t.token(&ann).await;
    let r = t.post("/api/v1/analyze").bearer(&token).json(&text(ann.user.id, "3 things nobody tells you")).send().await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["status"], "queued");
    assert!(r.body["estimated_completion_sec"].as_u64().unwrap() > 0);
    let job_id: uuid::Uuid = r.body["job_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(r.header("location"), Some(format!("/api/v1/analyze/{job_id}").as_str()));
    assert_eq!(r.header("x-ratelimit-limit"), Some("600"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("599"));
    // Submission and job are both in the store.
    let job = t.app.store.job(job_id).await.unwrap().unwrap();
    let sub = t.app.store.submission(job.submission_id).await.unwrap().unwrap();
    assert_eq!(sub.caption.as_deref(), Some("3 things nobody tells you"));
    assert_eq!(t.app.store.queued_jobs(10).await.unwrap(), vec![job_id]);

    let r = t.get(&format!("/api/v1/analyze/{job_id}")).bearer(&token).send().await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!((r.body["job_id"].as_str(), r.body["status"].as_str()), (Some(job_id.to_string().as_str()), Some("queued")));
    assert!(r.body.get("score").is_none() && r.body.get("insights").is_none() && r.body["created_at"].is_string());
}

#[tokio::test]
async fn invalid_submissions_name_every_bad_field() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let me = ann.user.id;
    let cases = [
        (json!({"content_type": "text", "user_id": me}), vec!["caption"]),
        (json!({"content_type": "text", "caption": "  ", "user_id": me}), vec!["caption"]),
        (json!({"content_type": "video", "user_id": me}), vec!["source_url"]),
        (json!({"content_type": "video", "source_url": "http://example.com/v.mp4", "user_id": me}), vec!["source_url"]),
        (
            json!({"content_type": "video", "source_url": "https://example.com/v", "upload_id": uuid::Uuid::now_v7(), "user_id": me}),
            vec!["upload_id"],
        ),
        (json!({"content_type": "text", "caption": "x".repeat(10_001), "user_id": me}), vec!["caption"]),
        (json!({"content_type": "text", "caption": "ok", "notify_webhook": "ftp://x", "user_id": me}), vec!["notify_webhook"]),
        (json!({"content_type": "text", "user_id": me, "notify_webhook": "nope"}), vec!["caption", "notify_webhook"]),
        (json!({"content_type": "podcast", "caption": "x", "user_id": me}), vec!["content_type"]),
        (json!({"content_type": "text", "caption": "x", "platform_hint": "myspace", "user_id": me}), vec!["platform_hint"]),
        (json!({"content_type": "text", "caption": "x", "user_id": "me"}), vec!["user_id"]),
        (json!({"content_type": "text", "caption": "x"}), vec!["body"]),
        (json!({"content_type": "text", "caption": 5, "user_id": me}), vec!["caption"]),
        (json!({"content_type": "text", "caption": "x", "user_id": me, "extra": 1}), vec!["extra"]),
        (json!([1, 2]), vec!["body"]),
    ];
    for (body, fields) in cases {
        let r = t.post("/api/v1/analyze").api_key(&ann.api_key).json(&body).send().await;
        assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{body}");
        assert_eq!(r.error_fields(), fields, "{body}");
    }
    let r = t.post("/api/v1/analyze").api_key(&ann.api_key).raw("application/json", "{\"content_type\":").send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::BAD_REQUEST, "malformed_json"));
    let r = t.post("/api/v1/analyze").api_key(&ann.api_key).raw("text/plain", "hello").send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"));
    let huge = json!({"content_type": "text", "caption": "x".repeat(300_000), "user_id": me});
    let r = t.post("/api/v1/analyze").api_key(&ann.api_key).json(&huge).send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    let r = t.post("/api/v1/analyze").json(&text(me, "x")).send().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Nothing was written by any of that.
    assert!(t.app.store.queued_jobs(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn invalid_comparisons_name_every_bad_variant_and_charge_nothing() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let eleven: Vec<String> = (0..11).map(|i| format!("variant {i}")).collect();
    let cases = [
        (json!({"variants": ["only one"]}), vec!["variants"]),
        (json!({"variants": eleven}), vec!["variants"]),
        (json!({"variants": ["a", " ", "x".repeat(10_001), "a"]}), vec!["variants[1]", "variants[2]", "variants[3]"]),
        (json!({"variants": ["a", 5]}), vec!["variants[1]"]),
        (json!({"variants": ["a", "b"], "platform_hint": "myspace"}), vec!["platform_hint"]),
        (json!({"variants": ["a", "b"], "extra": 1}), vec!["extra"]),
        (json!({}), vec!["body"]),
    ];
    for (body, fields) in cases {
        let r = t.post("/api/v1/compare").api_key(&ann.api_key).json(&body).send().await;
        assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{body}: {:?}", r.body);
        assert_eq!(r.error_fields(), fields, "{body}");
        assert!(r.header("x-request-id").is_some());
    }
    let r = t.post("/api/v1/compare").api_key(&ann.api_key).raw("application/json", "{\"variants\":").send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::BAD_REQUEST, "malformed_json"));
    let r = t.post("/api/v1/compare").json(&json!({"variants": ["a", "b"]})).send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let r = t
        .post("/api/v1/compare")
        .api_key(&ann.api_key)
        .header("idempotency-key", &"k".repeat(256))
        .json(&json!({"variants": ["a", "b"]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    // None of it was charged.
    let usage = t.get("/api/v1/usage/current").api_key(&ann.api_key).send().await;
    assert_eq!(usage.body["used"].as_u64(), Some(0), "{:?}", usage.body);
}

#[tokio::test]
async fn idempotency_key_replays_or_conflicts() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let send = |body: Value, key: &'static str| {
        let t = &t;
        let api_key = ann.api_key.clone();
        async move { t.post("/api/v1/analyze").api_key(&api_key).header("idempotency-key", key).json(&body).send().await }
    };
    let first = send(text(ann.user.id, "same"), "order-1").await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(first.header("idempotent-replayed").is_none());
    let again = send(text(ann.user.id, "same"), "order-1").await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body["job_id"], first.body["job_id"]);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let other = send(text(ann.user.id, "different"), "order-1").await;
    assert_eq!((other.status, other.error_code()), (StatusCode::CONFLICT, "conflict"));
    // Exactly one job exists for that key.
    assert_eq!(t.app.store.queued_jobs(10).await.unwrap().len(), 1);
    // A key whose request failed validation stays free.
    let bad = send(json!({"content_type": "text", "user_id": ann.user.id}), "order-2").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(send(text(ann.user.id, "fixed"), "order-2").await.status, StatusCode::CREATED);
    let r = t
        .post("/api/v1/analyze")
        .api_key(&ann.api_key)
        .header("idempotency-key", &"k".repeat(256))
        .json(&text(ann.user.id, "x"))
        .send()
        .await;
    assert_eq!(r.error_fields(), vec!["Idempotency-Key"]);
}

#[tokio::test]
async fn rate_limit_per_plan_answers_429_with_retry_after() {
    let limits = RateLimits { free_per_minute: 2, pro_per_minute: 5, enterprise_per_minute: 100 };
    let t = TestApp::spawn_with(Backend::Sqlite, limits).await;
    let free = t.user("free@example.com", Plan::Free, false).await;
    let pro = t.user("pro@example.com", Plan::Pro, false).await;
    for expected_remaining in ["1", "0"] {
        let r = t.post("/api/v1/analyze").api_key(&free.api_key).json(&text(free.user.id, "x")).send().await;
        assert_eq!(r.header("x-ratelimit-remaining"), Some(expected_remaining));
    }
    let r = t.post("/api/v1/analyze").api_key(&free.api_key).json(&text(free.user.id, "x")).send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    // The window slides: the two requests still weigh into the next minute, so one more
    // fits only half way into it (at most 60 + 30 s away).
    assert!((1..=90).contains(&retry), "{retry}");
    assert_eq!(r.body["error"]["details"]["limit"], 2);
    // Limits are per user: the pro user is unaffected.
    let r = t.post("/api/v1/analyze").api_key(&pro.api_key).json(&text(pro.user.id, "x")).send().await;
    assert_eq!((r.status, r.header("x-ratelimit-limit")), (StatusCode::CREATED, Some("5")));
    assert_eq!(t.app.store.queued_jobs(10).await.unwrap().len(), 3);
}

#[tokio::test]
async fn finished_jobs_show_score_insights_and_metrics_on_request() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let r = t.post("/api/v1/analyze").api_key(&ann.api_key).json(&text(ann.user.id, "Why 90% of hooks fail")).send().await;
    let job_id: uuid::Uuid = r.body["job_id"].as_str().unwrap().parse().unwrap();
    let result = JobResult {
        score: 81.5,
        confidence: 0.74,
        insights: vec![Insight {
            category: InsightCategory::Hook,
            message: "Specific number".into(),
            recommendations: vec!["Keep 90%".into()],
            weight: 0.4,
        }],
        metrics: json!({"model": "test-fixture", "words": 5}),
    };
    assert!(t.app.store.complete_job(job_id, &result, None, domain::model::now()).await.unwrap());
    let path = format!("/api/v1/analyze/{job_id}");
    let plain = t.get(&path).api_key(&ann.api_key).send().await;
    assert_eq!(
        (plain.body["status"].as_str(), plain.body["score"].as_f64(), plain.body["confidence"].as_f64()),
        (Some("complete"), Some(81.5), Some(0.74))
    );
    assert!(plain.body["completed_at"].is_string() && plain.body.get("insights").is_none() && plain.body.get("metrics").is_none());
    let full = t.get(&format!("{path}?include_insights=true&expand=metrics")).api_key(&ann.api_key).send().await;
    assert_eq!(full.body["insights"][0]["category"], "hook");
    assert_eq!(full.body["insights"][0]["recommendations"][0], "Keep 90%");
    assert_eq!(full.body["metrics"]["words"], 5);
    let r = t.get(&format!("{path}?expand=everything")).api_key(&ann.api_key).send().await;
    assert_eq!(r.error_fields(), vec!["expand"]);
    let r = t.get(&format!("{path}?include_insights=maybe")).api_key(&ann.api_key).send().await;
    assert_eq!(r.error_fields(), vec!["include_insights"]);
    let r = t.get(&format!("/api/v1/analyze/{}", uuid::Uuid::now_v7())).api_key(&ann.api_key).send().await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t.get("/api/v1/analyze/not-a-uuid").api_key(&ann.api_key).send().await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Archiving hides the job.
    assert_eq!(t.delete(&path).api_key(&ann.api_key).send().await.status, StatusCode::NO_CONTENT);
    assert_eq!(t.get(&path).api_key(&ann.api_key).send().await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn history_pages_with_a_stable_cursor() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let mut jobs = Vec::new();
    for i in 0..5 {
        let r = t.post("/api/v1/analyze").api_key(&ann.api_key).json(&text(ann.user.id, &format!("post {i}"))).send().await;
        jobs.push(r.body["job_id"].as_str().unwrap().to_string());
    }
    let base = format!("/api/v1/users/{}/history", ann.user.id);
    let page1 = t.get(&format!("{base}?limit=2")).api_key(&ann.api_key).send().await;
    let ids = |r: &goviral_testkit::TestResponse| {
        r.body["items"].as_array().unwrap().iter().map(|i| i["job_id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&page1), vec![jobs[4].clone(), jobs[3].clone()]);
    assert_eq!(page1.body["items"][0]["status"], "queued");
    let cursor = page1.body["next_cursor"].as_str().unwrap().to_string();
    // A new submission between pages does not shift page two.
    t.post("/api/v1/analyze").api_key(&ann.api_key).json(&text(ann.user.id, "late")).send().await;
    let page2 = t.get(&format!("{base}?limit=2&cursor={cursor}")).api_key(&ann.api_key).send().await;
    assert_eq!(ids(&page2), vec![jobs[2].clone(), jobs[1].clone()]);
    let page3 = t.get(&format!("{base}?limit=2&cursor={}", page2.body["next_cursor"].as_str().unwrap())).api_key(&ann.api_key).send().await;
    assert_eq!(ids(&page3), vec![jobs[0].clone()]);
    assert!(page3.body.get("next_cursor").is_none());
    let complete = t.get(&format!("{base}?status=complete")).api_key(&ann.api_key).send().await;
    assert!(ids(&complete).is_empty());
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("cursor=%%%", "cursor"),
        ("cursor=Zm9v", "cursor"),
        ("status=done", "status"),
    ] {
        let r = t.get(&format!("{base}?{query}")).api_key(&ann.api_key).send().await;
        assert_eq!((r.status, r.error_fields()), (StatusCode::UNPROCESSABLE_ENTITY, vec![field.to_string()]), "{query}");
    }
    let r = t.get(&format!("/api/v1/users/{}/history", uuid::Uuid::now_v7())).api_key(&ann.api_key).send().await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// What a post did, recorded against its job: validated field by field, kept as a history
/// (newest first) beside the prediction, only for a complete job of the caller's own.
#[tokio::test]
async fn outcomes_are_a_validated_history_beside_the_prediction() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let bo = t.user("bo@example.com", Plan::Pro, false).await;
    let r = t.post("/api/v1/analyze").api_key(&ann.api_key).json(&text(ann.user.id, "3 things nobody tells you")).send().await;
    let job: uuid::Uuid = r.body["job_id"].as_str().unwrap().parse().unwrap();
    let path = format!("/api/v1/analyze/{job}/outcome");
    let day1 = json!({"platform": "tiktok", "post_url": "https://www.tiktok.com/@ann/video/1", "observed_at": "2026-12-01T09:00:00Z", "views": 1200, "followers": 5400});

    // Not before the prediction exists.
    let early = t.post(&path).api_key(&ann.api_key).json(&day1).send().await;
    assert_eq!((early.status, early.error_code()), (StatusCode::CONFLICT, "conflict"), "{:?}", early.body);
    let result = JobResult { score: 61.0, confidence: 0.7, insights: vec![], metrics: json!({}) };
    t.app.store.complete_job(job, &result, None, domain::model::now()).await.unwrap();

    let first = t.post(&path).api_key(&ann.api_key).json(&day1).send().await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!((first.body["views"].as_u64(), first.body["source"].as_str()), (Some(1200), Some("api")));
    let week =
        json!({"platform": "tiktok", "observed_at": "2026-12-03T09:00:00Z", "views": 9800, "likes": 700, "comments": 41, "shares": 12});
    assert_eq!(t.post(&path).api_key(&ann.api_key).json(&week).send().await.status, StatusCode::CREATED);

    let history = t.get(&path).api_key(&ann.api_key).send().await;
    assert_eq!(history.status, StatusCode::OK);
    assert_eq!((history.body["score"].as_f64(), history.body["status"].as_str()), (Some(61.0), Some("complete")));
    let views: Vec<u64> = history.body["observations"].as_array().unwrap().iter().map(|o| o["views"].as_u64().unwrap()).collect();
    assert_eq!(views, [9800, 1200], "a history, newest first, nothing overwritten");

    let future =
        (time::OffsetDateTime::now_utc() + time::Duration::days(1)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let cases = [
        (json!({"observed_at": "2026-12-01T09:00:00Z", "views": -5}), vec!["views"]),
        (json!({"observed_at": future, "views": 5}), vec!["observed_at"]),
        (json!({"observed_at": "yesterday", "views": 5}), vec!["observed_at"]),
        (json!({"views": 5}), vec!["body"]),
        (json!({"observed_at": "2026-12-01T09:00:00Z"}), vec!["body"]),
        (
            json!({"observed_at": "2026-12-01T09:00:00Z", "views": 5, "platform": "x", "post_url": "https://www.tiktok.com/@ann/video/1"}),
            vec!["post_url"],
        ),
        (json!({"observed_at": "2026-12-01T09:00:00Z", "views": 5, "watch_time": 9}), vec!["watch_time"]),
    ];
    for (body, fields) in cases {
        let r = t.post(&path).api_key(&ann.api_key).json(&body).send().await;
        assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{body}: {:?}", r.body);
        assert_eq!(r.error_fields(), fields, "{body}");
    }
    // Another user's job is not there for them; nothing of theirs was written.
    assert_eq!(t.post(&path).api_key(&bo.api_key).json(&day1).send().await.status, StatusCode::NOT_FOUND);
    assert_eq!(t.get(&path).api_key(&bo.api_key).send().await.status, StatusCode::NOT_FOUND);
    assert_eq!(t.get(&path).send().await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(t.get(&path).api_key(&ann.api_key).send().await.body["observations"].as_array().unwrap().len(), 2);
}
