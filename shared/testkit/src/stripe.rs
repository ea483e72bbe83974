//! A fake of Stripe's Meters API on 127.0.0.1 that enforces the documented rules:
//! the secret key as bearer, form encoding, the required fields, an identifier used at most
//! once within 24 hours (400 "An event already exists with identifier …", as Stripe answers),
//! a timestamp within the past 35 days or 5 minutes ahead, and a cancel only of an event it
//! has, within 24 hours. Scripted 429s come first; every event and cancel is kept.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;

pub const API_KEY: &str = "sk_test_goviral_fake";

#[derive(Debug, Clone, PartialEq)]
pub struct MeterEvent {
    pub identifier: String,
    pub event_name: String,
    pub customer_id: String,
    pub value: String,
    pub timestamp: i64,
}

#[derive(Default)]
struct State {
    events: Vec<MeterEvent>,
    received_at: HashMap<String, i64>,
    cancelled: Vec<String>,
    script: VecDeque<u16>,
    requests: u64,
}

#[derive(Clone)]
pub struct FakeStripe {
    pub base_url: String,
    state: Arc<Mutex<State>>,
}

fn error(status: StatusCode, message: &str) -> axum::response::Response {
    (status, axum::Json(json!({"error": {"type": "invalid_request_error", "message": message}}))).into_response()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Checks what every request must carry; the form's fields when it does.
fn admitted(state: &Mutex<State>, headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, axum::response::Response> {
    let mut s = state.lock().unwrap();
    s.requests += 1;
    if let Some(code) = s.script.pop_front() {
        return Err(error(StatusCode::from_u16(code).unwrap(), "Too many requests hit the API too quickly."));
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {API_KEY}")) {
        return Err(error(StatusCode::UNAUTHORIZED, "Invalid API Key provided"));
    }
    if !headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "Invalid request (check that your POST content type is application/x-www-form-urlencoded)",
        ));
    }
    Ok(form_urlencoded::parse(body).into_owned().collect())
}

impl FakeStripe {
    pub async fn start() -> FakeStripe {
        let state = Arc::new(Mutex::new(State::default()));
        let (a, b) = (state.clone(), state.clone());
        let events = axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let state = a.clone();
            async move {
                let f = match admitted(&state, &headers, &body) {
                    Ok(f) => f,
                    Err(r) => return r,
                };
                let field = |k: &str| f.get(k).cloned().unwrap_or_default();
                for required in ["event_name", "payload[stripe_customer_id]", "payload[value]"] {
                    if field(required).is_empty() {
                        return error(StatusCode::BAD_REQUEST, &format!("Missing required param: {required}."));
                    }
                }
                if field("payload[value]").parse::<f64>().is_err() {
                    return error(StatusCode::BAD_REQUEST, "payload[value] must be a number");
                }
                let (identifier, now) = (field("identifier"), now());
                if identifier.len() > 100 {
                    return error(StatusCode::BAD_REQUEST, "identifier: at most 100 characters");
                }
                let timestamp = f.get("timestamp").and_then(|t| t.parse::<i64>().ok()).unwrap_or(now);
                if timestamp < now - 35 * 86_400 || timestamp > now + 300 {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "timestamp must be within the past 35 calendar days or up to 5 minutes in the future",
                    );
                }
                let mut s = state.lock().unwrap();
                if s.received_at.get(&identifier).is_some_and(|at| now - at < 86_400) {
                    return error(StatusCode::BAD_REQUEST, &format!("An event already exists with identifier {identifier}."));
                }
                s.received_at.insert(identifier.clone(), now);
                let event = MeterEvent {
                    identifier: identifier.clone(),
                    event_name: field("event_name"),
                    customer_id: field("payload[stripe_customer_id]"),
                    value: field("payload[value]"),
                    timestamp,
                };
                s.events.push(event.clone());
                let body = json!({"object": "billing.meter_event", "created": now, "event_name": event.event_name, "identifier": identifier,
                    "livemode": false, "payload": {"stripe_customer_id": event.customer_id, "value": event.value}, "timestamp": timestamp});
                (StatusCode::OK, axum::Json(body)).into_response()
            }
        });
        let adjustments = axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let state = b.clone();
            async move {
                let f = match admitted(&state, &headers, &body) {
                    Ok(f) => f,
                    Err(r) => return r,
                };
                if f.get("type").map(String::as_str) != Some("cancel") {
                    return error(StatusCode::BAD_REQUEST, "type must be cancel");
                }
                let identifier = f.get("cancel[identifier]").cloned().unwrap_or_default();
                let mut s = state.lock().unwrap();
                match s.received_at.get(&identifier) {
                    None => return error(StatusCode::BAD_REQUEST, &format!("No meter event with identifier {identifier}.")),
                    Some(at) if now() - at >= 86_400 => {
                        return error(StatusCode::BAD_REQUEST, "Meter events can only be cancelled within 24 hours.");
                    }
                    Some(_) => {}
                }
                s.cancelled.push(identifier.clone());
                let body = json!({"object": "billing.meter_event_adjustment", "type": "cancel", "cancel": {"identifier": identifier}, "status": "pending"});
                (StatusCode::OK, axum::Json(body)).into_response()
            }
        });
        let app = axum::Router::new().route("/v1/billing/meter_events", events).route("/v1/billing/meter_event_adjustments", adjustments);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeStripe { base_url, state }
    }

    /// The next requests are answered with these statuses (e.g. 429) before anything else.
    pub fn fail_next(&self, statuses: impl IntoIterator<Item = u16>) {
        self.state.lock().unwrap().script.extend(statuses);
    }

    pub fn events(&self) -> Vec<MeterEvent> {
        self.state.lock().unwrap().events.clone()
    }

    pub fn cancelled(&self) -> Vec<String> {
        self.state.lock().unwrap().cancelled.clone()
    }

    pub fn requests(&self) -> u64 {
        self.state.lock().unwrap().requests
    }
}
