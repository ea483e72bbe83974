//! A job's live stream over HTTP (Server-Sent Events), on SQLite and PostgreSQL: every step in
//! order with increasing ids, resumed after `Last-Event-ID`, a heartbeat while nothing
//! happens, closed at the end; a finished job answers its history and closes; another
//! user's job, no credentials, a bad `Last-Event-ID` and stream tokens that are expired, for
//! another job or forged are refused. And the AWS function itself, served by `cargo lambda
//! watch` behind a function URL, streams the same events as they happen.

use std::time::Duration;

use domain::model::Plan;
use goviral_testkit::pipeline::Stages;
use goviral_testkit::{Backend, TestApp};
use http::StatusCode;
use serde_json::{Value, json};

contract!(
    a_job_streams_every_step_and_resumes_after_the_last_event_id,
    a_quiet_stream_sends_heartbeats_and_stays_open,
    streams_are_only_for_the_jobs_owner,
    browsers_open_the_stream_with_a_short_lived_job_token,
);

/// An open stream: the response, and what has been read of it.
struct Stream {
    response: reqwest::Response,
    text: String,
}

impl Stream {
    async fn open(t: &TestApp, path: &str, headers: &[(&str, &str)]) -> Stream {
        let mut request = reqwest::Client::new().get(format!("http://{}{path}", t.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the stream answers");
        Stream { response, text: String::new() }
    }

    async fn open_url(url: &str) -> Stream {
        Stream { response: reqwest::Client::new().get(url).send().await.expect("the stream answers"), text: String::new() }
    }

    /// Reads until the server closes the stream (failing after `limit`).
    async fn until_closed(mut self, limit: Duration) -> String {
        let read = async {
            while let Some(chunk) = self.response.chunk().await.expect("the stream reads") {
                self.text.push_str(&String::from_utf8_lossy(&chunk));
            }
            self.text
        };
        tokio::time::timeout(limit, read).await.expect("the stream closes")
    }

    /// Reads for `wait`, leaving the stream open; false if it closed.
    async fn read_for(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return true,
                Ok(Ok(Some(chunk))) => self.text.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(_) => return false,
            }
        }
    }
}

/// The events of an SSE body: (id, event, data).
fn events(text: &str) -> Vec<(u32, String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let field = |name: &str| block.lines().find_map(|l| l.strip_prefix(name).map(str::trim).map(String::from));
            let id = field("id:")?.parse().expect("numeric ids");
            Some((id, field("event:")?, serde_json::from_str(&field("data:")?).expect("JSON data")))
        })
        .collect()
}

fn kinds(events: &[(u32, String, Value)]) -> Vec<&str> {
    events.iter().map(|e| e.1.as_str()).collect()
}

async fn submit(t: &TestApp, api_key: &str, user_id: uuid::Uuid) -> String {
    let body = json!({"content_type": "text", "caption": "3 habits that changed my mornings. Which one will you try?", "user_id": user_id});
    let r = t.post("/api/v1/analyze").api_key(api_key).json(&body).send().await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["job_id"].as_str().unwrap().to_string()
}

async fn a_job_streams_every_step_and_resumes_after_the_last_event_id(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let stages = Stages::new();
    let _pipeline = t.start_pipeline(&stages);
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let job = submit(&t, &ann.api_key, ann.user.id).await;
    let path = format!("/api/v1/analyze/{job}/events");
    let live = Stream::open(&t, &path, &[("x-api-key", &ann.api_key)]).await;
    assert_eq!(live.response.status(), StatusCode::OK);
    assert_eq!(live.response.headers()["content-type"], "text/event-stream");
    let all = events(&live.until_closed(Duration::from_secs(20)).await);
    assert_eq!(kinds(&all), ["queued", "moderation", "extraction", "inference", "complete"], "{all:?}");
    assert_eq!(all.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    let (_, _, done) = &all[4];
    assert_eq!((done["job_id"].as_str(), done["seq"].as_u64(), done["kind"].as_str()), (Some(job.as_str()), Some(5), Some("complete")));
    let score = done["data"]["score"].as_f64().expect("the result summary has the score");
    assert!((0.0..=100.0).contains(&score) && done["data"]["confidence"].is_number(), "{done}");

    // Resumed after event 2: only what followed. After the last: nothing, and closed at once.
    let resumed = Stream::open(&t, &path, &[("x-api-key", &ann.api_key), ("last-event-id", "2")]).await;
    let rest = events(&resumed.until_closed(Duration::from_secs(5)).await);
    assert_eq!(kinds(&rest), ["extraction", "inference", "complete"]);
    let after_end = Stream::open(&t, &path, &[("x-api-key", &ann.api_key), ("last-event-id", "5")]).await;
    assert!(events(&after_end.until_closed(Duration::from_secs(5)).await).is_empty());
}

async fn a_quiet_stream_sends_heartbeats_and_stays_open(backend: Backend) {
    // No runner: the job stays queued.
    let t = TestApp::spawn(backend).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let job = submit(&t, &ann.api_key, ann.user.id).await;
    let mut stream = Stream::open(&t, &format!("/api/v1/analyze/{job}/events"), &[("x-api-key", &ann.api_key)]).await;
    assert!(stream.read_for(Duration::from_millis(900)).await, "the stream stays open while the job waits");
    assert_eq!(kinds(&events(&stream.text)), ["queued"]);
    // Heartbeats every 200 ms in the test configuration (15 s by default).
    assert!(stream.text.matches(": heartbeat\n\n").count() >= 2, "{:?}", stream.text);
}

async fn streams_are_only_for_the_jobs_owner(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let bo = t.user("bo@example.com", Plan::Pro, false).await;
    let job = submit(&t, &ann.api_key, ann.user.id).await;
    let path = format!("/api/v1/analyze/{job}/events");
    let r = t.get(&path).api_key(&bo.api_key).send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::NOT_FOUND, "not_found"));
    assert!(r.headers.contains_key("x-request-id"));
    let r = t.get(&path).send().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = t.get(&path).api_key(&ann.api_key).header("last-event-id", "the-third").send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    let r = t.get(&format!("/api/v1/analyze/{}/events", uuid::Uuid::now_v7())).api_key(&ann.api_key).send().await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t.get("/api/v1/analyze/not-a-job/events").api_key(&ann.api_key).send().await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // An archived job has no stream either.
    assert_eq!(t.delete(&format!("/api/v1/analyze/{job}")).api_key(&ann.api_key).send().await.status, StatusCode::NO_CONTENT);
    assert_eq!(t.get(&path).api_key(&ann.api_key).send().await.status, StatusCode::NOT_FOUND);
}

async fn browsers_open_the_stream_with_a_short_lived_job_token(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let bo = t.user("bo@example.com", Plan::Pro, false).await;
    let job = submit(&t, &ann.api_key, ann.user.id).await;
    let other = submit(&t, &ann.api_key, ann.user.id).await;
    let issued = t.post(&format!("/api/v1/analyze/{job}/stream-token")).api_key(&ann.api_key).send().await;
    assert_eq!(issued.status, StatusCode::CREATED, "{:?}", issued.body);
    let url = issued.body["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("/api/v1/analyze/{job}/events?stream_token=")), "{url}");
    assert!(!url.contains(&ann.api_key), "the API key never goes in a URL");
    let expires =
        time::OffsetDateTime::parse(issued.body["expires_at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
    let ttl = (expires - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((290..=300).contains(&ttl), "{ttl}");

    // No headers at all, as an EventSource sends it.
    let mut stream = Stream::open(&t, &url, &[]).await;
    assert_eq!(stream.response.status(), StatusCode::OK);
    assert!(stream.read_for(Duration::from_millis(300)).await);
    assert_eq!(kinds(&events(&stream.text)), ["queued"]);

    let token = issued.body["stream_token"].as_str().unwrap();
    let r = t.get(&format!("/api/v1/analyze/{other}/events?stream_token={token}")).send().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a token opens its own job's stream only");
    let auth = &t.config.settings.auth;
    let subject = domain::auth::StreamSubject { user_id: ann.user.id, key_id: None, session_id: None };
    let stale = auth.issue_stream_token(&subject, job.parse().unwrap(), time::OffsetDateTime::now_utc().unix_timestamp() - 400).unwrap();
    let r = t.get(&format!("/api/v1/analyze/{job}/events?stream_token={stale}")).send().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("expired"), "{:?}", r.body);
    let r = t.get(&format!("/api/v1/analyze/{job}/events?stream_token=forged.token.value")).send().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // An access token is not a stream token, and a stream token is not an access token.
    let r = t.get(&format!("/api/v1/analyze/{job}")).header("authorization", &format!("Bearer {token}")).send().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Only the job's owner gets a token for it.
    let r = t.post(&format!("/api/v1/analyze/{job}/stream-token")).api_key(&bo.api_key).send().await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// The response-streaming Lambda (api-analyze-events) under `cargo lambda watch`, reached
/// through its function URL: the first event and heartbeats arrive while the job waits (so
/// the response is streamed, not buffered), and the end arrives when the job fails, which
/// closes the stream. A stream token opens it too.
#[tokio::test]
async fn the_streaming_function_streams_through_its_function_url() {
    let t = TestApp::spawn(Backend::Postgres).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let job = submit(&t, &ann.api_key, ann.user.id).await;
    let env: Vec<(String, String)> = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("GOVIRAL_DATABASE_URL", t.db.url.as_str()),
        ("GOVIRAL_JWT_SECRET", "test-secret-test-secret-test-secret!"),
        ("GOVIRAL_STREAM_HEARTBEAT_MS", "300"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let watch = crate::state_machine::LambdaWatch::start(&env).await;
    let url = format!("{}/lambda-url/api-analyze-events/api/v1/analyze/{job}/events", watch.base_url);
    // The first request also starts the function (cargo run of the prebuilt binary).
    let mut response = None;
    for _ in 0..60 {
        match reqwest::Client::new().get(&url).header("x-api-key", &ann.api_key).send().await {
            Ok(r) if r.status() == StatusCode::OK => {
                response = Some(r);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    let mut stream = Stream { response: response.expect("the function answers through its URL"), text: String::new() };
    assert!(stream.read_for(Duration::from_millis(1_500)).await, "the stream stays open while the job waits");
    assert_eq!(kinds(&events(&stream.text)), ["queued"], "{}", stream.text);
    assert!(stream.text.matches(": heartbeat\n\n").count() >= 2, "streamed as it happens: {:?}", stream.text);
    let errors = json!([{"stage": "inference", "error": "States.Timeout", "reason": "test"}]);
    t.app.store.fail_job(job.parse().unwrap(), &errors, None, domain::model::now()).await.unwrap();
    let all = events(&stream.until_closed(Duration::from_secs(10)).await);
    assert_eq!(kinds(&all), ["queued", "failed"], "{all:?}");

    let issued = t.post(&format!("/api/v1/analyze/{job}/stream-token")).api_key(&ann.api_key).send().await;
    let token = issued.body["stream_token"].as_str().unwrap();
    let by_token = Stream::open_url(&format!("{url}?stream_token={token}")).await;
    assert_eq!(kinds(&events(&by_token.until_closed(Duration::from_secs(10)).await)), ["queued", "failed"]);
}
