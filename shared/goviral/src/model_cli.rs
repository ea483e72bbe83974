//! `goviral model train | eval`: rebuild the scorer's model from A/B test data and measure it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use goviral_scoring::train::{self, TrainOptions};

pub const MODEL_PATH: &str = "shared/scoring/model/headline.gvnm";

pub fn train(data: &Path, embeddings: Option<&Path>, out: &Path, seed: u64, name: &str) -> Result<(), String> {
    let started = Instant::now();
    let variants = train::read_variants(data)?;
    let embeddings = embeddings.map(train::Embeddings::load).transpose()?;
    let model = train::train(&variants, &TrainOptions { seed, embeddings: embeddings.as_ref(), name: name.into(), calibration_share: 0.2 });
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
