//! The interim scorer: a transparent heuristic over the extracted text features, used until
//! the trained model of the scoring issue replaces it. Its name is in every job's metrics
//! and model run, and its confidence is kept low because it is not calibrated.

use async_trait::async_trait;
use domain::Result;
use domain::model::{Insight, InsightCategory};
use domain::pipeline::{ScoreOutput, ScoreRequest, Scorer};
use serde_json::json;

pub const MODEL: &str = "baseline-heuristic-v0";

#[derive(Default)]
pub struct BaselineScorer;

fn clamp(x: f64) -> f64 {
    x.clamp(0.0, 1.0)
}

fn quote(s: &str) -> String {
    let short: String = s.chars().take(80).collect();
    if short.len() < s.len() { format!("\"{short}…\"") } else { format!("\"{short}\"") }
}

#[async_trait]
impl Scorer for BaselineScorer {
    async fn score(&self, r: &ScoreRequest) -> Result<ScoreOutput> {
        let f = &r.features;
        let first = quote(&f.first_line);
        let hook = clamp(
            0.35 + 0.2 * f64::from(u8::from(f.first_line_has_number))
                + 0.15 * f64::from(u8::from(f.first_line_is_question))
                + 0.1 * f64::from(u8::from(f.second_person > 0))
                - 0.2 * f64::from(u8::from(f.first_line_words > 14)),
        );
        let pacing = clamp(1.0 - (f.length_vs_platform - 1.0).abs() * 0.6);
        let emotion =
            clamp(0.4 + 0.1 * (f.exclamations.min(2) + f.emoji.min(3)) as f64 - 0.3 * f64::from(u8::from(f.uppercase_ratio > 0.5)));
        let story = clamp(if f.sentences >= 2 { 0.6 } else { 0.35 } + 0.1 * f64::from(u8::from(f.second_person > 0)));
        let cta = if f.cta_phrases.is_empty() { 0.2 } else { 0.8 };
        let weights = [0.35, 0.15, 0.2, 0.15, 0.15];
        let subs = [hook, pacing, emotion, story, cta];
        let score = 100.0 * subs.iter().zip(weights).map(|(s, w)| s * w).sum::<f64>();
        let insight =
            |category, weight, message: String, recommendations: Vec<String>| Insight { category, message, recommendations, weight };
        let insights = vec![
            insight(
                InsightCategory::Hook,
                weights[0],
                format!(
                    "Your opening line {first} is {} words{}.",
                    f.first_line_words,
                    if f.first_line_has_number { " and leads with a number" } else { "" }
                ),
                if f.first_line_has_number && f.first_line_words <= 12 {
                    vec![format!("Keep {first} as the first thing viewers see; specific numbers earn the stop.")]
                } else {
                    vec![
                        format!("Rewrite {first} to lead with a specific number or a result, in under 12 words."),
                        "Say the payoff before the setup.".into(),
                    ]
                },
            ),
            insight(
                InsightCategory::Pacing,
                weights[1],
                format!(
                    "At {} characters the text is {:.1}× the usual length that performs on this platform.",
                    f.chars, f.length_vs_platform
                ),
                if f.length_vs_platform > 1.3 {
                    vec![format!(
                        "Cut about {} characters; keep one idea per line.",
                        ((f.length_vs_platform - 1.0) * f.chars as f64 / f.length_vs_platform) as usize
                    )]
                } else if f.length_vs_platform < 0.5 {
                    vec!["Add one concrete detail or outcome so the post can stand alone.".into()]
                } else {
                    vec!["The length suits the platform; keep it.".into()]
                },
            ),
            insight(
                InsightCategory::Emotion,
                weights[2],
                format!("{} exclamation(s) and {} emoji carry the tone.", f.exclamations, f.emoji),
                if f.uppercase_ratio > 0.5 {
                    vec!["Drop the all-caps: it reads as shouting and lowers trust.".into()]
                } else if f.exclamations + f.emoji == 0 {
                    vec!["Name the feeling you want (surprise, relief, pride) in one vivid word.".into()]
                } else {
                    vec!["Keep the energy, but let one strong word do the work.".into()]
                },
            ),
            insight(
                InsightCategory::Storytelling,
                weights[3],
                format!("{} sentence(s); {} direct address(es) to the viewer.", f.sentences, f.second_person),
                if f.sentences < 2 {
                    vec!["Add a turn: the problem, then what changed.".into()]
                } else {
                    vec!["Make the middle line the surprise, not the summary.".into()]
                },
            ),
            insight(
                InsightCategory::Cta,
                weights[4],
                if f.cta_phrases.is_empty() {
                    "There is no call to action.".to_string()
                } else {
                    format!("Call to action found: {}.", f.cta_phrases.join(", "))
                },
                if f.cta_phrases.is_empty() {
                    vec!["End with one ask, e.g. \"Comment which one you'd try first\".".into()]
                } else {
                    vec!["Keep a single ask; more than one splits attention.".into()]
                },
            ),
        ];
        Ok(ScoreOutput {
            score: (score * 100.0).round() / 100.0,
            confidence: 0.3,
            insights,
            metrics: json!({
                "sub_scores": {"hook": hook, "pacing": pacing, "emotion": emotion, "storytelling": story, "cta": cta},
                "features": f,
                "calibrated": false,
            }),
            model_name: MODEL.into(),
            token_usage: None,
            prompt_hash: None,
        })
    }
}
