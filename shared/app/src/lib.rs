//! Configuration and wiring shared by the local server, the CLI and the Lambdas: builds the
//! domain `App` on the adapters the configuration names. No AWS SDK in this tree.

pub mod config;

use std::sync::Arc;

use domain::service::App;
use goviral_sql::{PoolSettings, SqlStore};

pub use config::{Config, ConfigError, Mode};
use domain::pipeline::{StageContext, WebhookPolicy};
use domain::ports::Store;
use goviral_local::asl::StateMachine;
use goviral_local::runner::{LocalPipeline, Runner};
use goviral_local::signed_urls::LocalUrlSigner;
use tokio::sync::Notify;

/// JSON logs on Lambda (CloudWatch), human ones locally; `RUST_LOG` filters (default info).
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.try_init() };
}

/// Creates the data dir and, when no JWT secret was configured, a random one kept in it so
/// tokens survive restarts of the embedded server.
pub fn prepare_data_dir(config: &mut Config) -> std::io::Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    if config.settings.auth.jwt_secret.is_empty() {
        let path = config.data_dir.join("jwt.secret");
        let secret = match std::fs::read_to_string(&path) {
            Ok(s) if s.trim().len() >= 32 => s.trim().to_string(),
            _ => {
                let s = hex::encode(domain::auth::random_bytes::<32>());
                write_private(&path, &s)?;
                s
            }
        };
        config.settings.auth.jwt_secret = secret.into_bytes();
    }
    Ok(())
}

fn write_private(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(content.as_bytes())
}

pub struct Wired {
    pub app: Arc<App>,
    pub store: SqlStore,
    /// The blob files under the data dir, shared by the stages and the signed-URL route.
    pub blobs: Arc<dyn domain::pipeline::BlobStore>,
    /// Signs the upload and download URLs the local server serves, when it serves them.
    pub url_signer: Option<Arc<LocalUrlSigner>>,
    /// The in-process pipeline runner; `goviral serve` runs it.
    pub runner: Arc<Runner>,
}

/// The on-device scorer, enriched by the OpenAI path when it is configured.
pub fn scorer(config: &Config) -> Arc<dyn domain::pipeline::Scorer> {
    Arc::new(goviral_llm::EnrichedScorer::new(config.openai.clone().map(goviral_llm::OpenAiRewriter::new)))
}

/// Blobs as files under the data dir.
pub fn local_blob_store(config: &Config) -> Arc<dyn domain::pipeline::BlobStore> {
    Arc::new(goviral_local::blobs::FileBlobStore::new(config.data_dir.join("blobs")))
}

/// The stage context of the embedded default: the given blobs, on-device models, the guarded
/// HTTP webhook sender. Dead-lettering follows the state machine's webhook retries.
pub fn local_stage_context(
    config: &Config,
    store: Arc<dyn Store>,
    blobs: Arc<dyn domain::pipeline::BlobStore>,
    machine: &StateMachine,
) -> StageContext {
    let webhook_retries = machine.task_retry(domain::pipeline::Stage::Webhook).map_or(0, |r| r.max_attempts);
    StageContext {
        store,
        blobs,
        moderator: Arc::new(goviral_local::moderation::LexiconModerator),
        scorer: scorer(config),
        webhooks: Arc::new(goviral_local::webhook::HttpWebhookSender::new(config.webhook_timeout, config.webhook_allow_loopback)),
        webhook_policy: WebhookPolicy { max_attempts: webhook_retries + 1, allow_loopback: config.webhook_allow_loopback },
    }
}

/// The relational store's pool, built once per process (or Lambda container): at most
/// `GOVIRAL_DB_MAX_CONNECTIONS`, giving up on a connection after `GOVIRAL_DB_ACQUIRE_TIMEOUT_MS`.
/// Migrates when configured.
pub async fn connect_store(config: &Config) -> Result<SqlStore, domain::Error> {
    let pool = PoolSettings { max_connections: config.db_max_connections, acquire_timeout: config.db_acquire_timeout };
    let store = SqlStore::connect(&config.database_url, &pool).await?;
    if config.migrate {
        store.migrate().await?;
    }
    Ok(store)
}

/// Connects the store and builds the App and the in-process pipeline on it. `public_url`: where
/// clients reach the local server, when it serves signed blob URLs (`goviral serve`).
pub async fn wire(config: &Config, public_url: Option<&str>) -> Result<Wired, domain::Error> {
    let store = connect_store(config).await?;
    let shared: Arc<SqlStore> = Arc::new(store.clone());
    let wake = Arc::new(Notify::new());
    let pipeline = Arc::new(LocalPipeline::new(wake.clone(), shared.clone()));
    let mut app = App::new(shared.clone(), shared.clone(), pipeline, config.settings.clone());
    let url_signer = public_url.map(|url| Arc::new(LocalUrlSigner::new(url, &config.settings.auth.jwt_secret)));
    if let Some(signer) = &url_signer {
        app = app.with_url_signer(signer.clone());
    }
    let blobs = local_blob_store(config);
    let machine = Arc::new(StateMachine::pipeline());
    let ctx = Arc::new(local_stage_context(config, shared.clone(), blobs.clone(), &machine));
    let runner =
        Arc::new(Runner::new(machine, ctx, shared, wake, config.pipeline_concurrency).with_retry_delay_scale(config.pipeline_retry_scale));
    Ok(Wired { app: Arc::new(app), store, blobs, url_signer, runner })
}
