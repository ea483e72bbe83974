//! `goviral model train | eval`: rebuild the scorer's model from A/B test data and measure it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use goviral_scoring::train::{self, TrainOptions};

pub const MODEL_PATH: &str = "shared/scoring/model/headline.gvnm";

pub fn train(data: &Path, embeddings: Option<&Path>, out: &Path, seed: u64, name: &str) -> Result<(), String> {
    let started = Instant::now();
    let variants = train::read_variants(data)?;
    let embeddings = embeddings.map(train::Embeddings::load).transpose()?;
    let model = train::train(
        &variants,
        &TrainOptions { seed, embeddings: embeddings.as_ref(), name: name.into(), folds: train::FOLDS, outcome_pairs: &[] },
    );
    std::fs::write(out, model.to_bytes()).map_err(|e| format!("{}: {e}", out.display()))?;
    let summary = serde_json::json!({
        "model": out,
        "name": model.header.name,
        "temperature": model.header.temperature,
        "training": model.header.training,
        "seconds": started.elapsed().as_secs_f64(),
    });
    println!("{}", serde_json::to_string_pretty(&summary).unwrap());
    Ok(())
}

pub fn eval(data: &Path, model: Option<PathBuf>, seed: u64) -> Result<(), String> {
    let from_file;
    let loaded = match &model {
        Some(path) => {
            from_file = goviral_scoring::Model::from_bytes(&std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?)?;
            &from_file
        }
        None => goviral_scoring::Model::embedded(),
    };
    let variants = train::read_variants(data)?;
    let evaluation = train::evaluate(loaded, &variants, seed);
    let mut out = serde_json::to_value(&evaluation).unwrap();
    out["model"] = loaded.header.name.clone().into();
    out["data"] = data.display().to_string().into();
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
    Ok(())
}

/// `goviral model register`: a trained model file becomes a registry candidate, with its gate
/// metrics beside the serving model's on the same gate set.
pub async fn register(
    composition: &goviral_app::Composition,
    file: &Path,
    training_data: &Path,
    gate_set: &Path,
) -> Result<serde_json::Value, String> {
    use sha2::Digest;
    let artifact = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let candidate = goviral_scoring::Model::from_bytes(&artifact).map_err(|e| format!("{}: {e}", file.display()))?;
    let data = std::fs::read(training_data).map_err(|e| format!("{}: {e}", training_data.display()))?;
    let gate_variants = train::read_variants(gate_set)?;
    let store = composition.store().await.map_err(|e| e.to_string())?;
    let blobs = composition.blobs().map_err(|e| e.to_string())?;
    let serving = composition.serving(store.clone()).map_err(|e| e.to_string())?;
    serving.refresh_now().await;
    let current = serving.now();
    let gate = train::gate(&candidate, &current.model, &current.version, &gate_variants, &gate_set.display().to_string(), 7);
    let registered = domain::registry::register(
        store.as_ref(),
        blobs.as_ref(),
        domain::registry::Candidate {
            name: domain::registry::SCORER_MODEL.into(),
            artifact,
            training_data_hash: format!("sha256:{}", hex::encode(sha2::Sha256::digest(&data))),
            code_version: goviral_app::code_version(),
            metrics: gate.metrics,
            gate_passed: gate.passed,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(version_json(&registered))
}

pub fn version_json(v: &domain::registry::ModelVersion) -> serde_json::Value {
    serde_json::json!({
        "model_version_id": v.id, "label": v.label(), "state": v.state.as_str(), "gate_passed": v.gate_passed,
        "gate": domain::registry::gate_summary(&v.metrics), "metrics": v.metrics, "overridden": v.overridden,
        "training_data_hash": v.training_data_hash, "code_version": v.code_version, "artifact_sha256": v.artifact_sha256,
        "decided_by": v.decided_by, "decision_note": v.decision_note,
    })
}

/// `goviral model retrain`: what cron-retrain does, by hand.
pub async fn retrain(composition: &goviral_app::Composition, dir: &Path, seed: u64) -> Result<serde_json::Value, String> {
    let data = goviral_scoring::retrain::TrainingData::from_dir(dir)?;
    let done = composition.retrain(data, seed).await.map_err(|e| e.to_string())?;
    let mut out = version_json(&done.version);
    out["outcome_pairs"] = done.outcome_pairs.into();
    out["training_seconds"] = done.training_seconds.into();
    Ok(out)
}
