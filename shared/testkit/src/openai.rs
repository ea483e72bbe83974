//! A mock OpenAI chat-completions server on 127.0.0.1: scripted replies, every request kept.

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
        let app = axum::Router::new().route(
            "/v1/chat/completions",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let (r, s) = (r.clone(), s.clone());
                async move {
                    r.lock().unwrap().push(body);
                    let reply = s.lock().unwrap().pop_front().unwrap_or_else(|| Reply::Content(valid_content()));
                    match reply {
                        Reply::Content(c) => (StatusCode::OK, axum::Json(completion(&c))).into_response(),
                        Reply::Status(code) => {
                            let body =
                                json!({"error": {"message": format!("mock {code}"), "type": "server_error", "param": null, "code": null}});
                            (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
                        }
                        Reply::Hang(d) => {
                            tokio::time::sleep(d).await;
                            (StatusCode::OK, axum::Json(completion(&valid_content()))).into_response()
                        }
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        MockOpenAi { base_url, requests, script }
    }

    pub fn then(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().extend(replies);
    }

    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}
