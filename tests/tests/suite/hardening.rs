//! The defects found by attacking `goviral serve` (issue 10), each proven fixed through the
//! real HTTP stack: SSRF at registration, idempotency under contention, token revocation,
//! replayed notices, the subscription limit, the notify secret, and input shape.

use std::sync::Arc;

use domain::model::Plan;
use goviral_testkit::{Backend, TestApp};
use http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn private_targets_are_refused_at_registration() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    // Refused even where the development setting lets webhooks reach this machine over http.
    for target in [
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.7/hook",
        "https://192.168.1.1/hook",
        "https://[::ffff:169.254.169.254]/hook",
        "https://[64:ff9b::a9fe:a9fe]/hook",
        "https://[2002:a00:1::]/hook",
        "https://[fd00:ec2::254]/hook",
        "https://0xa9fea9fe/hook",
    ] {
        let r = t.post("/api/v1/webhooks").api_key(&ann.api_key).json(&json!({"target_url": target})).send().await;
        assert_eq!((r.status, r.error_fields()), (StatusCode::UNPROCESSABLE_ENTITY, vec!["target_url".to_string()]), "{target}");
        let r = t
            .post("/api/v1/analyze")
            .api_key(&ann.api_key)
            .json(&json!({"content_type": "text", "caption": "hi", "user_id": ann.user.id, "notify_webhook": target}))
            .send()
            .await;
        assert_eq!((r.status, r.error_fields()), (StatusCode::UNPROCESSABLE_ENTITY, vec!["notify_webhook".to_string()]), "{target}");
    }
    let r = t.get("/api/v1/webhooks").api_key(&ann.api_key).send().await;
    assert!(r.body["items"].as_array().unwrap().is_empty(), "nothing was registered");
    let r = t
        .post("/api/v1/analyze")
        .api_key(&ann.api_key)
        .json(&json!({"content_type": "video", "source_url": "https://10.0.0.7/v.mp4", "user_id": ann.user.id}))
        .send()
        .await;
    assert_eq!(r.error_fields(), ["source_url"], "content is only fetched from public hosts");
}

fn text(user_id: uuid::Uuid) -> serde_json::Value {
    json!({"content_type": "text", "caption": "5 mistakes everyone makes with sourdough", "user_id": user_id})
}

#[tokio::test]
async fn an_idempotent_replay_never_names_a_job_that_does_not_exist() {
    let limits = domain::service::RateLimits { free_per_minute: 1, pro_per_minute: 1, enterprise_per_minute: 1 };
    let t = Arc::new(TestApp::spawn_with(Backend::Sqlite, limits).await);
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    assert_eq!(t.post("/api/v1/analyze").api_key(&ann.api_key).json(&text(ann.user.id)).send().await.status, StatusCode::CREATED);
    // Over the limit now: 20 parallel requests share one new key. The first reserves the key,
    // is refused by the limit and frees it; none may be told about a job it never made.
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let (t, key, body) = (t.clone(), ann.api_key.clone(), text(ann.user.id));
            tokio::spawn(
                async move { t.post("/api/v1/analyze").api_key(&key).header("idempotency-key", "burst-1").json(&body).send().await },
            )
        })
        .collect();
    for attempt in attempts {
        let r = attempt.await.unwrap();
        match r.status {
            StatusCode::TOO_MANY_REQUESTS => assert_eq!(r.error_code(), "rate_limit_exceeded"),
            StatusCode::CONFLICT => {
                assert_eq!(r.error_code(), "in_progress");
                assert!(r.header("retry-after").is_some());
            }
            StatusCode::CREATED => {
                let job = r.body["job_id"].as_str().unwrap();
                let seen = t.get(&format!("/api/v1/analyze/{job}")).api_key(&ann.api_key).send().await;
                assert_eq!(seen.status, StatusCode::OK, "a 201 named job {job}, which does not exist");
            }
            other => panic!("unexpected {other}: {:?}", r.body),
        }
    }
    assert_eq!(t.app.store.queued_jobs(100).await.unwrap().len(), 1, "only the first submission made a job");
}

#[tokio::test]
async fn the_openapi_enums_are_the_values_the_api_speaks() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let doc = t.get("/api/v1/openapi.json").send().await.body;
    let schemas = &doc["components"]["schemas"];
    let values = |name: &str| schemas[name]["enum"].as_array().unwrap_or_else(|| panic!("{name} has no enum")).clone();
    assert_eq!(values("JobStatus"), json!(["queued", "processing", "complete", "failed", "archived"]).as_array().unwrap().clone());
    assert_eq!(values("Platform"), json!(["tiktok", "youtube", "instagram", "x"]).as_array().unwrap().clone());
    assert_eq!(values("WebhookEvent"), json!(["job.completed", "job.failed", "usage.threshold"]).as_array().unwrap().clone());
    assert_eq!(values("ContentType"), json!(["video", "post", "text"]).as_array().unwrap().clone());
    assert_eq!(values("InsightCategory"), json!(["hook", "pacing", "emotion", "storytelling", "cta"]).as_array().unwrap().clone());
    // No Rust variant name is left anywhere in the document.
    let text = doc.to_string();
    for rust_name in ["\"Queued\"", "\"Tiktok\"", "\"JobCompleted\"", "\"Storytelling\""] {
        assert!(!text.contains(rust_name), "{rust_name} is in the document");
    }
}

#[tokio::test]
async fn revoking_a_key_ends_the_tokens_minted_from_it() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Free, false).await;
    let from_key =
        t.post("/api/v1/auth/token").json(&json!({"api_key": ann.api_key})).send().await.body["access_token"].as_str().unwrap().to_string();
    let from_secret = t.token(&ann).await;
    assert_eq!(t.get("/api/v1/keys").bearer(&from_key).send().await.status, StatusCode::OK);
    let key_id = t.get("/api/v1/keys").bearer(&from_key).send().await.body["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(t.delete(&format!("/api/v1/keys/{key_id}")).bearer(&from_secret).send().await.status, StatusCode::NO_CONTENT);
    let r = t.get("/api/v1/keys").bearer(&from_key).send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::UNAUTHORIZED, "unauthorized"));
    assert!(r.body["error"]["message"].as_str().unwrap().contains("revoked"));
    // The client-credentials token is not tied to that key.
    assert_eq!(t.get("/api/v1/keys").bearer(&from_secret).send().await.status, StatusCode::OK);
    // Rotation retires the old key, and its tokens with it.
    let second = t.post("/api/v1/keys").bearer(&from_secret).send().await.body["api_key"].as_str().unwrap().to_string();
    let from_second =
        t.post("/api/v1/auth/token").json(&json!({"api_key": second})).send().await.body["access_token"].as_str().unwrap().to_string();
    let second_id = t.get("/api/v1/keys").bearer(&from_second).send().await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["revoked_at"].is_null())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(t.post(&format!("/api/v1/keys/{second_id}/rotate")).bearer(&from_secret).send().await.status, StatusCode::CREATED);
    assert_eq!(t.get("/api/v1/keys").bearer(&from_second).send().await.status, StatusCode::UNAUTHORIZED);
}

fn sign_now(secret: &str, body: &[u8]) -> String {
    domain::auth::sign_webhook(secret, time::OffsetDateTime::now_utc().unix_timestamp(), body)
}

#[tokio::test]
async fn a_signed_notice_is_accepted_once() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Free, false).await;
    let r = t.post("/api/v1/webhooks").api_key(&ann.api_key).json(&json!({"target_url": "https://hooks.example.com/a"})).send().await;
    let (id, secret) = (r.body["id"].as_str().unwrap().to_string(), r.body["secret"].as_str().unwrap().to_string());
    let body =
        json!({"job_id": uuid::Uuid::now_v7(), "status": "complete", "score": 71.5, "timestamp": "2026-12-01T00:00:00Z"}).to_string();
    let signature = sign_now(&secret, body.as_bytes());
    let send = |signature: String| {
        t.post("/api/v1/hooks/completion")
            .header("x-gvn-webhook-id", &id)
            .header("x-gvn-signature", &signature)
            .raw("application/json", body.clone())
            .send()
    };
    assert_eq!(send(signature.clone()).await.status, StatusCode::NO_CONTENT);
    let replay = send(signature.clone()).await;
    assert_eq!((replay.status, replay.error_code()), (StatusCode::CONFLICT, "conflict"));
    // Padding the header with another v1 value does not make it new.
    let padded = format!("{signature},v1={}", "00".repeat(32));
    assert_eq!(send(padded).await.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn the_notify_secret_can_be_read_rotated_and_verified() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Free, false).await;
    let r = t.get("/api/v1/webhooks/signing-secret").api_key(&ann.api_key).send().await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["signing_id"], format!("user:{}", ann.user.id));
    let old = r.body["secret"].as_str().unwrap().to_string();
    assert_eq!(old, ann.user.webhook_secret, "the secret notify deliveries are signed with");
    let r = t.post("/api/v1/webhooks/signing-secret/rotate").api_key(&ann.api_key).send().await;
    assert_eq!(r.status, StatusCode::OK);
    let new = r.body["secret"].as_str().unwrap().to_string();
    assert!(new.starts_with("whsec_") && new != old);
    assert_eq!(t.get("/api/v1/webhooks/signing-secret").api_key(&ann.api_key).send().await.body["secret"], new.as_str());
    // The completion hook now takes notices signed with the new secret only.
    let hook = |secret: &str| {
        let body = json!({"job_id": uuid::Uuid::now_v7(), "status": "failed", "timestamp": "2026-12-01T00:00:00Z"}).to_string();
        let signature = sign_now(secret, body.as_bytes());
        t.post("/api/v1/hooks/completion")
            .header("x-gvn-webhook-id", &format!("user:{}", ann.user.id))
            .header("x-gvn-signature", &signature)
            .raw("application/json", body)
            .send()
    };
    assert_eq!(hook(&new).await.status, StatusCode::NO_CONTENT);
    assert_eq!(hook(&old).await.status, StatusCode::UNAUTHORIZED);
    let bob = t.user("bob@example.com", Plan::Free, false).await;
    let theirs = t.get("/api/v1/webhooks/signing-secret").api_key(&bob.api_key).send().await;
    assert_ne!(theirs.body["secret"], new.as_str(), "each user has their own");
    let audit = t.app.store.audit_for_actor(&ann.user.id.to_string(), 20).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "webhook.notify_secret.rotate"));
}

#[tokio::test]
async fn limits_slide_and_say_so_in_ratelimit_headers() {
    let limits = domain::service::RateLimits { free_per_minute: 3, pro_per_minute: 3, enterprise_per_minute: 3 };
    let t = TestApp::spawn_with(Backend::Sqlite, limits).await;
    let ann = t.user("ann@example.com", Plan::Free, false).await;
    // A full previous minute still counts at the start of this one: the fixed window used to
    // admit the limit again at once (2× across the boundary).
    // (Far enough from the minute's end that the previous minute still weighs > 1/60.)
    let second = time::OffsetDateTime::now_utc().unix_timestamp().rem_euclid(60);
    if second >= 55 {
        tokio::time::sleep(std::time::Duration::from_secs((61 - second) as u64)).await;
    }
    let window = time::OffsetDateTime::now_utc().unix_timestamp().div_euclid(60);
    let previous = format!("rate:{}:{}", ann.user.id, window - 1);
    let until = (window + 1) * 60 * 1_000_000;
    for _ in 0..180 {
        t.app.counters.increment(&previous, until, domain::model::to_micros(domain::model::now())).await.unwrap();
    }
    let r = t.post("/api/v1/analyze").api_key(&ann.api_key).json(&text(ann.user.id)).send().await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("ratelimit-policy"), Some("\"submissions\";q=3;w=60"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(r.header("ratelimit"), Some(format!("\"submissions\";r=0;t={retry}").as_str()));

    let bob = t.user("bob@example.com", Plan::Free, false).await;
    let r = t.post("/api/v1/analyze").api_key(&bob.api_key).json(&text(bob.user.id)).send().await;
    assert_eq!(r.status, StatusCode::CREATED);
    // The burst limit first, then the month's allowance (25 units on free; 1 used).
    let policy = r.header("ratelimit-policy").unwrap();
    assert!(policy.starts_with("\"submissions\";q=3;w=60, \"monthly\";q=25;w="), "{policy}");
    let state = r.header("ratelimit").unwrap();
    assert!(state.starts_with("\"submissions\";r=2;t=0, \"monthly\";r=24;t="), "{state}");
}

#[tokio::test]
async fn a_body_naming_a_key_twice_is_refused() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Free, false).await;
    let bob = t.user("bob@example.com", Plan::Free, false).await;
    let body = format!(r#"{{"content_type": "text", "caption": "hi", "user_id": "{}", "user_id": "{}"}}"#, ann.user.id, bob.user.id);
    let r = t.post("/api/v1/analyze").api_key(&ann.api_key).raw("application/json", body).send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::BAD_REQUEST, "malformed_json"));
    assert!(r.body["error"]["message"].as_str().unwrap().contains("`user_id` appears twice"));
}

#[tokio::test]
async fn failed_authentication_is_throttled_per_address_and_per_credential() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Free, false).await;
    // A wrong secret for one real key prefix: ten tries, then 429 before any hashing.
    let prefix = ann.api_key.split('_').nth(1).unwrap();
    let wrong = format!("gvk_{prefix}_{}", "A".repeat(43));
    for _ in 0..10 {
        assert_eq!(t.get("/api/v1/keys").api_key(&wrong).send().await.status, StatusCode::UNAUTHORIZED);
    }
    let r = t.get("/api/v1/keys").api_key(&wrong).send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded"));
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.header("ratelimit-policy"), Some("\"auth-failures\";q=10;w=60"));
    let r = t.post("/api/v1/auth/token").json(&json!({"client_id": ann.user.id, "client_secret": "wrong"})).send().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let mut statuses = Vec::new();
    for i in 0..30 {
        let key = format!("gvk_{:012x}_{}", 0xabc000 + i, "B".repeat(43));
        statuses.push(t.get("/api/v1/keys").api_key(&key).send().await.status);
    }
    // 20 failures from one address, then the address is refused whatever it sends.
    let refused = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert!(refused >= 8, "{statuses:?}");
    let r = t.post("/api/v1/auth/token").json(&json!({"client_id": ann.user.id, "client_secret": ann.client_secret})).send().await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "the address is throttled for every credential");
}

mod slow_clients {
    //! Slowloris and friends against the real server, with its limits shortened.

    use std::time::{Duration, Instant};

    use goviral_api::server::ServerLimits;
    use goviral_testkit::{Backend, TestApp};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    fn limits(max_connections: usize) -> ServerLimits {
        ServerLimits {
            header_timeout: Duration::from_millis(400),
            body_idle_timeout: Duration::from_millis(400),
            max_connections,
            ..ServerLimits::default()
        }
    }

    async fn spawn(max_connections: usize) -> TestApp {
        TestApp::spawn_configured(Backend::Sqlite, Default::default(), limits(max_connections)).await
    }

    /// Reads until the server closes the connection (or 5 s pass); returns what it sent.
    async fn until_closed(stream: &mut TcpStream) -> (String, Duration) {
        let started = Instant::now();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
                Err(_) => panic!("the server kept the connection open for 5 s"),
            }
        }
        (String::from_utf8_lossy(&seen).into_owned(), started.elapsed())
    }

    #[tokio::test]
    async fn headers_that_never_finish_are_cut_off() {
        let t = spawn(64).await;
        let mut stream = TcpStream::connect(t.addr).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap(); // and never the blank line
        let (_, after) = until_closed(&mut stream).await;
        assert!(after < Duration::from_secs(3), "closed after {after:?}");
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed() {
        let t = spawn(64).await;
        let mut stream = TcpStream::connect(t.addr).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let (seen, _) = until_closed(&mut stream).await;
        assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    }

    #[tokio::test]
    async fn a_body_that_stops_arriving_gets_408() {
        let t = spawn(64).await;
        let ann = t.user("ann@example.com", domain::model::Plan::Free, false).await;
        let mut stream = TcpStream::connect(t.addr).await.unwrap();
        let head = format!(
            "POST /api/v1/analyze HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"content_type\":",
            ann.api_key
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let (seen, after) = until_closed(&mut stream).await;
        assert!(seen.starts_with("HTTP/1.1 408"), "{seen}");
        assert!(seen.contains("\"request_timeout\"") && seen.to_ascii_lowercase().contains("x-request-id"), "{seen}");
        assert!(after < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn connections_past_the_cap_wait_for_a_free_one() {
        let t = spawn(2).await;
        // Two clients hold every connection without sending anything.
        let _a = TcpStream::connect(t.addr).await.unwrap();
        let _b = TcpStream::connect(t.addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let mut c = TcpStream::connect(t.addr).await.unwrap(); // the kernel's backlog takes it
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let (seen, _) = until_closed(&mut c).await;
        assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
        // Served only once the header timeout had freed a place.
        assert!(started.elapsed() >= Duration::from_millis(300), "served after {:?}", started.elapsed());
    }
}

mod store_faults {
    //! The store failing under a running server: every answer says so (503 with Retry-After),
    //! health says so, and nothing is half-written or silently lost.

    use domain::model::Plan;
    use goviral_testkit::{Backend, TestApp};
    use http::StatusCode;
    use sqlx::Connection;

    async fn submit(t: &TestApp, api_key: &str, user_id: uuid::Uuid) -> goviral_testkit::TestResponse {
        t.post("/api/v1/analyze").api_key(api_key).json(&super::text(user_id)).send().await
    }

    fn unavailable(r: &goviral_testkit::TestResponse) {
        assert_eq!((r.status, r.error_code()), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"), "{:?}", r.body);
        assert!(r.header("retry-after").is_some(), "503 without Retry-After");
    }

    #[tokio::test]
    async fn a_deleted_sqlite_file_stops_writes_instead_of_losing_them() {
        let t = TestApp::spawn(Backend::Sqlite).await;
        let ann = t.user("ann@example.com", Plan::Pro, false).await;
        assert_eq!(submit(&t, &ann.api_key, ann.user.id).await.status, StatusCode::CREATED);
        assert_eq!(t.get("/healthz").send().await.status, StatusCode::OK);
        let db = t.db.sqlite_path().unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        unavailable(&submit(&t, &ann.api_key, ann.user.id).await);
        let health = t.get("/healthz").send().await;
        unavailable(&health);
        assert_eq!(health.body["error"]["details"]["store"], "unwritable");
    }

    #[tokio::test]
    async fn a_replaced_or_truncated_sqlite_file_is_noticed() {
        let t = TestApp::spawn(Backend::Sqlite).await;
        let ann = t.user("ann@example.com", Plan::Pro, false).await;
        assert_eq!(submit(&t, &ann.api_key, ann.user.id).await.status, StatusCode::CREATED);
        let db = t.db.sqlite_path().unwrap();
        // The wal-index cut short under its memory map: refused before it is touched
        // (touching it would be SIGBUS, the end of the process).
        let shm = format!("{}-shm", db.display());
        std::fs::OpenOptions::new().write(true).open(&shm).unwrap().set_len(0).unwrap();
        unavailable(&submit(&t, &ann.api_key, ann.user.id).await);
        unavailable(&t.get("/healthz").send().await);

        let t = TestApp::spawn(Backend::Sqlite).await;
        let ann = t.user("ann@example.com", Plan::Pro, false).await;
        let db = t.db.sqlite_path().unwrap();
        let copy = db.with_extension("copy");
        std::fs::copy(&db, &copy).unwrap();
        std::fs::rename(&copy, &db).unwrap();
        unavailable(&submit(&t, &ann.api_key, ann.user.id).await);
    }

    #[tokio::test]
    async fn a_read_only_postgres_answers_503_writes_nothing_and_recovers() {
        let t = TestApp::spawn(Backend::Postgres).await;
        let ann = t.user("ann@example.com", Plan::Pro, false).await;
        assert_eq!(submit(&t, &ann.api_key, ann.user.id).await.status, StatusCode::CREATED);
        let name = t.db.pg_database().unwrap().to_string();
        let mut admin = sqlx::PgConnection::connect(&goviral_testkit::postgres_admin_url()).await.unwrap();
        let set = |on: bool| format!("ALTER DATABASE {name} SET default_transaction_read_only = {}", if on { "on" } else { "off" });
        let kick = format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()");
        sqlx::query(&set(true)).execute(&mut admin).await.unwrap();
        sqlx::query(&kick).execute(&mut admin).await.unwrap();

        let mut refused = 0;
        for _ in 0..5 {
            let r = submit(&t, &ann.api_key, ann.user.id).await;
            // The first request after the kick may meet a pooled connection that just died.
            if r.status == StatusCode::SERVICE_UNAVAILABLE {
                unavailable(&r);
                refused += 1;
            }
            assert_ne!(r.status, StatusCode::CREATED, "a read-only database took a submission");
            assert_ne!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{:?}", r.body);
        }
        assert_eq!(refused, 5);
        unavailable(&t.get("/healthz").send().await);
        // Nothing half-written: the one job from before, no submission without its job.
        sqlx::query(&set(false)).execute(&mut admin).await.unwrap();
        sqlx::query(&kick).execute(&mut admin).await.unwrap();
        let mut healthy = false;
        for _ in 0..20 {
            if t.get("/healthz").send().await.status == StatusCode::OK {
                healthy = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(healthy, "health recovers with the database");
        assert_eq!(t.app.store.queued_jobs(100).await.unwrap().len(), 1);
        let mut db = sqlx::PgConnection::connect(&t.db.url).await.unwrap();
        let submissions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM content_submissions").fetch_one(&mut db).await.unwrap();
        assert_eq!(submissions, 1);
        assert_eq!(submit(&t, &ann.api_key, ann.user.id).await.status, StatusCode::CREATED);
    }
}

/// A request that reserved its key and died before making the job (a crash between the two)
/// must not leave the key answering "in progress" for a day: after 30 s it is taken over.
#[tokio::test]
async fn a_key_abandoned_by_a_crashed_request_is_taken_over() {
    use domain::ports::IdempotencyRecord;
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let body = text(ann.user.id);
    let input: domain::service::AnalyzeInput = serde_json::from_value::<goviral_api::dto::AnalyzeRequest>(body.clone()).unwrap().into();
    let hash = domain::auth::sha256_hex(&serde_json::to_vec(&input).unwrap());
    let now_us = domain::model::to_micros(domain::model::now());
    let ttl_us = domain::service::IDEMPOTENCY_TTL_SECS * 1_000_000;
    for (key, reserved_ago_us, expected) in [("fresh", 1_000_000, StatusCode::CONFLICT), ("abandoned", 31_000_000, StatusCode::CREATED)] {
        let record = IdempotencyRecord {
            user_id: ann.user.id,
            key: key.into(),
            request_hash: hash.clone(),
            job_id: uuid::Uuid::now_v7(), // never created
            expires_at_us: now_us - reserved_ago_us + ttl_us,
        };
        t.app.counters.reserve_idempotency(&record, now_us).await.unwrap();
        let r = t.post("/api/v1/analyze").api_key(&ann.api_key).header("idempotency-key", key).json(&body).send().await;
        assert_eq!(r.status, expected, "{key}: {:?}", r.body);
    }
    // The taken-over key now replays its new job.
    let again = t.post("/api/v1/analyze").api_key(&ann.api_key).header("idempotency-key", "abandoned").json(&body).send().await;
    assert_eq!((again.status, again.header("idempotent-replayed")), (StatusCode::CREATED, Some("true")));
}

/// Webhooks are at least once: a delivery recorded after its POST is sent again if the record
/// is lost (a crash between the two), and the repeat carries the same `X-GVN-Delivery` id so
/// the receiver can drop it.
#[tokio::test]
async fn a_delivery_sent_again_after_a_lost_record_keeps_its_delivery_id() {
    use domain::model::{DeliveryStatus, WebhookEvent};
    use domain::pipeline::{PipelineState, Stage, run_stage};
    use goviral_testkit::pipeline::{Receiver, Stages};
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let receiver = Receiver::start().await;
    let stages = Stages::new();
    let pipeline = t.start_pipeline(&stages);
    let mut body = text(ann.user.id);
    body["notify_webhook"] = json!(receiver.url);
    let job: uuid::Uuid =
        t.post("/api/v1/analyze").api_key(&ann.api_key).json(&body).send().await.body["job_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(t.finished_job(&ann.api_key, &job.to_string()).await["status"], "complete");
    pipeline.stop().await;
    for _ in 0..100 {
        if !receiver.hits().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The record of the first attempt is lost: the delivery is pending again.
    let delivery = t.app.store.webhook_delivery(job, &receiver.url, WebhookEvent::JobCompleted).await.unwrap();
    assert_eq!(delivery.status, DeliveryStatus::Delivered);
    t.app.store.record_delivery_attempt(delivery.id, DeliveryStatus::Pending, None, domain::model::now()).await.unwrap();
    let webhooks = Arc::new(goviral_adapters::webhook::HttpWebhookSender::new(std::time::Duration::from_secs(2), true));
    let ctx = stages.context(t.app.store.clone(), webhooks, domain::pipeline::WebhookPolicy { max_attempts: 6, allow_loopback: true });
    run_stage(&ctx, Stage::Webhook, serde_json::to_value(PipelineState::new(job)).unwrap()).await.unwrap();
    let hits = receiver.hits();
    assert_eq!(hits.len(), 2, "sent again");
    let ids: Vec<&str> = hits.iter().map(|h| h.headers["x-gvn-delivery"].to_str().unwrap()).collect();
    assert_eq!(ids[0], ids[1], "the same delivery id both times");
    assert_eq!(ids[0], delivery.id.to_string());
}
