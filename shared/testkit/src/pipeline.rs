//! Pipeline test helpers: a webhook receiver on loopback that records what it gets and
//! answers as scripted, stage dependencies that fail on cue, and the runner started, stopped
//! or killed mid-stage like a real process.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Bytes;
use domain::Error;
use domain::ports::{BlobStore, ModerationVerdict, Moderator, ScoreOutput, ScoreRequest, Scorer};
use http::{HeaderMap, StatusCode};
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct Hit {
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// An HTTP receiver on 127.0.0.1:0 answering each POST with the next scripted status
/// (then 204), and keeping every request.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    default_status: Arc<Mutex<u16>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let default_status = Arc::new(Mutex::new(204u16));
        let (h, s, d) = (hits.clone(), script.clone(), default_status.clone());
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let (h, s, d) = (h.clone(), s.clone(), d.clone());
            async move {
                h.lock().unwrap().push(Hit { headers, body });
                let status = s.lock().unwrap().pop_front().unwrap_or(*d.lock().unwrap());
                StatusCode::from_u16(status).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, hits, script, default_status }
    }

    /// The next `n` requests get `status`.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.script.lock().unwrap().extend(std::iter::repeat_n(status, n));
    }

    /// Every request from now on gets `status`.
    pub fn always(&self, status: u16) {
        *self.default_status.lock().unwrap() = status;
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

/// Wraps a real stage dependency: fails with the queued errors first, can hang forever (a
/// stage that never returns, until its process dies), then behaves as the real one.
pub struct Scripted<T> {
    pub inner: T,
    failures: Mutex<VecDeque<Error>>,
    hang: std::sync::atomic::AtomicBool,
    pub calls: AtomicU32,
}

impl<T> Scripted<T> {
    pub fn new(inner: T) -> Arc<Self> {
        Arc::new(Scripted { inner, failures: Mutex::new(VecDeque::new()), hang: false.into(), calls: AtomicU32::new(0) })
    }

    pub fn fail_next(&self, errors: impl IntoIterator<Item = Error>) {
        self.failures.lock().unwrap().extend(errors);
    }

    pub fn hang(&self, on: bool) {
        self.hang.store(on, Ordering::SeqCst);
    }

    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    async fn before(&self) -> Result<(), Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        match self.failures.lock().unwrap().pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Moderator for Scripted<Arc<dyn Moderator>> {
    async fn moderate(&self, text: &str) -> domain::Result<ModerationVerdict> {
        self.before().await?;
        self.inner.moderate(text).await
    }

    fn sees_pictures(&self) -> bool {
        self.inner.sees_pictures()
    }

    async fn moderate_video(&self, text: &str, stills: &[domain::ports::Still]) -> domain::Result<ModerationVerdict> {
        self.before().await?;
        self.inner.moderate_video(text, stills).await
    }
}

#[async_trait]
impl<T: Scorer> Scorer for Scripted<T> {
    fn features(&self, text: &str, platform: Option<domain::model::Platform>) -> serde_json::Value {
        self.inner.features(text, platform)
    }

    async fn score(&self, request: &ScoreRequest) -> domain::Result<ScoreOutput> {
        self.before().await?;
        self.inner.score(request).await
    }
}

#[async_trait]
impl<T: BlobStore> BlobStore for Scripted<T> {
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> domain::Result<()> {
        self.before().await?;
        self.inner.put(key, bytes, content_type).await
    }

    async fn get(&self, key: &str) -> domain::Result<Option<Vec<u8>>> {
        self.inner.get(key).await
    }

    async fn copy(&self, from: &str, to: &str) -> domain::Result<bool> {
        self.inner.copy(from, to).await
    }

    async fn delete(&self, key: &str) -> domain::Result<()> {
        self.inner.delete(key).await
    }

    async fn digest(&self, key: &str) -> domain::Result<Option<domain::ports::BlobDigest>> {
        self.inner.digest(key).await
    }

    async fn exists(&self, key: &str) -> domain::Result<bool> {
        self.inner.exists(key).await
    }

    async fn fetch_to(&self, key: &str, dest: &std::path::Path) -> domain::Result<bool> {
        self.inner.fetch_to(key, dest).await
    }

    async fn put_stream(
        &self,
        key: &str,
        body: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
        bytes: u64,
        content_type: &str,
    ) -> domain::Result<domain::ports::BlobDigest> {
        self.before().await?;
        self.inner.put_stream(key, body, bytes, content_type).await
    }
}

/// The on-device lexicon, or OpenAI's moderation (`with_openai`).
pub type ScriptedModerator = Scripted<Arc<dyn Moderator>>;
pub type ScriptedScorer = Scripted<goviral_llm::EnrichedScorer>;
pub type ScriptedBlobs = Scripted<goviral_local::blobs::FileBlobStore>;

/// The stage dependencies of a pipeline test, each scriptable.
pub struct Stages {
    pub moderator: Arc<ScriptedModerator>,
    pub scorer: Arc<ScriptedScorer>,
    pub blobs: Arc<ScriptedBlobs>,
    _blob_dir: tempfile::TempDir,
}

impl Stages {
    pub fn new() -> Stages {
        let dir = tempfile::tempdir().unwrap();
        Stages {
            moderator: Scripted::new(Arc::new(goviral_adapters::moderation::LexiconModerator)),
            scorer: Scripted::new(goviral_llm::EnrichedScorer::new(None)),
            blobs: Scripted::new(goviral_local::blobs::FileBlobStore::new(dir.path())),
            _blob_dir: dir,
        }
    }
}

impl Stages {
    /// The stages scoring with the registry's serving model (read from the app's store and
    /// blobs, re-read every 50 ms: a Lambda's TTL, shortened).
    pub fn serving_registry(app: &crate::TestApp) -> Stages {
        let serving = goviral_scoring::serving::Serving::from_registry(
            Arc::new(app.db.store.clone()),
            app.blobs.clone(),
            std::time::Duration::from_millis(50),
        );
        let on_device = goviral_scoring::ModelScorer::serving(Arc::new(serving));
        Stages { scorer: Scripted::new(goviral_llm::EnrichedScorer::on(on_device, None)), ..Stages::new() }
    }

    /// The stages reading the blobs the app's signed-URL route wrote (uploads).
    pub fn sharing_blobs(app: &crate::TestApp) -> Stages {
        Stages { blobs: app.blobs.clone(), ..Stages::new() }
    }

    /// The stages with the OpenAI path on (rewrites and moderation), talking to
    /// `settings.base_url`.
    pub fn with_openai(settings: goviral_llm::OpenAiSettings) -> Stages {
        Stages {
            scorer: Scripted::new(goviral_llm::EnrichedScorer::new(Some(goviral_llm::OpenAiRewriter::new(settings.clone())))),
            moderator: Scripted::new(Arc::new(goviral_llm::OpenAiModerator::new(settings))),
            ..Stages::new()
        }
    }
}

impl Stages {
    /// A stage context on `store` and these stages, without media tools (a video cannot be
    /// measured), sending webhooks with `webhooks` under `policy`.
    pub fn context(
        &self,
        store: Arc<dyn domain::ports::Store>,
        webhooks: Arc<dyn domain::ports::WebhookSender>,
        policy: domain::pipeline::WebhookPolicy,
    ) -> domain::pipeline::StageContext {
        domain::pipeline::StageContext {
            store,
            blobs: self.blobs.clone(),
            moderator: self.moderator.clone(),
            scorer: self.scorer.clone(),
            media: Arc::new(goviral_media::NoMediaTools("not used here".into())),
            fetcher: Arc::new(goviral_adapters::fetch::HttpMediaFetcher::new(std::time::Duration::from_secs(5), 1 << 20, false)),
            webhooks,
            webhook_policy: policy,
        }
    }
}

impl Default for Stages {
    fn default() -> Self {
        Self::new()
    }
}

/// A running pipeline runner; `stop` lets it finish its current state, `kill` does not.
pub struct RunningPipeline {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningPipeline {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Like `kill -9`: the task is dropped wherever it is; nothing is saved on the way out.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

impl crate::TestApp {
    /// Starts a runner over the app's store with these stage dependencies, built by the
    /// composition root from the app's configuration (webhooks may reach loopback, retry
    /// delays 1000× shorter).
    pub fn start_pipeline(&self, stages: &Stages) -> RunningPipeline {
        let swaps = goviral_app::Swaps {
            wake: Some(self.wake.clone()),
            blobs: Some(stages.blobs.clone()),
            moderator: Some(stages.moderator.clone()),
            scorer: Some(stages.scorer.clone()),
            ..goviral_app::Swaps::default()
        };
        let store = Arc::new(self.db.store.clone());
        let runner = goviral_app::Composition::new(self.config.clone()).swap(swaps).runner_on(store).expect("compose the runner");
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(runner.run(stopped));
        RunningPipeline { stop, task }
    }

    /// Polls the job until it is complete or failed (10 s at most) and returns its JSON.
    pub async fn finished_job(&self, api_key: &str, job_id: &str) -> serde_json::Value {
        for _ in 0..500 {
            let r = self.get(&format!("/api/v1/analyze/{job_id}?include_insights=true&expand=metrics")).api_key(api_key).send().await;
            if matches!(r.body["status"].as_str(), Some("complete" | "failed")) {
                return r.body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("job {job_id} did not finish in 10 s");
    }
}
