//! The on-device virality scorer. `Model::embedded()` loads the committed model; `score`
//! rates one text, `compare` ranks variants; `train` and `evaluate` rebuild and measure it.

pub mod model;
pub mod retrain;
pub mod serving;
pub mod text;
pub mod train;
pub mod wordpiece;

pub use model::Model;

/// The committed model, parsed once.
impl Model {
    pub fn embedded() -> &'static Model {
        static MODEL: std::sync::OnceLock<Model> = std::sync::OnceLock::new();
        MODEL.get_or_init(|| Model::from_bytes(EMBEDDED).expect("the committed model is valid"))
    }

    /// The committed model file, byte for byte.
    pub fn embedded_bytes() -> &'static [u8] {
        EMBEDDED
    }
}

static EMBEDDED: &[u8] = include_bytes!("../model/headline.gvnm");

pub mod score;

pub use score::{Scored, ScoredRewrite, compare, score, score_with};

/// The scorer port on the serving model: what the inference stage calls, and what ranks.
pub struct ModelScorer {
    serving: std::sync::Arc<serving::Serving>,
}

impl ModelScorer {
    /// On the committed model alone (no registry).
    pub fn embedded() -> ModelScorer {
        ModelScorer { serving: std::sync::Arc::new(serving::Serving::built_in()) }
    }

    /// On whatever the registry serves.
    pub fn serving(serving: std::sync::Arc<serving::Serving>) -> ModelScorer {
        ModelScorer { serving }
    }
}

impl ModelScorer {
    /// Scores each of `openings` (an LLM's) against the text's first line, with the model
    /// serving now.
    pub async fn score_openings(&self, text: &str, openings: &[String]) -> Vec<ScoredRewrite> {
        let loaded = self.serving.current().await;
        let first = text::Signals::of(text).first_line;
        let before = score::opening_score(&loaded.model, &first);
        openings.iter().map(|opening| score::rewrite(&loaded.model, "suggested", opening.clone(), &first, before)).collect()
    }
}

impl domain::ports::Ranker for ModelScorer {
    fn rank(&self, variants: &[String], _platform: Option<domain::model::Platform>) -> domain::ports::Ranking {
        let loaded = self.serving.now();
        let mut ranking = score::compare(&loaded.model, variants);
        ranking.model = loaded.version.clone();
        ranking
    }
}

#[async_trait::async_trait]
impl domain::ports::Scorer for ModelScorer {
    fn features(&self, text: &str, _platform: Option<domain::model::Platform>) -> serde_json::Value {
        serde_json::to_value(text::Signals::of(text)).expect("signals serialise")
    }

    async fn score(&self, request: &domain::ports::ScoreRequest) -> domain::Result<domain::ports::ScoreOutput> {
        // The features extraction computed, not a fresh reading of the text.
        let signals: text::Signals = serde_json::from_value(request.features.clone())
            .map_err(|e| domain::Error::Internal(format!("the features document is not this scorer's: {e}")))?;
        let loaded = self.serving.current().await;
        let model = &loaded.model;
        let scored = score::score_with(model, &request.text, signals, request.platform);
        let metrics = serde_json::json!({
            "sub_scores": scored.sub_scores,
            "drivers": scored.drivers,
            "utility": scored.utility,
            "model_version": loaded.version,
            "rewrites": scored.rewrites,
            "score_band": model.score_band(scored.utility),
            "score_band_basis": "scores whose content the model cannot tell apart from this one (it would pick either with 25–75% probability)",
            "score_basis": format!("percentile of the model's utility among {} A/B-tested headlines", model.header.training["headlines"]),
            "confidence_basis": "calibrated probability that the content beats (or trails) a typical alternative, as the score says",
        });
        Ok(domain::ports::ScoreOutput {
            score: scored.score,
            confidence: scored.confidence,
            insights: scored.insights,
            metrics,
            model_name: model.header.name.clone(),
            model_version: Some(loaded.version.clone()),
            token_usage: None,
            prompt_hash: None,
        })
    }
}
