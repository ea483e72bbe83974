//! Webhook POSTs over HTTPS under the one SSRF policy (`domain::net`). The URL is checked
//! first; every connection's addresses then come from a resolver that drops the disallowed
//! ones, so the connection goes to an address that was checked (a DNS answer cannot smuggle
//! in a private one). Redirects are not followed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::net::ip_allowed;
use domain::ports::{DeliveryOutcome, WebhookSender};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

struct GuardedResolver {
    allow_loopback: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs.iter().copied().filter(|a| ip_allowed(a.ip(), allow_loopback)).collect();
            if allowed.is_empty() {
                return Err(
                    Box::new(Refused(format!("{host} resolves only to disallowed addresses"))) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

pub struct HttpWebhookSender {
    client: reqwest::Client,
    allow_loopback: bool,
}

impl HttpWebhookSender {
    /// `allow_loopback` (http:// to this machine) is for local development against a
    /// receiver on this machine; production keeps it off.
    pub fn new(timeout: Duration, allow_loopback: bool) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent("GoViralNow-Webhooks/1")
            .dns_resolver(Arc::new(GuardedResolver { allow_loopback }))
            .build()
            .expect("the HTTP client builds");
        HttpWebhookSender { client, allow_loopback }
    }
}

fn refused_in_chain(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = Some(e);
    while let Some(err) = source {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Some(r.0.clone());
        }
        source = err.source();
    }
    None
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
                None => DeliveryOutcome::Failed { retryable: true, reason: format!("request failed: {}", domain::error::chain(&e)) },
            },
        }
    }
}
