//! The defects the second attack run found (issue 23), each proven fixed through the real
//! server: one client holding every connection, one user's slow sources holding the runner,
//! streams without a cap or outliving revocation, account-linking and login CSRF, one tenant
//! spending the platforms' budgets, sessions that outlive sign-out, unchecked post
//! addresses, blobs served to be sniffed, and webhook secrets in what we write down.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use domain::model::{Plan, Platform};
use goviral_api::server::ServerLimits;
use goviral_testkit::pipeline::Stages;
use goviral_testkit::platforms::FakePlatform;
use goviral_testkit::{Backend, TestApp};
use http::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection to the server from `source` (any 127.0.0.0/8 address is this machine).
async fn connect_from(source: [u8; 4], server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::from(source), 0)).unwrap();
    socket.connect(server).await.unwrap()
}

/// Sends one keep-alive request and reads its answer's head: None if the server closed the
/// connection instead of answering.
async fn ask(stream: &mut TcpStream, request: &str) -> Option<String> {
    if stream.write_all(request.as_bytes()).await.is_err() {
        return None;
    }
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (!seen.is_empty()).then(|| String::from_utf8_lossy(&seen).into_owned()),
            Ok(Ok(n)) => {
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen);
                // The bodies asked for here are small: the head and a little JSON.
                if text.contains("\r\n\r\n") && (text.contains("\"status\"") || text.contains("\"error\"") || text.contains("[")) {
                    return Some(text.into_owned());
                }
            }
            Err(_) => panic!("no answer in 5 s"),
        }
    }
}

const HEALTH: &str = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test]
async fn one_address_cannot_hold_every_connection() {
    let limits = ServerLimits {
        max_connections: 64,
        per_address: 8,
        reserve: 8,
        header_timeout: Duration::from_secs(20),
        ..ServerLimits::default()
    };
    let t = TestApp::spawn_configured(Backend::Sqlite, Default::default(), limits).await;
    // One address opens 40 keep-alive connections (the attack held 1,100 of 1,024).
    let mut held = Vec::new();
    for _ in 0..40 {
        held.push(connect_from([127, 0, 0, 2], t.addr).await);
    }
    let mut served = 0;
    for stream in &mut held {
        if ask(stream, HEALTH).await.is_some_and(|head| head.starts_with("HTTP/1.1 200")) {
            served += 1;
        }
    }
    assert_eq!(served, 8, "the address gets its share and no more");
    // Everyone else is answered at once.
    let started = Instant::now();
    let mut other = connect_from([127, 0, 0, 1], t.addr).await;
    let head = ask(&mut other, HEALTH).await.expect("answered");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    assert_eq!(t.get("/api/v1/keys").api_key(&ann.api_key).send().await.status, StatusCode::OK);
}

#[tokio::test]
async fn when_many_addresses_fill_the_server_the_reserve_answers_health_and_credentials() {
    let limits = ServerLimits {
        max_connections: 24,
        per_address: 4,
        reserve: 6,
        header_timeout: Duration::from_secs(20),
        ..ServerLimits::default()
    };
    let t = TestApp::spawn_configured(Backend::Sqlite, Default::default(), limits).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    // Six addresses hold four idle keep-alive connections each: every place but the reserve.
    let mut held = Vec::new();
    for last in 2..8u8 {
        for _ in 0..3 {
            let mut stream = connect_from([127, 0, 0, last], t.addr).await;
            assert!(ask(&mut stream, HEALTH).await.is_some());
            held.push(stream);
        }
    }
    // A stranger without credentials is told the server is full; health and a client with
    // credentials are answered, each on a reserved place.
    let mut stranger = connect_from([127, 0, 0, 9], t.addr).await;
    let head = ask(&mut stranger, "GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("answered");
    assert!(head.starts_with("HTTP/1.1 503") && head.contains("\"overloaded\"") && head.contains("x-request-id"), "{head}");
    let mut health = connect_from([127, 0, 0, 9], t.addr).await;
    assert!(ask(&mut health, HEALTH).await.unwrap().starts_with("HTTP/1.1 200"));
    let mut known = connect_from([127, 0, 0, 9], t.addr).await;
    let request = format!("GET /api/v1/keys HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\n\r\n", ann.api_key);
    assert!(ask(&mut known, &request).await.unwrap().starts_with("HTTP/1.1 200"));
    // And the idle connections that filled the server were closed to free their places.
    let mut closed = 0;
    for stream in &mut held {
        let mut buf = [0u8; 16];
        if matches!(tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await, Ok(Ok(0)) | Ok(Err(_))) {
            closed += 1;
        }
    }
    assert_eq!(closed, held.len(), "idle connections are shed when the server is full");
}

/// A video server that answers with an MP4's first bytes and then a byte every 100 ms.
async fn trickling_server() -> String {
    use axum::body::Body;
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/v/{name}",
        get(|| async {
            let head = futures_util::stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from_static(
                b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom",
            ))]);
            let drip = futures_util::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((Ok(axum::body::Bytes::from_static(b"\0")), ()))
            });
            Body::from_stream(futures_util::StreamExt::chain(head, drip))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test]
async fn one_users_slow_sources_do_not_hold_up_another_users_caption() {
    let base = trickling_server().await;
    let t = TestApp::spawn_tuned(Backend::Sqlite, Default::default(), Default::default(), |c| {
        c.pipeline_concurrency = 4;
        c.pipeline_per_user = 2;
        c.media.downloads_at_once = 2;
        // The slow servers would hold their downloads for the whole 30 s.
        c.media.fetch_timeout = Duration::from_secs(30);
        c.media.fetch_min_rate = 0;
    })
    .await;
    let pipeline = t.start_pipeline(&Stages::new());
    let (ann, bo) = (t.user("ann@example.com", Plan::Pro, false).await, t.user("bo@example.com", Plan::Pro, false).await);
    for i in 0..12 {
        let body =
            json!({"content_type": "video", "source_url": format!("{base}/v/{i}.mp4"), "caption": "Wait for it", "user_id": ann.user.id});
        assert_eq!(t.post("/api/v1/analyze").api_key(&ann.api_key).json(&body).send().await.status, StatusCode::CREATED);
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // the downloads are under way
    let submitted = Instant::now();
    let body = json!({"content_type": "text", "caption": "5 mistakes everyone makes with sourdough", "user_id": bo.user.id});
    let job = t.post("/api/v1/analyze").api_key(&bo.api_key).json(&body).send().await.body["job_id"].as_str().unwrap().to_string();
    let done = t.finished_job(&bo.api_key, &job).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert!(submitted.elapsed() < Duration::from_secs(2), "bo's caption took {:?}", submitted.elapsed());
    pipeline.kill().await;
}

#[tokio::test]
async fn a_source_that_trickles_is_given_up_with_a_reason() {
    let base = trickling_server().await;
    let t = TestApp::spawn_tuned(Backend::Sqlite, Default::default(), Default::default(), |c| {
        c.media.fetch_timeout = Duration::from_secs(30);
        c.media.fetch_min_rate = 1024;
        c.media.fetch_rate_window = Duration::from_millis(500);
    })
    .await;
    let pipeline = t.start_pipeline(&Stages::new());
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let body = json!({"content_type": "video", "source_url": format!("{base}/v/slow.mp4"), "caption": "Wait", "user_id": ann.user.id});
    let job = t.post("/api/v1/analyze").api_key(&ann.api_key).json(&body).send().await.body["job_id"].as_str().unwrap().to_string();
    let done = t.finished_job(&ann.api_key, &job).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(done.to_string().contains("sent under 1 KiB/s"), "{done}");
    pipeline.kill().await;
}

/// Opens a job's live stream; the response, still streaming.
async fn open_stream(t: &TestApp, job: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("http://{}/api/v1/analyze/{job}/events", t.addr));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn queued_job(t: &TestApp, api_key: &str, user: uuid::Uuid) -> String {
    let body = json!({"content_type": "text", "caption": "A caption that stays queued", "user_id": user});
    t.post("/api/v1/analyze").api_key(api_key).json(&body).send().await.body["job_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn live_streams_are_capped_per_user_and_per_key() {
    let t = TestApp::spawn_tuned(Backend::Sqlite, Default::default(), Default::default(), |c| {
        c.settings.streams_per_user = 3;
        c.settings.streams_per_key = 2;
    })
    .await;
    let ann = t.user("ann@example.com", Plan::Free, false).await;
    let job = queued_job(&t, &ann.api_key, ann.user.id).await;
    let second_key = t.post("/api/v1/keys").api_key(&ann.api_key).send().await.body["api_key"].as_str().unwrap().to_string();
    let mut open = Vec::new();
    for _ in 0..2 {
        let r = open_stream(&t, &job, &[("x-api-key", &ann.api_key)]).await;
        assert_eq!(r.status(), StatusCode::OK);
        open.push(r);
    }
    let refused = open_stream(&t, &job, &[("x-api-key", &ann.api_key)]).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("x-request-id"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!((body["error"]["code"].as_str(), body["error"]["details"]["what"].as_str()), (Some("too_many"), Some("streams_per_key")));
    // Another key of the same account has its own two, within the account's three.
    let third = open_stream(&t, &job, &[("x-api-key", &second_key)]).await;
    assert_eq!(third.status(), StatusCode::OK);
    open.push(third);
    let refused = open_stream(&t, &job, &[("x-api-key", &second_key)]).await;
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["details"]["what"].as_str(), Some("streams_per_user"), "{body}");
    // A stream that ends gives its place back.
    drop(open.pop());
    let mut again = None;
    for _ in 0..50 {
        let r = open_stream(&t, &job, &[("x-api-key", &second_key)]).await;
        if r.status() == StatusCode::OK {
            again = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "the place came back");
}

/// Reads the stream until it closes (true) or `wait` passes (false).
async fn closes_within(mut response: reqwest::Response, wait: Duration) -> bool {
    let read = async { while let Ok(Some(_)) = response.chunk().await {} };
    tokio::time::timeout(wait, read).await.is_ok()
}

#[tokio::test]
async fn revoking_a_key_closes_its_streams_and_its_stream_tokens() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let job = queued_job(&t, &ann.api_key, ann.user.id).await;
    let spare = t.post("/api/v1/keys").api_key(&ann.api_key).send().await.body;
    let (spare_key, spare_id) = (spare["api_key"].as_str().unwrap().to_string(), spare["id"].as_str().unwrap().to_string());
    let stream = open_stream(&t, &job, &[("x-api-key", &spare_key)]).await;
    assert_eq!(stream.status(), StatusCode::OK);
    let issued = t.post(&format!("/api/v1/analyze/{job}/stream-token")).api_key(&spare_key).send().await;
    let token = issued.body["stream_token"].as_str().unwrap().to_string();
    let by_token = reqwest::get(format!("http://{}/api/v1/analyze/{job}/events?stream_token={token}", t.addr)).await.unwrap();
    assert_eq!(by_token.status(), StatusCode::OK);
    assert_eq!(t.delete(&format!("/api/v1/keys/{spare_id}")).api_key(&ann.api_key).send().await.status, StatusCode::NO_CONTENT);
    // The open streams end at their next heartbeat (every 200 ms here)…
    assert!(closes_within(stream, Duration::from_secs(3)).await, "the stream outlived its key");
    assert!(closes_within(by_token, Duration::from_secs(3)).await, "the token's stream outlived its key");
    // …and the key's stream token opens nothing any more.
    let r = t.get(&format!("/api/v1/analyze/{job}/events?stream_token={token}")).send().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("revoked"), "{:?}", r.body);
}

/// Signs in with the key; the session cookie and the CSRF token.
async fn sign_in(t: &TestApp, api_key: &str) -> (String, String) {
    let r = t.post("/api/v1/auth/session").json(&json!({"api_key": api_key})).send().await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let cookie = r.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    (cookie, r.body["csrf_token"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn signing_out_ends_the_session_for_every_copy_of_the_cookie() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let (cookie, csrf) = sign_in(&t, &ann.api_key).await;
    let copy = cookie.clone();
    assert_eq!(t.get("/api/v1/auth/session").header("cookie", &copy).send().await.status, StatusCode::OK);
    let out = t.delete("/api/v1/auth/session").header("cookie", &cookie).send().await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let r = t.get("/api/v1/auth/session").header("cookie", &copy).send().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a copied cookie still worked: {:?}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("ended"), "{:?}", r.body);
    let mint = t.post("/api/v1/keys").header("cookie", &copy).header("x-csrf-token", &csrf).send().await;
    assert_eq!(mint.status, StatusCode::UNAUTHORIZED, "a copied cookie minted a key");
    // Another session of the same key is untouched, and a new sign-in works.
    let (other, _) = sign_in(&t, &ann.api_key).await;
    assert_eq!(t.get("/api/v1/keys").header("cookie", &other).send().await.status, StatusCode::OK);
}

#[tokio::test]
async fn sign_in_is_only_taken_as_json_from_our_own_pages() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let body = json!({"api_key": ann.api_key}).to_string();
    // What a page elsewhere can send without asking the browser first: no type, or text/plain.
    let untyped = t.post("/api/v1/auth/session").untyped(body.clone()).send().await;
    assert_eq!((untyped.status, untyped.error_code()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"));
    let plain = t.post("/api/v1/auth/session").raw("text/plain", body.clone()).send().await;
    assert_eq!(plain.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Sent by a page on another port of this host, or another site.
    let host = t.addr.to_string();
    for (name, value) in [("origin", "http://127.0.0.1:1"), ("sec-fetch-site", "same-site"), ("sec-fetch-site", "cross-site")] {
        let r = t.post("/api/v1/auth/session").header("host", &host).header(name, value).raw("application/json", body.clone()).send().await;
        assert_eq!((r.status, r.error_code()), (StatusCode::FORBIDDEN, "forbidden"), "{name}: {value}");
        assert!(r.header("set-cookie").is_none());
    }
    // Our own page, and a client that is not a browser.
    let own = format!("http://{host}");
    let r = t
        .post("/api/v1/auth/session")
        .header("origin", &own)
        .header("sec-fetch-site", "same-origin")
        .raw("application/json", body.clone())
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(t.post("/api/v1/auth/session").raw("application/json", body).send().await.status, StatusCode::OK);
    // Nor can another site sign a browser out.
    let (cookie, _) = sign_in(&t, &ann.api_key).await;
    let r = t.delete("/api/v1/auth/session").header("cookie", &cookie).header("sec-fetch-site", "cross-site").send().await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(t.get("/api/v1/auth/session").header("cookie", &cookie).send().await.status, StatusCode::OK);
}

fn query_param(url: &str, name: &str) -> String {
    url::Url::parse(url).unwrap().query_pairs().find(|(k, _)| k == name).unwrap().1.to_string()
}

#[tokio::test]
async fn a_connection_is_finished_only_by_the_account_that_started_it() {
    let youtube = FakePlatform::start(Platform::Youtube, 3).await;
    let apps = vec![(youtube.platform, youtube.settings())];
    let t = TestApp::spawn_tuned(Backend::Sqlite, Default::default(), Default::default(), move |c| c.accounts.apps = apps).await;
    let (mallory, victim) = (t.user("mallory@example.com", Plan::Pro, false).await, t.user("vic@example.com", Plan::Pro, false).await);
    // Mallory starts a connection and gets the victim to consent through her link.
    let started = t.post("/api/v1/accounts/connect").api_key(&mallory.api_key).json(&json!({"platform": "youtube"})).send().await;
    let back = youtube.consent(started.body["authorize_url"].as_str().unwrap());
    let (state, code) = (query_param(&back, "state"), query_param(&back, "code"));
    // The victim's browser lands on the callback without a session (the cookie is not sent
    // on another site's redirect) and is sent on to the dashboard…
    let landed = t.get(&format!("/api/v1/accounts/callback?state={state}&code={code}")).header("accept", "text/html").send().await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER);
    assert!(landed.header("location").unwrap().starts_with("/accounts?state="));
    // …which finishes it with the victim's own session: refused.
    let (cookie, csrf) = sign_in(&t, &victim.api_key).await;
    let finish = json!({"state": state, "code": code});
    let r = t.post("/api/v1/accounts/callback").header("cookie", &cookie).header("x-csrf-token", &csrf).json(&finish).send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::FORBIDDEN, "forbidden"), "{:?}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("another GoViralNow account"));
    // Nothing was connected to anyone, and the state is spent.
    for who in [&mallory, &victim] {
        assert!(t.get("/api/v1/accounts").api_key(&who.api_key).send().await.body["items"].as_array().unwrap().is_empty());
    }
    let replay = t.post("/api/v1/accounts/callback").api_key(&mallory.api_key).json(&finish).send().await;
    assert_eq!(replay.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(youtube.access_tokens().is_empty(), "the code was never exchanged");
}

#[tokio::test]
async fn one_tenant_spends_only_their_share_of_a_platforms_budget() {
    let youtube = FakePlatform::start(Platform::Youtube, 3).await;
    let mut settings = youtube.settings();
    settings.budget.calls = 100;
    settings.budget.per_user = 4;
    let apps = vec![(youtube.platform, settings)];
    let t = TestApp::spawn_tuned(Backend::Sqlite, Default::default(), Default::default(), move |c| c.accounts.apps = apps).await;
    let (ann, bo) = (t.user("ann@example.com", Plan::Pro, false).await, t.user("bo@example.com", Plan::Pro, false).await);
    let connect = |key: String| {
        let (t, youtube) = (&t, &youtube);
        async move {
            let started = t.post("/api/v1/accounts/connect").api_key(&key).json(&json!({"platform": "youtube"})).send().await;
            let back = youtube.consent(started.body["authorize_url"].as_str().unwrap());
            let url = url::Url::parse(&back).unwrap();
            let r = t.get(&format!("{}?{}", url.path(), url.query().unwrap())).api_key(&key).send().await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            r.body["account_id"].as_str().unwrap().to_string()
        }
    };
    let follow = |key: String, user: uuid::Uuid, account: String, post: String| {
        let t = &t;
        async move {
            let job = queued_job(t, &key, user).await;
            let result = domain::model::JobResult { score: 60.0, confidence: 0.7, insights: vec![], metrics: json!({}) };
            t.app.store.complete_job(job.parse().unwrap(), &result, None, domain::model::now()).await.unwrap();
            t.post(&format!("/api/v1/analyze/{job}/posts"))
                .api_key(&key)
                .json(&json!({"account_id": account, "post_id": post}))
                .send()
                .await
        }
    };
    let posts: Vec<String> = youtube.posts().iter().map(|p| p.id.clone()).collect();
    let ann_account = connect(ann.api_key.clone()).await; // 2 calls: the token, the profile
    let first = follow(ann.api_key.clone(), ann.user.id, ann_account.clone(), posts[0].clone()).await; // the post, the followers
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let spent = follow(ann.api_key.clone(), ann.user.id, ann_account, posts[1].clone()).await;
    assert_eq!((spent.status, spent.error_code()), (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded"), "{:?}", spent.body);
    assert_eq!(spent.body["error"]["details"]["policy"].as_str(), Some("platform-share"));
    assert!(spent.header("retry-after").is_some());
    // Bo's share is untouched.
    let bo_account = connect(bo.api_key.clone()).await;
    let theirs = follow(bo.api_key.clone(), bo.user.id, bo_account, posts[0].clone()).await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{:?}", theirs.body);
}

#[tokio::test]
async fn a_followed_posts_address_is_checked_on_every_path() {
    let youtube = FakePlatform::start(Platform::Youtube, 3).await;
    let apps = vec![(youtube.platform, youtube.settings())];
    let t = TestApp::spawn_tuned(Backend::Sqlite, Default::default(), Default::default(), move |c| c.accounts.apps = apps).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let started = t.post("/api/v1/accounts/connect").api_key(&ann.api_key).json(&json!({"platform": "youtube"})).send().await;
    let back = url::Url::parse(&youtube.consent(started.body["authorize_url"].as_str().unwrap())).unwrap();
    let account =
        t.get(&format!("{}?{}", back.path(), back.query().unwrap())).api_key(&ann.api_key).send().await.body["account_id"].clone();
    let job = queued_job(&t, &ann.api_key, ann.user.id).await;
    let result = domain::model::JobResult { score: 60.0, confidence: 0.7, insights: vec![], metrics: json!({}) };
    t.app.store.complete_job(job.parse().unwrap(), &result, None, domain::model::now()).await.unwrap();
    let post = youtube.posts()[0].id.clone();
    for bad in ["javascript:alert(document.cookie)", "https://login-youtube.example/watch?v=1", "http://www.youtube.com/watch?v=1"] {
        let body = json!({"account_id": account, "post_id": post, "post_url": bad});
        let r = t.post(&format!("/api/v1/analyze/{job}/posts")).api_key(&ann.api_key).json(&body).send().await;
        assert_eq!((r.status, r.error_fields()), (StatusCode::UNPROCESSABLE_ENTITY, vec!["post_url".to_string()]), "{bad}");
    }
    let outcomes = t.get(&format!("/api/v1/analyze/{job}/outcome")).api_key(&ann.api_key).send().await;
    assert!(outcomes.body["observations"].as_array().unwrap().is_empty(), "nothing was stored");
}

#[tokio::test]
async fn files_are_served_so_that_nothing_in_them_runs() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let html = b"<!DOCTYPE html><html><body><script>fetch('/api/v1/keys',{method:'POST'})</script></body></html>";
    let created =
        t.post("/api/v1/uploads").api_key(&ann.api_key).json(&json!({"media_type": "text/plain", "size_bytes": html.len()})).send().await;
    let put_url = url::Url::parse(created.body["upload"]["url"].as_str().unwrap()).unwrap();
    let put = t
        .call(http::Method::PUT, &format!("{}?{}", put_url.path(), put_url.query().unwrap()))
        .raw("text/plain", html.to_vec())
        .send()
        .await;
    assert_eq!(put.status, StatusCode::OK);
    let id = created.body["upload_id"].as_str().unwrap();
    let status = t.get(&format!("/api/v1/uploads/{id}")).api_key(&ann.api_key).send().await;
    let download = url::Url::parse(status.body["download"]["url"].as_str().unwrap()).unwrap();
    let got = t.get(&format!("{}?{}", download.path(), download.query().unwrap())).send().await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("content-type"), Some("text/plain"));
    assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(got.header("content-security-policy"), Some("default-src 'none'; sandbox"));
    assert_eq!(got.header("content-disposition"), Some("attachment"));
    // A still the dashboard shows is an inline JPEG, under the same policy.
    let served = domain::uploads::served_as("thumbnails/0190a0a0-0000-7000-8000-000000000000/00.jpg");
    assert_eq!((served.disposition, served.content_type), ("inline", Some("image/jpeg")));
}

#[tokio::test]
async fn a_webhooks_secret_path_is_never_written_down() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let pipeline = t.start_pipeline(&Stages::new());
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    // A Slack-style target whose path is its secret, on a port where nothing listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let target = format!("http://127.0.0.1:{port}/services/T0001/B0001/XSECRETPATHX");
    let body = json!({"content_type": "text", "caption": "Hello", "user_id": ann.user.id, "notify_webhook": target});
    let job = t.post("/api/v1/analyze").api_key(&ann.api_key).json(&body).send().await.body["job_id"].as_str().unwrap().to_string();
    t.finished_job(&ann.api_key, &job).await;
    let mut delivery = None;
    for _ in 0..250 {
        let d = t.app.store.webhook_delivery(job.parse().unwrap(), &target, domain::model::WebhookEvent::JobCompleted).await.unwrap();
        if d.attempts >= 2 {
            delivery = Some(d);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivery = delivery.expect("the delivery was tried");
    let error = delivery.last_error.unwrap_or_default();
    assert!(!error.is_empty() && !error.contains("XSECRETPATHX"), "{error}");
    let job = t.get(&format!("/api/v1/analyze/{job}?expand=metrics")).api_key(&ann.api_key).send().await;
    assert!(!job.raw.windows(12).any(|w| w == b"XSECRETPATHX"));
    pipeline.kill().await;
}
