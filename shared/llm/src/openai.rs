//! Insight rewrites by an OpenAI-compatible chat model: deterministic settings (temperature 0,
//! a fixed seed), a strict JSON schema, validation of what comes back, a timeout per attempt,
//! retries with exponential backoff and full jitter on 429/5xx/timeouts, and a circuit breaker
//! so a failing provider costs nothing while it is open.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage, CreateChatCompletionRequest, ResponseFormat,
    ResponseFormatJsonSchema,
};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::redact::redact;

#[derive(Debug, Clone)]
pub struct OpenAiSettings {
    pub base_url: String,
    pub api_key: String,
    pub model: String,
    pub timeout: Duration,
    pub max_attempts: u32,
    /// First retry waits up to this long; each later one up to twice the previous.
    pub backoff_base: Duration,
    /// Consecutive failed calls that open the breaker, and how long it stays open.
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
    pub seed: i64,
}

impl OpenAiSettings {
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>, model: impl Into<String>) -> OpenAiSettings {
        OpenAiSettings {
            base_url: base_url.into(),
            api_key: api_key.into(),
            model: model.into(),
            timeout: Duration::from_secs(8),
            max_attempts: 3,
            backoff_base: Duration::from_millis(250),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
            seed: 7,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("circuit open after repeated failures; on-device insights only")]
    CircuitOpen,
    #[error("rate limited by the provider (429)")]
    RateLimited,
    #[error("provider error {0}")]
    Server(u16),
    #[error("provider refused the request: {0}")]
    Rejected(String),
    #[error("no answer within {0} ms")]
    Timeout(u128),
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("output does not match the schema: {0}")]
    Malformed(String),
}

impl LlmError {
    fn retryable(&self) -> bool {
        matches!(self, LlmError::RateLimited | LlmError::Server(_) | LlmError::Timeout(_) | LlmError::Unreachable(_))
    }
}

/// What the model must return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrites {
    /// Rewritten opening lines, best first.
    pub hook_rewrites: Vec<String>,
    pub recommendations: Vec<Recommendation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recommendation {
    pub category: String,
    pub text: String,
}

const CATEGORIES: [&str; 5] = ["hook", "pacing", "emotion", "storytelling", "cta"];

fn schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["hook_rewrites", "recommendations"],
        "properties": {
            "hook_rewrites": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "string", "minLength": 1, "maxLength": 200}},
            "recommendations": {
                "type": "array", "minItems": 1, "maxItems": 10,
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["category", "text"],
                    "properties": {
                        "category": {"type": "string", "enum": CATEGORIES},
                        "text": {"type": "string", "minLength": 1, "maxLength": 300}
                    }
                }
            }
        }
    })
}

/// The schema's rules, checked on what came back (providers do not all enforce them).
pub fn validate(content: &str) -> Result<Rewrites, LlmError> {
    let r: Rewrites = serde_json::from_str(content).map_err(|e| LlmError::Malformed(e.to_string()))?;
    let bad = |m: String| Err(LlmError::Malformed(m));
    if !(1..=3).contains(&r.hook_rewrites.len()) {
        return bad(format!("{} hook rewrites, expected 1 to 3", r.hook_rewrites.len()));
    }
    if let Some(h) = r.hook_rewrites.iter().find(|h| h.trim().is_empty() || h.chars().count() > 200) {
        return bad(format!("hook rewrite of {} characters", h.chars().count()));
    }
    if !(1..=10).contains(&r.recommendations.len()) {
        return bad(format!("{} recommendations, expected 1 to 10", r.recommendations.len()));
    }
    for rec in &r.recommendations {
        if !CATEGORIES.contains(&rec.category.as_str()) {
            return bad(format!("unknown category {:?}", rec.category));
        }
        if rec.text.trim().is_empty() || rec.text.chars().count() > 300 {
            return bad(format!("recommendation of {} characters", rec.text.chars().count()));
        }
    }
    Ok(r)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub rewrites: Rewrites,
    pub usage: Option<Usage>,
    /// SHA-256 of the exact request sent (model, messages, schema, settings).
    pub prompt_hash: String,
    pub attempts: u32,
}

/// What the model is told about the content: the redacted text and the on-device findings.
#[derive(Debug, Clone, Serialize)]
pub struct Brief<'a> {
    pub text: &'a str,
    pub platform: Option<&'a str>,
    pub score: f64,
    pub findings: Vec<(&'a str, &'a str)>,
}

enum BreakerState {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One trial call is in flight.
    HalfOpen,
}

/// A circuit breaker: after `failures` failed calls in a row no call goes out for `cooldown`,
/// then one trial call decides.
pub(crate) struct Breaker {
    state: Mutex<BreakerState>,
    failures: u32,
    cooldown: Duration,
}

impl Breaker {
    pub(crate) fn new(settings: &OpenAiSettings) -> Breaker {
        Breaker {
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
            failures: settings.breaker_failures,
            cooldown: settings.breaker_cooldown,
        }
    }

    /// Whether a call may go out now; moves an expired open breaker to half-open.
    pub(crate) fn admit(&self) -> bool {
        let mut state = self.state.lock().unwrap();
        match *state {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { until } if Instant::now() >= until => {
                *state = BreakerState::HalfOpen;
                true
            }
            BreakerState::Open { .. } | BreakerState::HalfOpen => false,
        }
    }

    pub(crate) fn record(&self, ok: bool) {
        let mut state = self.state.lock().unwrap();
        *state = match (&*state, ok) {
            (_, true) => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, false) if failures + 1 < self.failures => BreakerState::Closed { failures: failures + 1 },
            (_, false) => {
                tracing::warn!(cooldown_s = self.cooldown.as_secs(), "OpenAI circuit opened");
                BreakerState::Open { until: Instant::now() + self.cooldown }
            }
        };
    }
}

/// Calls `call` until it succeeds, fails for good, or `max_attempts` are spent, waiting with
/// exponential backoff and full jitter between attempts; returns the outcome and the attempts.
pub(crate) async fn with_retries<T, Fut>(settings: &OpenAiSettings, mut call: impl FnMut() -> Fut) -> (Result<T, LlmError>, u32)
where
    Fut: std::future::Future<Output = Result<T, LlmError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = match tokio::time::timeout(settings.timeout, call()).await {
            Err(_) => Err(LlmError::Timeout(settings.timeout.as_millis())),
            Ok(outcome) => outcome,
        };
        match outcome {
            Err(e) if e.retryable() && attempt < settings.max_attempts => {
                let cap = settings.backoff_base.as_millis() as u64 * (1 << (attempt - 1));
                let delay = rand::rng().random_range(0..=cap.max(1));
                tracing::info!(attempt, error = %e, delay_ms = delay, "OpenAI call failed; retrying");
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            other => return (other, attempt),
        }
    }
}

/// A client for `settings` on the plain transport: async-openai's default one retries on its
/// own (up to 3 times, no jitter), which would hide attempts from the timeout, the backoff
/// and the breaker.
pub(crate) fn client(settings: &OpenAiSettings) -> Client<OpenAIConfig> {
    let config = OpenAIConfig::new().with_api_base(settings.base_url.trim_end_matches('/')).with_api_key(settings.api_key.clone());
    let transport = async_openai::middleware::ReqwestService::new(reqwest::Client::new());
    Client::with_config(config).with_http_service(transport)
}

pub struct OpenAiRewriter {
    client: Client<OpenAIConfig>,
    settings: OpenAiSettings,
    breaker: Breaker,
}

const SYSTEM_PROMPT: &str = "You are an editor for short social content. Given a post and the findings of a virality model, \
reply with JSON only, matching the schema: up to 3 rewritten opening lines that keep the author's meaning and facts, and \
specific recommendations (each tied to one category: hook, pacing, emotion, storytelling, cta) that quote or refer to the \
post's own words. Never invent facts, numbers or names. Placeholders like [email] or [link] stand for removed personal data: \
keep them as they are.";

impl OpenAiRewriter {
    pub fn new(settings: OpenAiSettings) -> OpenAiRewriter {
        OpenAiRewriter { client: client(&settings), breaker: Breaker::new(&settings), settings }
    }

    pub fn model(&self) -> &str {
        &self.settings.model
    }

    // `seed` is deprecated upstream but still honoured on a best-effort basis; with
    // temperature 0 it is what makes answers repeatable.
    #[allow(deprecated)]
    fn request(&self, brief: &Brief<'_>) -> CreateChatCompletionRequest {
        let redacted = redact(brief.text);
        let user = json!({
            "post": redacted,
            "platform": brief.platform,
            "model_score": brief.score,
            "findings": brief.findings.iter().map(|(c, m)| json!({"category": c, "finding": redact(m)})).collect::<Vec<_>>(),
        });
        CreateChatCompletionRequest {
            model: self.settings.model.clone(),
            messages: vec![
                ChatCompletionRequestSystemMessage::from(SYSTEM_PROMPT).into(),
                ChatCompletionRequestUserMessage::from(user.to_string().as_str()).into(),
            ],
            temperature: Some(0.0),
            seed: Some(self.settings.seed),
            max_completion_tokens: Some(600),
            response_format: Some(ResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    name: "insight_rewrites".into(),
                    description: Some("Rewritten hooks and specific recommendations".into()),
                    schema: schema(),
                    strict: Some(true),
                },
            }),
            ..Default::default()
        }
    }

    pub async fn rewrite(&self, brief: &Brief<'_>) -> Result<Answer, LlmError> {
        if !self.breaker.admit() {
            return Err(LlmError::CircuitOpen);
        }
        let request = self.request(brief);
        let prompt_hash = domain::auth::sha256_hex(serde_json::to_string(&request).expect("request serialises").as_bytes());
        let (result, attempts) = with_retries(&self.settings, || async {
            let response = self.client.chat().create(request.clone()).await.map_err(classify)?;
            let usage = response.usage.as_ref().map(|u| Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                total_tokens: u.total_tokens,
            });
            match response.choices.into_iter().next().map(|c| c.message) {
                None => Err(LlmError::Malformed("no choices".into())),
                Some(m) if m.refusal.is_some() => Err(LlmError::Rejected(m.refusal.unwrap_or_default())),
                Some(m) => validate(m.content.as_deref().unwrap_or("")).map(|rewrites| (rewrites, usage)),
            }
        })
        .await;
        self.breaker.record(result.is_ok());
        let (rewrites, usage) = result?;
        Ok(Answer { rewrites, usage, prompt_hash, attempts })
    }
}

pub(crate) fn classify(e: OpenAIError) -> LlmError {
    match e {
        OpenAIError::ApiError(api) => match api.status_code.as_u16() {
            429 => LlmError::RateLimited,
            s if s >= 500 => LlmError::Server(s),
            s => LlmError::Rejected(format!("{s} {}", api.api_error.message)),
        },
        OpenAIError::Reqwest(e) if e.is_timeout() => LlmError::Timeout(0),
        OpenAIError::Reqwest(e) => match e.status() {
            Some(s) if s.as_u16() == 429 => LlmError::RateLimited,
            Some(s) if s.is_server_error() => LlmError::Server(s.as_u16()),
            _ => LlmError::Unreachable(e.to_string()),
        },
        OpenAIError::JSONDeserialize(e, _) => LlmError::Malformed(format!("response body: {e}")),
        other => LlmError::Unreachable(other.to_string()),
    }
}
