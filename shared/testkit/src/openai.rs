//! A mock OpenAI server on 127.0.0.1 (chat completions and audio transcriptions, with the
//! documented response bodies): scripted replies, every request kept.

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
        let app = axum::Router::new().route("/v1/audio/transcriptions", transcriptions).route(
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
        MockOpenAi { base_url, requests, script, audio_script, audio_requests }
    }

    /// Replies to the next transcription requests (then a default transcript).
    pub fn then_audio(&self, replies: impl IntoIterator<Item = Reply>) {
        self.audio_script.lock().unwrap().extend(replies);
    }

    pub fn audio_requests(&self) -> Vec<AudioRequest> {
        self.audio_requests.lock().unwrap().clone()
    }

    pub fn then(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().extend(replies);
    }

    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}
