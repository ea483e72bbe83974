//! How a Lambda container builds its adapters, once, before its first event. Every choice is
//! made by configuration (the function's environment in template.yaml):
//! - secrets named by ARN are read from Secrets Manager and become settings;
//! - `GOVIRAL_COUNTERS_TABLE` + `GOVIRAL_IDEMPOTENCY_TABLE` put the hot counters in DynamoDB
//!   (otherwise they stay in the relational store);
//! - `GOVIRAL_STATE_MACHINE_ARN` is where jobs are started;
//! - `GOVIRAL_BLOB_BUCKET` (+ `GOVIRAL_S3_PATH_STYLE` for emulators) holds the blobs.

use std::sync::Arc;

use domain::ports::{Counters, Store};
use goviral_app::{Config, Mode};
use goviral_sql::SqlStore;

pub type InitError = Box<dyn std::error::Error + Send + Sync>;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required(name: &str) -> Result<String, InitError> {
    env(name).ok_or_else(|| format!("configuration: {name} is required").into())
}

/// What a function does, as far as its wiring cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Serves API routes: authenticates callers.
    Api,
    /// Pipeline stages and scheduled jobs: no callers to authenticate.
    Worker,
}

/// The container's configuration with its secrets resolved, and the AWS SDK configuration.
pub struct Container {
    pub config: Config,
    pub aws: aws_config::SdkConfig,
    pub store: Arc<SqlStore>,
}

impl Container {
    /// Reads secrets, then the configuration, then connects the store's pool. Functions that
    /// never issue or check a token (stages, the sweep) are not given the JWT key at all
    /// (least privilege); they get a random one no token will ever be signed with.
    pub async fn init(role: Role) -> Result<Container, InitError> {
        let aws = goviral_aws::load_config().await;
        let mut secrets = goviral_aws::secrets::resolve(&aws, env).await?;
        if role == Role::Worker && env("GOVIRAL_JWT_SECRET").is_none() && !secrets.contains_key("GOVIRAL_JWT_SECRET") {
            secrets.insert("GOVIRAL_JWT_SECRET".into(), hex::encode(domain::auth::random_bytes::<32>()));
        }
        let config = Config::from_lookup(Mode::Lambda, |name| secrets.get(name).cloned().or_else(|| env(name)))?;
        goviral_app::init_tracing(config.log_json);
        let store = Arc::new(goviral_app::connect_store(&config).await?);
        Ok(Container { config, aws, store })
    }

    pub fn counters(&self) -> Result<Arc<dyn Counters>, InitError> {
        Ok(match (env("GOVIRAL_COUNTERS_TABLE"), env("GOVIRAL_IDEMPOTENCY_TABLE")) {
            (Some(counters), Some(keys)) => Arc::new(goviral_aws::DynamoCounters::new(&self.aws, counters, keys)),
            (None, None) => self.store.clone(),
            _ => return Err("configuration: set both GOVIRAL_COUNTERS_TABLE and GOVIRAL_IDEMPOTENCY_TABLE, or neither".into()),
        })
    }

    pub fn pipeline(&self) -> Result<Arc<goviral_aws::StepFunctionsPipeline>, InitError> {
        let store: Arc<dyn Store> = self.store.clone();
        Ok(Arc::new(goviral_aws::StepFunctionsPipeline::new(&self.aws, required("GOVIRAL_STATE_MACHINE_ARN")?, store)))
    }

    pub fn blobs(&self) -> Result<Arc<goviral_aws::S3BlobStore>, InitError> {
        let path_style = env("GOVIRAL_S3_PATH_STYLE").is_some_and(|v| v == "true");
        Ok(Arc::new(goviral_aws::S3BlobStore::new(&self.aws, required("GOVIRAL_BLOB_BUCKET")?, path_style)))
    }

    /// The domain App of the API functions.
    pub fn app(&self) -> Result<domain::service::App, InitError> {
        Ok(domain::service::App::new(self.store.clone(), self.counters()?, self.pipeline()?, self.config.settings.clone()))
    }
}
