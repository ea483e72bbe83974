//! On-device moderation: a curated phrase lexicon per category. It is a deliberately
//! conservative first line (clear threats, self-harm instructions, sale of illegal goods,
//! payment scams); the OpenAI moderation adapter replaces it when configured.

use std::collections::BTreeMap;

use async_trait::async_trait;
use domain::Result;
use domain::ports::{ModerationVerdict, Moderator};

const MODEL: &str = "gvn-lexicon-moderation-v1";

/// (category, phrases). Matched case-insensitively on word boundaries.
const LEXICON: &[(&str, &[&str])] = &[
    (
        "violence",
        &[
            "i will kill you",
            "i'm going to kill you",
            "going to shoot up",
            "shoot up the school",
            "bomb the",
            "behead",
            "how to make a bomb",
        ],
    ),
    ("self_harm", &["how to kill myself", "best way to kill myself", "ways to commit suicide", "how to cut myself"]),
    (
        "illegal_goods",
        &["buy cocaine", "sell cocaine", "buy heroin", "buy meth", "buy fentanyl", "ghost gun for sale", "fake passports for sale"],
    ),
    (
        "scam",
        &[
            "send me bitcoin and",
            "double your bitcoin",
            "guaranteed 100% returns",
            "wire the money to claim",
            "your account will be suspended unless you pay",
        ],
    ),
    ("hate", &["are subhuman", "exterminate all", "should all be gassed"]),
];

#[derive(Default)]
pub struct LexiconModerator;

fn normalise(text: &str) -> String {
    let lowered: String = text.to_lowercase().chars().map(|c| if c.is_alphanumeric() || c == '\'' { c } else { ' ' }).collect();
    format!(" {} ", lowered.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[async_trait]
impl Moderator for LexiconModerator {
    async fn moderate(&self, text: &str) -> Result<ModerationVerdict> {
        let haystack = normalise(text);
        let mut categories = BTreeMap::new();
        let mut reasons = Vec::new();
        for (category, phrases) in LEXICON {
            let hits: Vec<&str> = phrases.iter().copied().filter(|p| haystack.contains(&normalise(p))).collect();
            categories.insert(category.to_string(), if hits.is_empty() { 0.0 } else { 1.0 });
            if !hits.is_empty() {
                reasons.push(format!("{category}: contains \"{}\"", hits.join("\", \"")));
            }
        }
        Ok(ModerationVerdict { flagged: !reasons.is_empty(), categories, reasons, model: MODEL.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn flags_clear_phrases_only() {
        let m = LexiconModerator;
        let v = m.moderate("Send me Bitcoin, and I'll DOUBLE your bitcoin!!").await.unwrap();
        assert!(v.flagged);
        assert_eq!(v.categories["scam"], 1.0);
        assert!(v.reasons[0].contains("double your bitcoin"));
        assert!(!m.moderate("This sourdough will kill it at the bake sale").await.unwrap().flagged);
        assert!(!m.moderate("").await.unwrap().flagged);
    }
}
