//! Scheduled retraining (`cron-retrain` on AWS, a weekly timer in `goviral serve` where
//! training data is configured, and `goviral model retrain`): a candidate is trained from the
//! public A/B tests plus pairs of the same creator's posts taken from collected outcomes
//! (detrended by audience and age: `train::outcome_pairs`), evaluated against the serving
//! model on the fixed gate set, and registered. Nothing serves until an admin approves and
//! promotes it.

use std::path::Path;
use std::time::Instant;

use domain::ports::{BlobStore, Store};
use domain::registry::{Candidate, ModelVersion, SCORER_MODEL};
use sha2::{Digest, Sha256};

use crate::serving::Serving;
use crate::train::{self, Embeddings, Observed, TrainOptions, Variant};

/// Outcomes read for one retraining.
pub const OBSERVATIONS_MAX: u32 = 50_000;

/// What a candidate is trained and judged on.
pub struct TrainingData {
    /// The public A/B tests (`train.csv`).
    pub public: Vec<Variant>,
    /// sha256 of the public file.
    pub public_hash: String,
    /// The fixed gate set (`gate.csv`), never trained on.
    pub gate: Vec<Variant>,
    pub gate_name: String,
    /// all-MiniLM-L6-v2's input embeddings (`minilm/`), for the token part; optional.
    pub embeddings: Option<Embeddings>,
}

impl TrainingData {
    /// From a directory holding `train.csv`, `gate.csv` (or the Upworthy split's `dev.csv`)
    /// and optionally `minilm/` (model.safetensors, vocab.txt).
    pub fn from_dir(dir: &Path) -> Result<TrainingData, String> {
        let public_path = dir.join("train.csv");
        let bytes = std::fs::read(&public_path).map_err(|e| format!("{}: {e}", public_path.display()))?;
        let gate_path = [dir.join("gate.csv"), dir.join("dev.csv")]
            .into_iter()
            .find(|p| p.exists())
            .ok_or_else(|| format!("{}: no gate.csv or dev.csv", dir.display()))?;
        let minilm = dir.join("minilm");
        Ok(TrainingData {
            public: train::read_variants(&public_path)?,
            public_hash: hex::encode(Sha256::digest(&bytes)),
            gate: train::read_variants(&gate_path)?,
            gate_name: gate_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            embeddings: if minilm.join("model.safetensors").exists() { Some(Embeddings::load(&minilm)?) } else { None },
        })
    }
}

/// A registered candidate and how it was made.
pub struct Retrained {
    pub version: ModelVersion,
    pub observations: usize,
    pub outcome_pairs: usize,
    pub training_seconds: f64,
}

/// Trains, gates and registers a candidate.
pub async fn retrain(
    store: &dyn Store,
    blobs: &dyn BlobStore,
    serving: &Serving,
    data: std::sync::Arc<TrainingData>,
    seed: u64,
    code_version: String,
) -> domain::Result<Retrained> {
    let observed: Vec<Observed> = store
        .training_observations(OBSERVATIONS_MAX)
        .await?
        .into_iter()
        .map(|o| Observed {
            creator: format!("{}:{}", o.user_id, o.platform.map_or("any", |p| p.as_str())),
            text: o.text,
            views: o.views,
            followers: o.followers,
            age_hours: o.age_hours,
        })
        .collect();
    let pairs = train::outcome_pairs(&observed);
    // What it was trained on, for the registry: the public file and every outcome pair.
    let mut hash = Sha256::new();
    hash.update(data.public_hash.as_bytes());
    for p in &pairs {
        hash.update(format!("\n{}\t{}\t{}\t{:.6}", p.test_id, p.a, p.b, p.z).as_bytes());
    }
    let training_data_hash = format!("sha256:{}", hex::encode(hash.finalize()));
    let started = Instant::now();
    let outcome_pairs = pairs.len();
    // Training is seconds of CPU: off the async workers.
    let trained = {
        let data = data.clone();
        tokio::task::spawn_blocking(move || {
            let options = TrainOptions {
                seed,
                embeddings: data.embeddings.as_ref(),
                name: "headline".into(),
                folds: train::FOLDS,
                outcome_pairs: &pairs,
            };
            train::train(&data.public, &options)
        })
        .await
        .map_err(|e| domain::Error::Internal(format!("training stopped: {e}")))?
    };
    let training_seconds = started.elapsed().as_secs_f64();
    serving.refresh_now().await;
    let current = serving.now();
    let gate = train::gate(&trained, &current.model, &current.version, &data.gate, &data.gate_name, 7);
    let mut metrics = gate.metrics;
    metrics["training"] = serde_json::json!({
        "public_tests": trained.header.training["tests"], "outcome_observations": observed.len(), "outcome_pairs": outcome_pairs,
        "held_out_accuracy": trained.header.training["held_out_accuracy"], "seconds": (training_seconds * 10.0).round() / 10.0, "seed": seed,
    });
    let version = domain::registry::register(
        store,
        blobs,
        Candidate {
            name: SCORER_MODEL.into(),
            artifact: trained.to_bytes(),
            training_data_hash,
            code_version,
            metrics,
            gate_passed: gate.passed,
        },
    )
    .await?;
    tracing::info!(version = %version.label(), gate_passed = version.gate_passed, outcome_pairs, training_seconds, "registered a retrained candidate");
    Ok(Retrained { version, observations: observed.len(), outcome_pairs, training_seconds })
}
