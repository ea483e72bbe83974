//! Moderation by OpenAI (`moderations`, `omni-moderation-latest`): text (with contact details
//! redacted), and a video's stills as images. Under the same timeout, retries with jittered backoff and circuit breaker as
//! the other calls; when it cannot answer, the pipeline fails closed (it never falls back to a
//! weaker check).

use std::collections::BTreeMap;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::moderations::{
    CreateModerationRequest, CreateModerationResponse, ModerationContentPart, ModerationImageURLInput, ModerationInput,
};
use async_trait::async_trait;
use base64::Engine;
use domain::ports::{ModerationVerdict, Moderator, Still};
use futures_util::StreamExt;

use crate::openai::{Breaker, LlmError, OpenAiSettings, classify, client, with_retries};

pub const MODERATION_MODEL: &str = "omni-moderation-latest";
/// Text is sent in pieces of at most this many characters (one result each).
const TEXT_PIECE_CHARS: usize = 4_000;
/// Requests in flight at once for one video (one per still, one for the text).
const AT_ONCE: usize = 4;

pub struct OpenAiModerator {
    client: Client<OpenAIConfig>,
    settings: OpenAiSettings,
    breaker: Breaker,
}

/// What one request was about, for the reasons.
#[derive(Clone, Copy)]
enum Subject {
    Text,
    Still(f64),
}

impl OpenAiModerator {
    pub fn new(settings: OpenAiSettings) -> OpenAiModerator {
        OpenAiModerator { client: client(&settings), breaker: Breaker::new(&settings), settings }
    }

    async fn ask(&self, input: ModerationInput) -> Result<CreateModerationResponse, LlmError> {
        if !self.breaker.admit() {
            return Err(LlmError::CircuitOpen);
        }
        let request = CreateModerationRequest { input, model: Some(MODERATION_MODEL.into()) };
        let (result, _) = with_retries(&self.settings, || async {
            let response = self.client.moderations().create(request.clone()).await.map_err(classify)?;
            if response.results.is_empty() {
                return Err(LlmError::Malformed("no moderation results".into()));
            }
            Ok(response)
        })
        .await;
        self.breaker.record(result.is_ok());
        result
    }

    async fn verdict(&self, text: &str, stills: &[Still]) -> domain::Result<ModerationVerdict> {
        let mut requests: Vec<(Subject, ModerationInput)> = Vec::new();
        // The same redaction as the rewrites: contact details never leave; they do not change
        // what the text is about.
        let pieces = pieces(&crate::redact::redact(text));
        if !pieces.is_empty() {
            requests.push((Subject::Text, ModerationInput::StringArray(pieces)));
        }
        for still in stills {
            let url = format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(&still.jpeg));
            let part = ModerationContentPart::ImageUrl(ModerationImageURLInput { image_url: url });
            requests.push((Subject::Still(still.t_s), ModerationInput::MultiModal(vec![part])));
        }
        let answers: Vec<(Subject, Result<CreateModerationResponse, LlmError>)> = futures_util::stream::iter(requests)
            .map(|(subject, input)| async move { (subject, self.ask(input).await) })
            .buffered(AT_ONCE)
            .collect()
            .await;

        let mut verdict =
            ModerationVerdict { flagged: false, categories: BTreeMap::new(), reasons: Vec::new(), model: MODERATION_MODEL.into() };
        for (subject, answer) in answers {
            let response = answer.map_err(|e| match e {
                LlmError::CircuitOpen => domain::Error::Unavailable("OpenAI moderation keeps failing (circuit open)".into()),
                other => domain::Error::Unavailable(format!("OpenAI moderation: {other}")),
            })?;
            verdict.model = response.model.clone();
            for result in &response.results {
                let scores = named(&result.category_scores)?;
                for (category, score) in &scores {
                    let best = verdict.categories.entry(category.clone()).or_insert(0.0);
                    *best = best.max(*score);
                }
                if !result.flagged {
                    continue;
                }
                verdict.flagged = true;
                let flagged: Vec<String> = named_flags(&result.categories)?
                    .into_iter()
                    .map(|c| format!("{c} ({:.2})", scores.get(&c).copied().unwrap_or(0.0)))
                    .collect();
                let place = match subject {
                    Subject::Text => "in what is said or written".to_string(),
                    Subject::Still(t) => format!("in the frame at {t:.1} s"),
                };
                verdict.reasons.push(format!("{} {place}", flagged.join(", ")));
            }
        }
        Ok(verdict)
    }
}

/// The text in pieces of at most `TEXT_PIECE_CHARS`, split at whitespace; none when blank.
fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut piece = String::new();
    for word in text.split_whitespace() {
        if !piece.is_empty() && piece.chars().count() + 1 + word.chars().count() > TEXT_PIECE_CHARS {
            out.push(std::mem::take(&mut piece));
        }
        if !piece.is_empty() {
            piece.push(' ');
        }
        // A single "word" longer than a piece (no spaces) is cut.
        piece.extend(word.chars().take(TEXT_PIECE_CHARS));
    }
    if !piece.is_empty() {
        out.push(piece);
    }
    out
}

/// Category → score, named as OpenAI names them (`violence/graphic`).
fn named(scores: &impl serde::Serialize) -> domain::Result<BTreeMap<String, f64>> {
    let value = serde_json::to_value(scores).map_err(|e| domain::Error::Unavailable(format!("moderation scores: {e}")))?;
    Ok(value.as_object().into_iter().flatten().filter_map(|(k, v)| v.as_f64().map(|s| (k.clone(), s))).collect())
}

fn named_flags(flags: &impl serde::Serialize) -> domain::Result<Vec<String>> {
    let value = serde_json::to_value(flags).map_err(|e| domain::Error::Unavailable(format!("moderation categories: {e}")))?;
    Ok(value.as_object().into_iter().flatten().filter(|(_, v)| v.as_bool() == Some(true)).map(|(k, _)| k.clone()).collect())
}

#[async_trait]
impl Moderator for OpenAiModerator {
    async fn moderate(&self, text: &str) -> domain::Result<ModerationVerdict> {
        self.verdict(text, &[]).await
    }

    fn sees_pictures(&self) -> bool {
        true
    }

    async fn moderate_video(&self, text: &str, stills: &[Still]) -> domain::Result<ModerationVerdict> {
        self.verdict(text, stills).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_goes_in_pieces_split_between_words() {
        assert!(pieces("  \n ").is_empty());
        assert_eq!(pieces("one two"), ["one two"]);
        let long = "word ".repeat(2_000);
        let split = pieces(&long);
        assert_eq!(split.len(), 3);
        assert!(split.iter().all(|p| p.len() <= TEXT_PIECE_CHARS && !p.starts_with(' ') && !p.ends_with(' ')));
        assert_eq!(split.iter().map(|p| p.split(' ').count()).sum::<usize>(), 2_000);
        assert_eq!(pieces(&"x".repeat(10_000))[0].len(), TEXT_PIECE_CHARS);
    }
}
