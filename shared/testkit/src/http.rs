//! The real app on a real socket (port 0), and a small client that checks every response
//! carries an `x-request-id` and, for errors, the standard error body.

use std::net::SocketAddr;
use std::sync::Arc;

use domain::service::{App, NewUserCredentials, RateLimits, Settings};
use goviral_app::{Composition, Config, Profile, Swaps};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::{Backend, TestDb};

/// The configuration every spawned app runs on: the embedded profile on the test's own
/// database, cheap Argon2 (chosen by configuration, as any deployment could), webhooks and
/// video URLs allowed to reach the tests' servers on loopback, and short pipeline retries.
pub fn test_config(database_url: &str, data_dir: &std::path::Path, rate_limits: RateLimits) -> Config {
    let vars = [
        ("GOVIRAL_DATABASE_URL", database_url.to_string()),
        ("GOVIRAL_DATA_DIR", data_dir.display().to_string()),
        ("GOVIRAL_JWT_SECRET", "test-secret-test-secret-test-secret!".to_string()),
        ("GOVIRAL_TOKEN_TTL_SECS", "600".to_string()),
        ("GOVIRAL_ARGON2_MEMORY_KIB", "64".to_string()),
        ("GOVIRAL_ARGON2_ITERATIONS", "1".to_string()),
        ("GOVIRAL_RATE_LIMIT_FREE", rate_limits.free_per_minute.to_string()),
        ("GOVIRAL_RATE_LIMIT_PRO", rate_limits.pro_per_minute.to_string()),
        ("GOVIRAL_RATE_LIMIT_ENTERPRISE", rate_limits.enterprise_per_minute.to_string()),
        ("GOVIRAL_WEBHOOK_ALLOW_LOOPBACK", "true".to_string()),
        ("GOVIRAL_WEBHOOK_TIMEOUT_MS", "2000".to_string()),
        ("GOVIRAL_PIPELINE_CONCURRENCY", "8".to_string()),
        // Videos by URL from the tests' own servers on loopback, given up on after 3 s.
        ("GOVIRAL_MEDIA_ALLOW_LOOPBACK", "true".to_string()),
        ("GOVIRAL_MEDIA_FETCH_TIMEOUT_MS", "3000".to_string()),
        // Retry delays 1000× shorter: a test waits milliseconds where production waits seconds.
        ("GOVIRAL_PIPELINE_RETRY_SCALE", "0.001".to_string()),
        // A live stream's heartbeat every 200 ms, so a test sees one quickly.
        ("GOVIRAL_STREAM_HEARTBEAT_MS", "200".to_string()),
        // The deployed dashboard the sample events' browser requests come from.
        ("GOVIRAL_DASHBOARD_ORIGINS", "https://app.goviralnow.example".to_string()),
        // The test database is migrated already.
        ("GOVIRAL_MIGRATE", "false".to_string()),
    ];
    // The speech and face models scripts/test set up, when there are.
    let whisper = std::env::var("GOVIRAL_WHISPER_DIR").ok();
    let faces = std::env::var("GOVIRAL_FACE_MODEL").ok();
    Config::from_lookup(Profile::Embedded, |name| match name {
        "GOVIRAL_WHISPER_DIR" => whisper.clone(),
        "GOVIRAL_FACE_MODEL" => faces.clone(),
        _ => vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()),
    })
    .expect("test configuration")
}

/// The domain settings of [`test_config`], for tests that build an App on adapters of their own.
pub fn test_settings(rate_limits: RateLimits) -> Settings {
    test_config("sqlite://unused", std::path::Path::new("unused"), rate_limits).settings
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    /// What the app was built from; `start_pipeline` builds its runner from it too.
    pub config: Config,
    pub db: TestDb,
    /// Wakes a pipeline runner started with `start_pipeline`.
    pub wake: Arc<tokio::sync::Notify>,
    /// The blob files the signed-URL route writes (and `Stages::sharing_blobs` reads).
    pub blobs: Arc<crate::pipeline::ScriptedBlobs>,
    blob_dir: tempfile::TempDir,
    client: Client<HttpConnector, Full<Bytes>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Bytes,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `error.code` of a standard error body.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    pub fn error_fields(&self) -> Vec<String> {
        self.body["error"]["details"]["fields"]
            .as_array()
            .map_or_else(Vec::new, |f| f.iter().map(|e| e["field"].as_str().unwrap_or_default().to_string()).collect())
    }
}

/// A request under construction.
pub struct Call<'a> {
    app: &'a TestApp,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Bytes>,
}

impl Call<'_> {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn api_key(self, key: &str) -> Self {
        self.header("x-api-key", key)
    }

    pub fn json(mut self, body: &Value) -> Self {
        self.headers.push(("content-type".into(), "application/json".into()));
        self.body = Some(Bytes::from(body.to_string()));
        self
    }

    /// A body sent with no Content-Type at all.
    pub fn untyped(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }

    pub fn raw(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.headers.push(("content-type".into(), content_type.into()));
        self.body = Some(body.into());
        self
    }

    pub async fn send(self) -> TestResponse {
        let mut request = http::Request::builder().method(self.method.clone()).uri(format!("http://{}{}", self.app.addr, self.path));
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        let request = request.body(Full::new(self.body.unwrap_or_default())).expect("request");
        let response = self.app.client.request(request).await.expect("the server answers");
        let (parts, body) = response.into_parts();
        let raw = body.collect().await.expect("body").to_bytes();
        let body: Value = if raw.is_empty() { Value::Null } else { serde_json::from_slice(&raw).unwrap_or(Value::Null) };
        let response = TestResponse { status: parts.status, headers: parts.headers, body, raw };
        // Every response, success or error, carries a request id.
        assert!(response.header("x-request-id").is_some_and(|v| !v.is_empty()), "no x-request-id on {} {}", self.method, self.path);
        if response.status.is_client_error() || response.status.is_server_error() {
            let e = &response.body["error"];
            assert!(
                e["code"].is_string() && e["message"].is_string(),
                "{} {} → {}: not the standard error body: {:?}",
                self.method,
                self.path,
                response.status,
                String::from_utf8_lossy(&response.raw)
            );
        }
        response
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, RateLimits::default()).await
    }

    pub async fn spawn_with(backend: Backend, rate_limits: RateLimits) -> TestApp {
        Self::spawn_configured(backend, rate_limits, goviral_api::server::ServerLimits::default()).await
    }

    /// On the real server with these limits (timeouts, connection cap), built by the one
    /// composition root with the test's database and scriptable blobs swapped in.
    pub async fn spawn_configured(backend: Backend, rate_limits: RateLimits, limits: goviral_api::server::ServerLimits) -> TestApp {
        Self::spawn_tuned(backend, rate_limits, limits, |_| {}).await
    }

    /// With the configuration adjusted by `tune` first (e.g. platform apps on loopback fakes).
    pub async fn spawn_tuned(
        backend: Backend,
        rate_limits: RateLimits,
        limits: goviral_api::server::ServerLimits,
        tune: impl FnOnce(&mut Config),
    ) -> TestApp {
        let db = TestDb::new(backend).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("addr");
        let blob_dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(&db.url, blob_dir.path(), rate_limits);
        config.public_url = Some(format!("http://{addr}"));
        config.server = limits.clone();
        tune(&mut config);
        // No runner unless a test starts one: jobs stay queued, so API tests see what they submitted.
        let wake = Arc::new(tokio::sync::Notify::new());
        let blobs = crate::pipeline::Scripted::new(goviral_local::blobs::FileBlobStore::new(blob_dir.path().join("blobs")));
        let swaps =
            Swaps { store: Some(Arc::new(db.store.clone())), wake: Some(wake.clone()), blobs: Some(blobs.clone()), ..Swaps::default() };
        let (app, router) = Composition::new(config.clone()).swap(swaps).local_router().await.expect("compose the app");
        let server = tokio::spawn(async move {
            goviral_api::server::serve(listener, router, limits, std::future::pending()).await.expect("server");
        });
        let client = Client::builder(TokioExecutor::new()).build_http();
        TestApp { addr, app, config, db, wake, blobs, blob_dir, client, server }
    }

    /// Where the blob files live.
    pub fn blob_dir(&self) -> &std::path::Path {
        self.blob_dir.path()
    }

    pub fn call(&self, method: Method, path: &str) -> Call<'_> {
        Call { app: self, method, path: path.into(), headers: Vec::new(), body: None }
    }

    pub fn get(&self, path: &str) -> Call<'_> {
        self.call(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Call<'_> {
        self.call(Method::POST, path)
    }

    pub fn delete(&self, path: &str) -> Call<'_> {
        self.call(Method::DELETE, path)
    }

    /// A user made the way operators make them (the CLI's use case).
    pub async fn user(&self, email: &str, plan: domain::model::Plan, admin: bool) -> NewUserCredentials {
        let mut roles = vec![domain::model::Role::User];
        if admin {
            roles.push(domain::model::Role::Admin);
        }
        self.app.create_user(email, plan, roles, "test").await.expect("create user")
    }

    /// A bearer token for the user, through the real token endpoint.
    pub async fn token(&self, creds: &NewUserCredentials) -> String {
        let r = self
            .post("/api/v1/auth/token")
            .json(&serde_json::json!({"client_id": creds.user.id, "client_secret": creds.client_secret}))
            .send()
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.body["access_token"].as_str().expect("token").to_string()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}
