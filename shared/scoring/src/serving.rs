//! The model that serves: the registry's serving version of the scorer, read from the blob
//! store (checked by digest) and swapped in atomically, or the built-in model while none is
//! registered. Each process re-reads the serving version at most every `ttl` (a Lambda at
//! init and then on that TTL) and at once when told (`ModelServing::refresh`, after a
//! promotion in the same process).

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use domain::ports::{BlobStore, Store};
use domain::registry::{ModelServing, SCORER_MODEL};
use uuid::Uuid;

use crate::Model;

/// A model in service and the name results give it.
pub struct Loaded {
    pub model: Arc<Model>,
    /// `headline@3`, or `headline-v3 (built in)`.
    pub version: String,
    /// The registry's id for it (None: the built-in model).
    pub id: Option<Uuid>,
}

pub struct Serving {
    current: RwLock<Arc<Loaded>>,
    registry: Option<(Arc<dyn Store>, Arc<dyn BlobStore>)>,
    ttl: Duration,
    checked: Mutex<Option<Instant>>,
    refreshing: tokio::sync::Mutex<()>,
}

fn built_in() -> Arc<Loaded> {
    static BUILT_IN: std::sync::OnceLock<Arc<Model>> = std::sync::OnceLock::new();
    let model = BUILT_IN.get_or_init(|| Arc::new(Model::embedded().clone())).clone();
    Arc::new(Loaded { version: format!("{} (built in)", model.header.name), model, id: None })
}

impl Serving {
    /// Always the built-in model (no registry).
    pub fn built_in() -> Serving {
        Serving {
            current: RwLock::new(built_in()),
            registry: None,
            ttl: Duration::MAX,
            checked: Mutex::new(None),
            refreshing: Default::default(),
        }
    }

    /// The registry's serving version, re-read at most every `ttl`.
    pub fn from_registry(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>, ttl: Duration) -> Serving {
        Serving {
            current: RwLock::new(built_in()),
            registry: Some((store, blobs)),
            ttl,
            checked: Mutex::new(None),
            refreshing: Default::default(),
        }
    }

    /// What serves now, without looking again.
    pub fn now(&self) -> Arc<Loaded> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// What serves, having looked again if the TTL has passed.
    pub async fn current(&self) -> Arc<Loaded> {
        let due = self.checked.lock().unwrap_or_else(|p| p.into_inner()).is_none_or(|at| at.elapsed() >= self.ttl);
        if due && self.registry.is_some() {
            self.refresh_now().await;
        }
        self.now()
    }

    /// Reads the serving version and swaps it in when it changed. A version that cannot be
    /// loaded leaves the current one serving (and says why in the log).
    pub async fn refresh_now(&self) {
        let Some((store, blobs)) = &self.registry else { return };
        let _one_at_a_time = self.refreshing.lock().await;
        let serving = match store.serving_model_version(SCORER_MODEL).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "the serving model could not be read; the current one keeps serving");
                return;
            }
        };
        *self.checked.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let current = self.now();
        let next = match serving {
            None if current.id.is_none() => return,
            None => built_in(),
            Some(v) if Some(v.id) == current.id => return,
            Some(v) => {
                let loaded = domain::registry::artifact(blobs.as_ref(), &v)
                    .await
                    .and_then(|bytes| Model::from_bytes(&bytes).map_err(domain::Error::Internal));
                match loaded {
                    Ok(model) => Arc::new(Loaded { model: Arc::new(model), version: v.label(), id: Some(v.id) }),
                    Err(e) => {
                        tracing::error!(error = %e, version = %v.label(), "the serving model could not be loaded; the current one keeps serving");
                        return;
                    }
                }
            }
        };
        tracing::info!(from = %current.version, to = %next.version, "the serving model changed");
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
    }
}

#[async_trait::async_trait]
impl ModelServing for Serving {
    async fn refresh(&self) {
        self.refresh_now().await
    }

    async fn recheck(&self) {
        self.current().await;
    }
}
