//! The one composition root. A `Composition` holds the configuration and builds each adapter
//! the first time something asks for it, so a function builds only what it uses: the OpenAPI
//! function builds nothing, a stage builds no signing key, the API functions no runner.
//! Every `main` (goviral, each Lambda) and the testkit go through it; tests swap single
//! adapters with [`Swaps`], never by `cfg(test)`.
//!
//! Which adapter serves a port is decided here, from the configuration alone:
//!
//! | port | embedded default | AWS profile (with the resource configured) |
//! | --- | --- | --- |
//! | store | SQLite file (or any `GOVIRAL_DATABASE_URL`) | PostgreSQL via RDS Proxy |
//! | counters | the SQL store | DynamoDB (`GOVIRAL_COUNTERS_TABLE` + `_IDEMPOTENCY_TABLE`) |
//! | usage totals (admission) | the SQL store, in the admission's transaction | DynamoDB (`GOVIRAL_USAGE_TABLE`); the ledger stays in PostgreSQL |
//! | blobs, signed URLs | files under the data dir, HMAC-signed `/blobs` URLs | S3 (`GOVIRAL_BLOB_BUCKET`) |
//! | pipeline | the in-process runner over the same ASL | Step Functions (`GOVIRAL_STATE_MACHINE_ARN`) |
//! | moderation, scoring, webhooks | on-device lexicon, on-device model (+ OpenAI when keyed), guarded HTTP sender | the same |
//! | media analysis, video downloads | ffmpeg where installed (else "unavailable"), guarded HTTP fetcher | the same |

use std::sync::Arc;

use domain::pipeline::{StageContext, WebhookPolicy};
use domain::ports::{BlobStore, Moderator, Scorer, WebhookSender};
use domain::ports::{Counters, Pipeline, Store, UrlSigner};
use domain::service::App;
use goviral_adapters::asl::StateMachine;
use goviral_local::runner::{LocalPipeline, Runner};
use goviral_local::signed_urls::LocalUrlSigner;
use goviral_sql::{PoolSettings, SqlStore};
use tokio::sync::{Notify, OnceCell};

use crate::config::{Config, Profile};

pub type InitError = Box<dyn std::error::Error + Send + Sync>;

/// What an App is built to do beyond authenticating and reading.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppUses {
    /// Takes submissions (hands jobs to the pipeline).
    pub submissions: bool,
    /// Issues upload and download URLs (on AWS only the uploads function may).
    pub signed_urls: bool,
    /// Ranks variants (the on-device model).
    pub comparisons: bool,
    /// Connects platform accounts and reads their posts (platform APIs, the token cipher).
    pub platforms: bool,
}

impl AppUses {
    pub const ALL: AppUses = AppUses { submissions: true, signed_urls: true, comparisons: true, platforms: true };
}

/// A model file or directory loaded once per process and shared by every runner and stage
/// context (the speech model is 150 MB), or why it could not be loaded.
type Loaded<T> = std::sync::Mutex<Option<std::collections::HashMap<std::path::PathBuf, Result<Arc<T>, String>>>>;

fn load_once<T, E: std::fmt::Display>(
    loaded: &Loaded<T>,
    path: &std::path::Path,
    what: &str,
    load: impl FnOnce(&std::path::Path) -> Result<T, E>,
) -> Result<Arc<T>, String> {
    let mut loaded = loaded.lock().unwrap_or_else(|p| p.into_inner());
    loaded
        .get_or_insert_with(Default::default)
        .entry(path.to_path_buf())
        .or_insert_with(|| {
            load(path).map(Arc::new).map_err(|e| {
                tracing::error!(error = %e, path = %path.display(), "the {what} could not be loaded");
                e.to_string()
            })
        })
        .clone()
}

/// The on-device speech model of `dir`, or why there is none.
fn on_device_speech(dir: Option<&std::path::Path>) -> Result<Arc<goviral_asr::Transcriber>, String> {
    static LOADED: Loaded<goviral_asr::Transcriber> = std::sync::Mutex::new(None);
    let Some(dir) = dir else {
        return Err("no speech model is installed (GOVIRAL_WHISPER_DIR; scripts/whisper-model sets it up)".into());
    };
    load_once(&LOADED, dir, "speech model", goviral_asr::Transcriber::load)
}

/// The face detector of `model`; None without one (faces are then not looked for).
fn face_detector(model: Option<&std::path::Path>) -> Option<Arc<goviral_vision::FaceDetector>> {
    static LOADED: Loaded<goviral_vision::FaceDetector> = std::sync::Mutex::new(None);
    load_once(&LOADED, model?, "face model", goviral_vision::FaceDetector::load).ok()
}

/// Adapters a test puts in place of the configured ones.
#[derive(Clone, Default)]
pub struct Swaps {
    pub blobs: Option<Arc<dyn BlobStore>>,
    pub moderator: Option<Arc<dyn Moderator>>,
    pub scorer: Option<Arc<dyn Scorer>>,
    pub webhooks: Option<Arc<dyn WebhookSender>>,
    pub pipeline: Option<Arc<dyn Pipeline>>,
    /// An open store (a test's own database), shared instead of connecting again.
    pub store: Option<Arc<SqlStore>>,
    /// Shared with another composition's runner, so its pipeline wakes that runner.
    pub wake: Option<Arc<Notify>>,
}

pub struct Composition {
    pub config: Config,
    swaps: Swaps,
    #[cfg(feature = "aws")]
    aws: Option<aws_config::SdkConfig>,
    store: OnceCell<Arc<SqlStore>>,
    blobs: std::sync::OnceLock<Arc<dyn BlobStore>>,
    machine: std::sync::OnceLock<Arc<StateMachine>>,
    /// The scorer's serving model, shared by every stage context and App of this process.
    serving: std::sync::OnceLock<Arc<goviral_scoring::serving::Serving>>,
    /// Wakes the in-process runner when a job is queued (embedded default).
    wake: Arc<Notify>,
}

async fn connect(config: &Config) -> Result<SqlStore, domain::Error> {
    let pool = PoolSettings { max_connections: config.db_max_connections, acquire_timeout: config.db_acquire_timeout };
    let store = SqlStore::connect(&config.database_url, &pool).await?;
    if config.migrate {
        store.migrate().await?;
    }
    Ok(store)
}

impl Composition {
    /// From a configuration in hand (the CLI, tests).
    pub fn new(config: Config) -> Composition {
        Composition {
            config,
            swaps: Swaps::default(),
            #[cfg(feature = "aws")]
            aws: None,
            store: OnceCell::new(),
            blobs: std::sync::OnceLock::new(),
            machine: std::sync::OnceLock::new(),
            serving: std::sync::OnceLock::new(),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Reads the configuration once: the environment, and on the AWS profile the secrets
    /// named by ARN (read from Secrets Manager at init, never put in the environment).
    pub async fn load(profile: Profile) -> Result<Composition, InitError> {
        match profile {
            Profile::Embedded => Ok(Composition::new(Config::from_env(profile)?)),
            #[cfg(feature = "aws")]
            Profile::Aws => {
                let sdk = goviral_aws::load_config().await;
                let secrets = goviral_aws::secrets::resolve(&sdk, crate::config::env).await?;
                let config = Config::from_lookup(profile, |name| secrets.get(name).cloned().or_else(|| crate::config::env(name)))?;
                let mut composition = Composition::new(config);
                composition.aws = Some(sdk);
                Ok(composition)
            }
            #[cfg(not(feature = "aws"))]
            Profile::Aws => Err("this build has no AWS adapters (build with goviral-app's `aws` feature)".into()),
        }
    }

    /// Puts these adapters in place of the configured ones.
    pub fn swap(mut self, swaps: Swaps) -> Composition {
        if let Some(store) = &swaps.store {
            let _ = self.store.set(store.clone());
        }
        if let Some(wake) = &swaps.wake {
            self.wake = wake.clone();
        }
        self.swaps = swaps;
        self
    }

    #[cfg(feature = "aws")]
    fn sdk(&self) -> Result<&aws_config::SdkConfig, InitError> {
        self.aws.as_ref().ok_or_else(|| "AWS resources are configured but the AWS profile was not loaded".into())
    }

    /// The relational store's pool, built once per process (or Lambda container): at most
    /// `GOVIRAL_DB_MAX_CONNECTIONS`, giving up on a connection after
    /// `GOVIRAL_DB_ACQUIRE_TIMEOUT_MS`. Migrates when configured.
    pub async fn store(&self) -> Result<Arc<SqlStore>, InitError> {
        let store =
            self.store.get_or_try_init(|| async { Ok::<_, InitError>(Arc::new(self.metered(connect(&self.config).await?)?)) }).await?;
        Ok(store.clone())
    }

    /// The store, checking admission against DynamoDB's usage totals where configured.
    fn metered(&self, store: SqlStore) -> Result<SqlStore, InitError> {
        match (&self.config.aws.usage_table, &self.config.aws.dynamo_tables) {
            #[cfg(feature = "aws")]
            (Some(usage), Some((_, keys))) => {
                Ok(store.with_usage_totals(Arc::new(goviral_aws::DynamoUsageTotals::new(self.sdk()?, usage.clone(), keys.clone()))))
            }
            #[cfg(not(feature = "aws"))]
            (Some(_), _) => Err("DynamoDB usage totals need the AWS build".into()),
            _ => Ok(store),
        }
    }

    pub async fn counters(&self) -> Result<Arc<dyn Counters>, InitError> {
        match &self.config.aws.dynamo_tables {
            None => Ok(self.store().await?),
            #[cfg(feature = "aws")]
            Some((counters, keys)) => Ok(Arc::new(goviral_aws::DynamoCounters::new(self.sdk()?, counters.clone(), keys.clone()))),
            #[cfg(not(feature = "aws"))]
            Some(_) => Err("DynamoDB counters need the AWS build".into()),
        }
    }

    pub fn blobs(&self) -> Result<Arc<dyn BlobStore>, InitError> {
        if let Some(b) = self.blobs.get() {
            return Ok(b.clone());
        }
        let built: Arc<dyn BlobStore> = match (&self.swaps.blobs, &self.config.aws.blob_bucket) {
            (Some(b), _) => b.clone(),
            (None, None) => Arc::new(goviral_local::blobs::FileBlobStore::new(self.config.data_dir.join("blobs"))),
            #[cfg(feature = "aws")]
            (None, Some(bucket)) => Arc::new(goviral_aws::S3BlobStore::new(self.sdk()?, bucket.clone(), self.config.aws.s3_path_style)),
            #[cfg(not(feature = "aws"))]
            (None, Some(_)) => return Err("S3 blobs need the AWS build".into()),
        };
        Ok(self.blobs.get_or_init(|| built).clone())
    }

    /// Signs upload and download URLs: S3 presigning, or the local server's own signed URLs
    /// (which need `public_url`: where clients reach it).
    pub fn url_signer(&self) -> Result<Arc<dyn UrlSigner>, InitError> {
        match &self.config.aws.blob_bucket {
            None => Ok(self.local_url_signer()?),
            #[cfg(feature = "aws")]
            Some(bucket) => Ok(Arc::new(goviral_aws::S3BlobStore::new(self.sdk()?, bucket.clone(), self.config.aws.s3_path_style))),
            #[cfg(not(feature = "aws"))]
            Some(_) => Err("S3 URLs need the AWS build".into()),
        }
    }

    fn local_url_signer(&self) -> Result<Arc<LocalUrlSigner>, InitError> {
        let url = self.config.public_url.as_deref().ok_or("signed local URLs need GOVIRAL_PUBLIC_URL (goviral serve sets it)")?;
        Ok(Arc::new(LocalUrlSigner::new(url, &self.jwt_secret()?)))
    }

    fn jwt_secret(&self) -> Result<Vec<u8>, InitError> {
        let secret = &self.config.settings.auth.jwt_secret;
        if secret.is_empty() { Err("GOVIRAL_JWT_SECRET (or GOVIRAL_JWT_SECRET_ARN) is required here".into()) } else { Ok(secret.clone()) }
    }

    /// Where jobs go once queued: the state machine's executions, or the in-process runner.
    pub async fn pipeline(&self) -> Result<Arc<dyn Pipeline>, InitError> {
        if let Some(p) = &self.swaps.pipeline {
            return Ok(p.clone());
        }
        let store: Arc<dyn Store> = self.store().await?;
        match &self.config.aws.state_machine_arn {
            None => Ok(Arc::new(LocalPipeline::new(self.wake.clone(), store))),
            #[cfg(feature = "aws")]
            Some(arn) => Ok(Arc::new(self.step_functions(arn, store)?)),
            #[cfg(not(feature = "aws"))]
            Some(_) => Err("Step Functions needs the AWS build".into()),
        }
    }

    #[cfg(feature = "aws")]
    fn step_functions(&self, arn: &str, store: Arc<dyn Store>) -> Result<goviral_aws::StepFunctionsPipeline, InitError> {
        Ok(goviral_aws::StepFunctionsPipeline::new(self.sdk()?, arn.to_string(), store))
    }

    /// The Step Functions pipeline itself (the scheduled sweep needs more than the port).
    #[cfg(feature = "aws")]
    pub async fn step_functions_pipeline(&self) -> Result<Arc<goviral_aws::StepFunctionsPipeline>, InitError> {
        let arn = self.config.aws.state_machine_arn.as_deref().ok_or("GOVIRAL_STATE_MACHINE_ARN is required")?;
        Ok(Arc::new(self.step_functions(arn, self.store().await?)?))
    }

    /// Step Functions task callbacks, for the stage functions.
    #[cfg(feature = "aws")]
    pub fn task_callbacks(&self) -> Result<Arc<dyn goviral_aws::TaskCallbacks>, InitError> {
        Ok(Arc::new(goviral_aws::SfnCallbacks::new(self.sdk()?)))
    }

    /// The domain App, for whatever serves API routes, with only what it will use.
    pub async fn app(&self, uses: AppUses) -> Result<App, InitError> {
        let mut settings = self.config.settings.clone();
        settings.auth.jwt_secret = self.jwt_secret()?;
        let mut app = App::new(self.store().await?, self.counters().await?, settings);
        if uses.submissions {
            app = app.with_pipeline(self.pipeline().await?);
        }
        if uses.signed_urls {
            app = app.with_url_signer(self.url_signer()?);
        }
        if uses.comparisons {
            // Ranks with the registry's serving model, and swaps at once when it changes here.
            let serving = self.serving(self.store().await?)?;
            serving.refresh_now().await;
            app = app.with_model_serving(serving.clone()).with_ranker(Arc::new(goviral_scoring::ModelScorer::serving(serving)));
        }
        if uses.platforms {
            app = app.with_platforms(self.platforms().await?);
        }
        Ok(app)
    }

    /// The platforms creators may connect (those with an app configured), the cipher that
    /// seals their tokens (KMS on AWS, a key file on one machine), and the callback address.
    pub async fn platforms(&self) -> Result<domain::accounts::Platforms, InitError> {
        use domain::model::Platform;
        use goviral_adapters::platforms::{instagram::Instagram, tiktok::TikTok, x::XApi, youtube::YouTube};
        let accounts = &self.config.accounts;
        // The quota budgets are counted where every function sees them.
        let counters = Some(self.counters().await?);
        let mut apis: std::collections::HashMap<Platform, Arc<dyn domain::accounts::PlatformApi>> = Default::default();
        for (platform, settings) in &accounts.apps {
            let (s, c) = (settings.clone(), counters.clone());
            let api: Arc<dyn domain::accounts::PlatformApi> = match platform {
                Platform::Youtube => Arc::new(YouTube::new(s, c)),
                Platform::X => Arc::new(XApi::new(s, c)),
                Platform::Instagram => Arc::new(Instagram::new(s, c)),
                Platform::Tiktok => Arc::new(TikTok::new(s, c)),
            };
            apis.insert(*platform, api);
        }
        let master: Arc<dyn goviral_adapters::envelope::MasterKey> = match (&accounts.kms_key_id, self.config.profile) {
            #[cfg(feature = "aws")]
            (Some(key), _) => Arc::new(goviral_aws::KmsMasterKey::new(self.sdk()?, key.clone())),
            #[cfg(not(feature = "aws"))]
            (Some(_), _) => return Err("KMS needs the AWS build".into()),
            (None, Profile::Aws) => return Err("GOVIRAL_KMS_KEY_ID is required to keep platform tokens on AWS".into()),
            (None, Profile::Embedded) => Arc::new(
                goviral_adapters::envelope::LocalMasterKey::open_or_create(&accounts.key_file)
                    .map_err(|e| format!("the token key file {}: {e}", accounts.key_file.display()))?,
            ),
        };
        let redirect_uri = match (&accounts.redirect_url, &self.config.public_url) {
            (Some(url), _) => url.clone(),
            (None, Some(public)) => format!("{}/api/v1/accounts/callback", public.trim_end_matches('/')),
            (None, None) if apis.is_empty() => String::new(),
            (None, None) => return Err("GOVIRAL_OAUTH_REDIRECT_URL (or GOVIRAL_PUBLIC_URL) is required to connect accounts".into()),
        };
        Ok(domain::accounts::Platforms { apis, cipher: Arc::new(goviral_adapters::envelope::Envelope::new(master)), redirect_uri })
    }

    /// The registry's serving model of the scorer (the built-in one until a version serves),
    /// re-read every `GOVIRAL_MODEL_REFRESH_SECS`; built once per process.
    pub fn serving(&self, store: Arc<SqlStore>) -> Result<Arc<goviral_scoring::serving::Serving>, InitError> {
        if let Some(s) = self.serving.get() {
            return Ok(s.clone());
        }
        let built = Arc::new(goviral_scoring::serving::Serving::from_registry(store, self.blobs()?, self.config.model_refresh));
        Ok(self.serving.get_or_init(|| built).clone())
    }

    /// Retraining's inputs: the configured directory, or (AWS) the blob store's training
    /// prefix fetched into a temporary directory.
    pub async fn training_data(&self) -> Result<goviral_scoring::retrain::TrainingData, InitError> {
        if let Some(dir) = &self.config.training_dir {
            return Ok(goviral_scoring::retrain::TrainingData::from_dir(dir)?);
        }
        let prefix =
            self.config.training_prefix.as_deref().ok_or("GOVIRAL_TRAINING_DIR (or GOVIRAL_TRAINING_PREFIX) is required to retrain")?;
        let blobs = self.blobs()?;
        let dir = tempfile::tempdir()?;
        for name in ["train.csv", "gate.csv", "minilm/model.safetensors", "minilm/vocab.txt"] {
            let dest = dir.path().join(name);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if !blobs.fetch_to(&format!("{prefix}/{name}"), &dest).await? && !name.starts_with("minilm/") {
                return Err(format!("the blob store has no {prefix}/{name}").into());
            }
        }
        Ok(goviral_scoring::retrain::TrainingData::from_dir(dir.path())?)
    }

    /// Trains a candidate from `data` and the collected outcomes, gates it against the serving
    /// model and registers it (cron-retrain, `goviral model retrain`, serve's weekly timer).
    pub async fn retrain(
        &self,
        data: goviral_scoring::retrain::TrainingData,
        seed: u64,
    ) -> Result<goviral_scoring::retrain::Retrained, InitError> {
        let store = self.store().await?;
        let serving = self.serving(store.clone())?;
        Ok(goviral_scoring::retrain::retrain(store.as_ref(), self.blobs()?.as_ref(), &serving, Arc::new(data), seed, crate::code_version())
            .await?)
    }

    /// The state machine from infra/, parsed once.
    pub fn state_machine(&self) -> Arc<StateMachine> {
        self.machine.get_or_init(|| Arc::new(StateMachine::pipeline())).clone()
    }

    /// What every stage runs on. Dead-lettering follows the state machine's webhook retries.
    pub async fn stage_context(&self) -> Result<StageContext, InitError> {
        self.stage_context_on(self.store().await?)
    }

    fn stage_context_on(&self, store: Arc<SqlStore>) -> Result<StageContext, InitError> {
        let webhook_retries = self.state_machine().task_retry(domain::pipeline::Stage::Webhook).map_or(0, |r| r.max_attempts);
        let allow_loopback = self.config.webhook_allow_loopback;
        Ok(StageContext {
            store: store.clone(),
            blobs: self.blobs()?,
            moderator: self.swaps.moderator.clone().unwrap_or_else(|| self.moderator()),
            scorer: match &self.swaps.scorer {
                Some(s) => s.clone(),
                None => Arc::new(goviral_llm::EnrichedScorer::on(
                    goviral_scoring::ModelScorer::serving(self.serving(store.clone())?),
                    self.config.openai.clone().map(goviral_llm::OpenAiRewriter::new),
                )),
            },
            media: self.media(),
            fetcher: Arc::new(
                goviral_adapters::fetch::HttpMediaFetcher::new(
                    self.config.media.fetch_timeout,
                    self.config.media.fetch_max_bytes,
                    self.config.media.allow_loopback,
                )
                .with_min_rate(self.config.media.fetch_min_rate, self.config.media.fetch_rate_window),
            ),
            webhooks: self.webhook_sender(),
            webhook_policy: WebhookPolicy { max_attempts: webhook_retries + 1, allow_loopback },
        })
    }

    /// Webhook deliveries under the one outbound policy (job notices, usage notices).
    pub fn webhook_sender(&self) -> Arc<dyn WebhookSender> {
        match &self.swaps.webhooks {
            Some(w) => w.clone(),
            None => {
                Arc::new(goviral_adapters::webhook::HttpWebhookSender::new(self.config.webhook_timeout, self.config.webhook_allow_loopback))
            }
        }
    }

    /// What each plan includes, for the quota job's notices.
    pub fn usage_terms(&self) -> domain::usage::UsageTerms {
        self.config.settings.usage
    }

    /// The billing export's sink (Stripe's Meters API), where configured.
    pub fn meter_sink(&self) -> Option<Arc<dyn domain::billing::MeterSink>> {
        let settings = self.config.stripe.clone()?;
        Some(Arc::new(goviral_adapters::stripe::StripeMeters::new(settings)))
    }

    /// OpenAI's moderation (text and stills) when keyed, else the on-device lexicon (text).
    fn moderator(&self) -> Arc<dyn Moderator> {
        match &self.config.openai {
            Some(settings) => Arc::new(goviral_llm::OpenAiModerator::new(settings.clone())),
            None => Arc::new(goviral_adapters::moderation::LexiconModerator),
        }
    }

    /// Media analysis where ffmpeg is installed; elsewhere an honest "unavailable".
    pub fn media(&self) -> Arc<dyn domain::ports::MediaAnalyzer> {
        // OpenAI transcribes when keyed; the on-device model is the fallback (or the engine).
        let on_device = on_device_speech(self.config.media.whisper_dir.as_deref());
        let openai = self.config.openai.clone().map(|s| Arc::new(goviral_llm::OpenAiTranscriber::new(s)));
        let speech = match (on_device, openai) {
            (Err(why), None) => Err(why),
            (on_device, openai) => goviral_media::speech::Speech::new(on_device.ok(), openai).map(Arc::new),
        };
        let faces = face_detector(self.config.media.face_model.as_deref());
        match goviral_media::MediaAnalysis::on_path(self.config.media.tool_timeout, self.config.media.max_seconds, speech, faces) {
            Ok(analysis) => Arc::new(analysis),
            Err(e) => Arc::new(goviral_media::NoMediaTools(e.to_string())),
        }
    }

    /// The in-process runner of the embedded default, over the same stage context and the
    /// store's durable run queue; `run` it to work the pipeline.
    pub async fn runner(&self) -> Result<Arc<Runner>, InitError> {
        self.runner_on(self.store().await?)
    }

    /// The runner over a store already open (a test's own database); needs no await, so it
    /// can be built before the task that runs it is spawned.
    pub fn runner_on(&self, store: Arc<SqlStore>) -> Result<Arc<Runner>, InitError> {
        let ctx = Arc::new(self.stage_context_on(store.clone())?);
        let queue = store;
        let runner = Runner::new(self.state_machine(), ctx, queue, self.wake.clone(), self.config.pipeline_concurrency)
            .with_retry_delay_scale(self.config.pipeline_retry_scale)
            .per_user(self.config.pipeline_per_user)
            .analysing_at_once(goviral_media::analyses_at_once())
            .downloading_at_once(self.config.media.downloads_at_once)
            .yielding_to(Arc::new(goviral_api::server::answering));
        Ok(Arc::new(runner))
    }

    /// Everything `goviral serve` answers: every endpoint on one App, and the signed `/blobs`
    /// URLs that stand in for S3.
    pub async fn local_router(&self) -> Result<(Arc<App>, axum::Router), InitError> {
        let app = Arc::new(self.app(AppUses::ALL).await?);
        let blobs = goviral_api::LocalBlobs { signer: self.local_url_signer()?, blobs: self.blobs()?, store: self.store().await? };
        let dashboard = match &self.config.dashboard_dir {
            Some(dir) => Some(Arc::new(goviral_api::dashboard::Dashboard::load(dir)?)),
            None => None,
        };
        Ok((app.clone(), goviral_api::local_router(app, blobs, dashboard)))
    }
}
