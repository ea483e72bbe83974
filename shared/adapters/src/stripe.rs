//! Stripe's Meters API as the billing export's sink: `POST /v1/billing/meter_events` and
//! `POST /v1/billing/meter_event_adjustments` (cancel), form-encoded, with the secret key as
//! bearer. Stripe's answers are sorted into sent, already sent (it refuses an identifier it
//! has seen: 400 "An event already exists with identifier …"), retry later (429, 5xx, no
//! answer) and refused for good (any other 4xx, e.g. a timestamp older than 35 days).

use std::time::Duration;

use async_trait::async_trait;
use domain::billing::{MeterAction, MeterItem, MeterOutcome, MeterSink};

#[derive(Debug, Clone, PartialEq)]
pub struct StripeSettings {
    /// `https://api.stripe.com` (a loopback fake in tests).
    pub base_url: String,
    pub api_key: String,
    /// The meter's `event_name`.
    pub event_name: String,
    pub timeout: Duration,
}

pub struct StripeMeters {
    settings: StripeSettings,
    client: reqwest::Client,
}

impl StripeMeters {
    pub fn new(settings: StripeSettings) -> StripeMeters {
        let client = reqwest::Client::builder().timeout(settings.timeout).build().expect("a TLS client");
        StripeMeters { settings, client }
    }
}

/// `key=value&…`, each part percent-encoded.
fn form(fields: &[(&str, String)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        out.append_pair(k, v);
    }
    out.finish()
}

#[async_trait]
impl MeterSink for StripeMeters {
    async fn send(&self, item: &MeterItem) -> MeterOutcome {
        let s = &self.settings;
        let identifier = item.identifier.to_string();
        let (path, body, kind) = match &item.action {
            MeterAction::Event { customer_id, units, at } => (
                "/v1/billing/meter_events",
                form(&[
                    ("event_name", s.event_name.clone()),
                    ("payload[stripe_customer_id]", customer_id.clone()),
                    ("payload[value]", units.to_string()),
                    ("identifier", identifier.clone()),
                    ("timestamp", at.unix_timestamp().to_string()),
                ]),
                "event",
            ),
            MeterAction::Cancel => (
                "/v1/billing/meter_event_adjustments",
                form(&[("event_name", s.event_name.clone()), ("type", "cancel".into()), ("cancel[identifier]", identifier.clone())]),
                "cancel",
            ),
        };
        let sent = self
            .client
            .post(format!("{}{path}", s.base_url.trim_end_matches('/')))
            .bearer_auth(&s.api_key)
            .header("content-type", "application/x-www-form-urlencoded")
            // Stripe's own replay protection for the request, on top of the identifier.
            .header("idempotency-key", format!("goviral-{kind}-{identifier}"))
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return MeterOutcome::Retry(format!("Stripe did not answer: {}", domain::error::chain(&e))),
        };
        let status = response.status();
        if status.is_success() {
            return MeterOutcome::Sent;
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(String::from))
            .unwrap_or_else(|| text.chars().take(200).collect());
        match status.as_u16() {
            400 if message.contains("already exists") => MeterOutcome::AlreadySent,
            429 | 500..=599 => MeterOutcome::Retry(format!("Stripe answered {status}: {message}")),
            _ => MeterOutcome::Refused(format!("Stripe answered {status}: {message}")),
        }
    }
}
