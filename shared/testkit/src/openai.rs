//! A mock OpenAI server on 127.0.0.1 (chat completions, audio transcriptions and moderations,
//! with the documented response bodies): scripted replies, every request kept.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this string as the assistant message's content.
    Content(String),
    /// An error status with OpenAI's error body.
    Status(u16),
    /// Answer only after this long.
    Hang(Duration),
}

pub struct MockOpenAi {
    pub base_url: String,
    requests: Arc<Mutex<Vec<Value>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    audio_script: Arc<Mutex<VecDeque<Reply>>>,
    audio_requests: Arc<Mutex<Vec<AudioRequest>>>,
    moderation_script: Arc<Mutex<VecDeque<Reply>>>,
    moderation_requests: Arc<Mutex<Vec<Value>>>,
    image_flag: Arc<Mutex<String>>,
}

/// What a transcription request carried.
#[derive(Debug, Clone)]
pub struct AudioRequest {
    pub model: Option<String>,
    pub response_format: Option<String>,
    /// The uploaded file's bytes.
    pub file: Vec<u8>,
}

/// `audio.transcriptions` with `response_format=verbose_json`, one segment per sentence of `text`
/// (2 s each), as OpenAI documents it.
pub fn verbose_transcription(text: &str) -> Value {
    let sentences: Vec<&str> = text.split_inclusive('.').map(str::trim).filter(|s| !s.is_empty()).collect();
    let segments: Vec<Value> = sentences
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({"id": i, "seek": 0, "start": i as f64 * 2.0, "end": i as f64 * 2.0 + 2.0, "text": format!(" {s}"),
            "tokens": [50364, 1], "temperature": 0.0, "avg_logprob": -0.2, "compression_ratio": 1.1, "no_speech_prob": 0.01})
        })
        .collect();
    json!({"task": "transcribe", "language": "english", "duration": sentences.len() as f64 * 2.0, "text": text, "segments": segments,
        "usage": {"type": "duration", "seconds": sentences.len() * 2}})
}

/// The HTTP answer to a scripted reply: `body(content)` with 200, OpenAI's error body with an
/// error status, or `body(late)` after the hang.
async fn answer(reply: Reply, body: fn(&str) -> Value, late: &str) -> axum::response::Response {
    match reply {
        Reply::Content(c) => (StatusCode::OK, axum::Json(body(&c))).into_response(),
        Reply::Status(code) => {
            let error = json!({"error": {"message": format!("mock {code}"), "type": "server_error", "param": null, "code": null}});
            (StatusCode::from_u16(code).unwrap(), axum::Json(error)).into_response()
        }
        Reply::Hang(d) => {
            tokio::time::sleep(d).await;
            (StatusCode::OK, axum::Json(body(late))).into_response()
        }
    }
}

/// A multipart body's named text fields and its file (the mock's own small parser).
fn parse_multipart(content_type: &str, body: &[u8]) -> AudioRequest {
    let boundary = content_type.split("boundary=").nth(1).unwrap_or_default().trim_matches('"');
    let marker = format!("--{boundary}");
    let mut request = AudioRequest { model: None, response_format: None, file: Vec::new() };
    let text = body;
    let mut parts = Vec::new();
    let mut start = 0;
    while let Some(pos) = find(&text[start..], marker.as_bytes()) {
        parts.push(&text[start..start + pos]);
        start += pos + marker.len();
    }
    for part in parts {
        let Some(split) = find(part, b"\r\n\r\n") else { continue };
        let (head, value) = (String::from_utf8_lossy(&part[..split]), &part[split + 4..]);
        let value = value.strip_suffix(b"\r\n").unwrap_or(value);
        if head.contains("name=\"model\"") {
            request.model = Some(String::from_utf8_lossy(value).into_owned());
        } else if head.contains("name=\"response_format\"") {
            request.response_format = Some(String::from_utf8_lossy(value).into_owned());
        } else if head.contains("name=\"file\"") {
            request.file = value.to_vec();
        }
    }
    request
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The 13 categories `omni-moderation-latest` scores.
const MODERATION_CATEGORIES: [&str; 13] = [
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
];

/// One moderation result as OpenAI documents it, flagging `flag` (none when empty) for an
/// input of `kind` (`text` or `image`).
fn moderation_result(flag: &str, kind: &str) -> Value {
    let mut categories = serde_json::Map::new();
    let mut scores = serde_json::Map::new();
    let mut applied = serde_json::Map::new();
    for c in MODERATION_CATEGORIES {
        categories.insert(c.into(), json!(c == flag));
        scores.insert(c.into(), json!(if c == flag { 0.93 } else { 0.0004 }));
        // Image inputs are scored on the categories OpenAI scores images on.
        let image_scored =
            ["self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "violence", "violence/graphic"].contains(&c);
        applied.insert(c.into(), if kind == "image" && !image_scored { json!([]) } else { json!([kind]) });
    }
    json!({"flagged": !flag.is_empty(), "categories": categories, "category_scores": scores, "category_applied_input_types": applied})
}

/// The answer to a moderation request: one result per input string, or one for a multi-modal
/// input. Unscripted, text containing "kill you" is flagged as violence, and an image input
/// gets `image_flag` (none when empty).
fn moderation(body: &Value, scripted: Option<&str>, image_flag: &str) -> Value {
    let input = &body["input"];
    let texts: Vec<String> = match input {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if items.iter().all(Value::is_string) => items.iter().filter_map(|i| i.as_str().map(String::from)).collect(),
        _ => Vec::new(),
    };
    let results: Vec<Value> = if texts.is_empty() {
        let parts = input.as_array().cloned().unwrap_or_default();
        let kind = if parts.iter().any(|p| p["type"] == "image_url") { "image" } else { "text" };
        let text: String = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        let unscripted = if kind == "image" {
            image_flag
        } else if text.to_lowercase().contains("kill you") {
            "violence"
        } else {
            ""
        };
        vec![moderation_result(scripted.unwrap_or(unscripted), kind)]
    } else {
        texts
            .iter()
            .map(|t| moderation_result(scripted.unwrap_or(if t.to_lowercase().contains("kill you") { "violence" } else { "" }), "text"))
            .collect()
    };
    json!({"id": "modr-mock", "model": "omni-moderation-2024-09-26", "results": results})
}

/// A reply that satisfies the schema.
pub fn valid_content() -> String {
    json!({
        "hook_rewrites": ["5 sourdough mistakes you're making (and the 1-minute fix)"],
        "recommendations": [
            {"category": "hook", "text": "Lead with \"5 mistakes\" and name the payoff in the same line."},
            {"category": "cta", "text": "Close with \"Which one did you make? Comment below.\""}
        ]
    })
    .to_string()
}

fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1795000000, "model": "gpt-test",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 321, "completion_tokens": 54, "total_tokens": 375}
    })
}

impl MockOpenAi {
    pub async fn start() -> MockOpenAi {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let (r, s) = (requests.clone(), script.clone());
        let audio_script = Arc::new(Mutex::new(VecDeque::new()));
        let audio_requests = Arc::new(Mutex::new(Vec::new()));
        let (ar, as_) = (audio_requests.clone(), audio_script.clone());
        let transcriptions = axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let (ar, as_) = (ar.clone(), as_.clone());
            async move {
                let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                ar.lock().unwrap().push(parse_multipart(&content_type, &body));
                let reply = as_.lock().unwrap().pop_front().unwrap_or_else(|| Reply::Content("Stop scrolling. This is the mock.".into()));
                answer(reply, verbose_transcription, "Too late.").await
            }
        });
        let moderation_script = Arc::new(Mutex::new(VecDeque::new()));
        let moderation_requests = Arc::new(Mutex::new(Vec::new()));
        let image_flag = Arc::new(Mutex::new(String::new()));
        let (mr, ms, mf) = (moderation_requests.clone(), moderation_script.clone(), image_flag.clone());
        let moderations = axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let (mr, ms, mf) = (mr.clone(), ms.clone(), mf.clone());
            async move {
                mr.lock().unwrap().push(body.clone());
                let flag = mf.lock().unwrap().clone();
                let reply = ms.lock().unwrap().pop_front();
                match reply {
                    None => (StatusCode::OK, axum::Json(moderation(&body, None, &flag))).into_response(),
                    Some(Reply::Content(scripted)) => {
                        (StatusCode::OK, axum::Json(moderation(&body, Some(&scripted), &flag))).into_response()
                    }
                    Some(other) => answer(other, |_| json!({}), "").await,
                }
            }
        });
        let app = axum::Router::new().route("/v1/moderations", moderations).route("/v1/audio/transcriptions", transcriptions).route(
            "/v1/chat/completions",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let (r, s) = (r.clone(), s.clone());
                async move {
                    r.lock().unwrap().push(body);
                    let reply = s.lock().unwrap().pop_front().unwrap_or_else(|| Reply::Content(valid_content()));
                    answer(reply, completion, &valid_content()).await
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        MockOpenAi { base_url, requests, script, audio_script, audio_requests, moderation_script, moderation_requests, image_flag }
    }

    /// Replies to the next transcription requests (then a default transcript).
    pub fn then_audio(&self, replies: impl IntoIterator<Item = Reply>) {
        self.audio_script.lock().unwrap().extend(replies);
    }

    pub fn audio_requests(&self) -> Vec<AudioRequest> {
        self.audio_requests.lock().unwrap().clone()
    }

    /// Replies to the next moderation requests: `Content(category)` flags that category
    /// (`Content("")` passes), or an error status, or a hang.
    pub fn then_moderation(&self, replies: impl IntoIterator<Item = Reply>) {
        self.moderation_script.lock().unwrap().extend(replies);
    }

    /// Every image moderated from now on is flagged with `category` (`""`: none).
    pub fn flag_images(&self, category: &str) {
        *self.image_flag.lock().unwrap() = category.to_string();
    }

    pub fn moderation_requests(&self) -> Vec<Value> {
        self.moderation_requests.lock().unwrap().clone()
    }

    pub fn then(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().extend(replies);
    }

    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}
