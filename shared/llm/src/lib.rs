//! The OpenAI path. The score always comes from the on-device model (it is the calibrated
//! one); when an OpenAI key is configured, an LLM adds rewritten hooks and recommendations to
//! the insights. Any failure falls back to the on-device insights, and the job's metrics say so.

pub mod moderation;
pub mod openai;
pub mod redact;
pub mod transcribe;

use domain::ports::{ScoreOutput, ScoreRequest, Scorer};
use serde_json::json;

pub use moderation::OpenAiModerator;
pub use openai::{LlmError, OpenAiRewriter, OpenAiSettings};
pub use transcribe::OpenAiTranscriber;

pub struct EnrichedScorer {
    on_device: goviral_scoring::ModelScorer,
    llm: Option<OpenAiRewriter>,
}

impl EnrichedScorer {
    pub fn new(llm: Option<OpenAiRewriter>) -> EnrichedScorer {
        Self::on(goviral_scoring::ModelScorer::embedded(), llm)
    }

    /// On this on-device scorer (the registry's serving model).
    pub fn on(on_device: goviral_scoring::ModelScorer, llm: Option<OpenAiRewriter>) -> EnrichedScorer {
        EnrichedScorer { on_device, llm }
    }
}

#[async_trait::async_trait]
impl Scorer for EnrichedScorer {
    fn features(&self, text: &str, platform: Option<domain::model::Platform>) -> serde_json::Value {
        self.on_device.features(text, platform)
    }

    async fn score(&self, request: &ScoreRequest) -> domain::Result<ScoreOutput> {
        let mut out = self.on_device.score(request).await?;
        let Some(llm) = &self.llm else { return Ok(out) };
        let findings: Vec<(&str, &str)> = out.insights.iter().map(|i| (i.category.as_str(), i.message.as_str())).collect();
        let brief = openai::Brief { text: &request.text, platform: request.platform.map(|p| p.as_str()), score: out.score, findings };
        let answer = llm.rewrite(&brief).await;
        let mut scored_rewrites = Vec::new();
        let status = match answer {
            Ok(answer) => {
                // Each suggested opening is scored in place, so the advice says what it changes.
                let rewrites = self.on_device.score_openings(&request.text, &answer.rewrites.hook_rewrites).await;
                scored_rewrites.clone_from(&rewrites);
                for insight in &mut out.insights {
                    let category = insight.category.as_str();
                    if category == "hook" {
                        insight.recommendations.extend(rewrites.iter().map(|r| {
                            format!(
                                "Try this opening: \"{}\": as an opening it scores {:.0}, {:+.0} on yours.",
                                r.opening, r.score, r.change
                            )
                        }));
                    }
                    insight
                        .recommendations
                        .extend(answer.rewrites.recommendations.iter().filter(|r| r.category == category).map(|r| r.text.clone()));
                }
                out.model_name = format!("{}+{}", out.model_name, llm.model());
                out.token_usage = answer.usage.as_ref().map(|u| json!(u));
                out.prompt_hash = Some(answer.prompt_hash);
                json!({"status": "enriched", "model": llm.model(), "attempts": answer.attempts})
            }
            Err(e) => {
                tracing::warn!(error = %e, "LLM enrichment failed; on-device insights only");
                json!({"status": "fallback", "model": llm.model(), "reason": e.to_string()})
            }
        };
        if let serde_json::Value::Object(m) = &mut out.metrics {
            m.insert("llm".into(), status);
            // The LLM's openings join the ones made from the text's own words.
            if let Some(serde_json::Value::Array(all)) = m.get_mut("rewrites") {
                all.extend(scored_rewrites.iter().map(|r| json!(r)));
            }
        }
        Ok(out)
    }
}
