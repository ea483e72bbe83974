//! Webhook POSTs over HTTPS under the one SSRF policy (`domain::net`). The URL is checked
//! first; every connection's addresses then come from a resolver that drops the disallowed
//! ones, so the connection goes to an address that was checked (a DNS answer cannot smuggle
//! in a private one). Redirects are not followed.

use std::time::Duration;

use async_trait::async_trait;
use domain::ports::{DeliveryOutcome, WebhookSender};

use crate::outbound::{guarded_client, refused_in_chain};

pub struct HttpWebhookSender {
    client: reqwest::Client,
    allow_loopback: bool,
}

impl HttpWebhookSender {
    /// `allow_loopback` (http:// to this machine) is for local development against a
    /// receiver on this machine; production keeps it off.
    pub fn new(timeout: Duration, allow_loopback: bool) -> Self {
        let client = guarded_client(allow_loopback)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("GoViralNow-Webhooks/1")
            .build()
            .expect("the HTTP client builds");
        HttpWebhookSender { client, allow_loopback }
    }
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn post(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> DeliveryOutcome {
        let parsed = match domain::net::check_target_url(url, self.allow_loopback) {
            Ok(u) => u,
            Err(reason) => return DeliveryOutcome::Refused { reason },
        };
        let mut request = self.client.post(parsed).body(body.to_vec());
        for (k, v) in headers {
            request = request.header(k, v);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match status {
                    200..=299 => DeliveryOutcome::Delivered { status },
                    // 4xx other than 408/429 will not improve by retrying.
                    408 | 429 | 500..=599 => DeliveryOutcome::Failed { retryable: true, reason: format!("receiver answered {status}") },
                    _ => DeliveryOutcome::Failed { retryable: false, reason: format!("receiver answered {status}") },
                }
            }
            Err(e) => match refused_in_chain(&e) {
                Some(reason) => DeliveryOutcome::Refused { reason },
                // Without the URL: a Slack- or Discord-style target carries its secret in the path.
                None => DeliveryOutcome::Failed {
                    retryable: true,
                    reason: format!("request failed: {}", domain::error::chain(&e.without_url())),
                },
            },
        }
    }
}
