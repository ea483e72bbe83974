//! Webhook POSTs over HTTPS with SSRF protection. Every connection's addresses come from a
//! resolver that refuses loopback, private, link-local and metadata addresses (so a DNS
//! answer cannot smuggle one in); IP-literal URLs are checked before sending. Redirects are
//! not followed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::pipeline::{DeliveryOutcome, WebhookSender, ip_allowed};
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
    allow_http: bool,
}

impl HttpWebhookSender {
    /// `allow_loopback` and `allow_http` are for local development against a receiver on
    /// this machine; production keeps both off.
    pub fn new(timeout: Duration, allow_loopback: bool, allow_http: bool) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent("GoViralNow-Webhooks/1")
            .dns_resolver(Arc::new(GuardedResolver { allow_loopback }))
            .build()
            .expect("the HTTP client builds");
        HttpWebhookSender { client, allow_loopback, allow_http }
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
        let parsed = match reqwest::Url::parse(url) {
            Ok(u) => u,
            Err(e) => return DeliveryOutcome::Refused { reason: format!("not a URL: {e}") },
        };
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            other => return DeliveryOutcome::Refused { reason: format!("scheme {other} is not allowed") },
        }
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => return DeliveryOutcome::Refused { reason: "no host".into() },
        };
        if let Some(ip) = literal.filter(|ip| !ip_allowed(*ip, self.allow_loopback)) {
            return DeliveryOutcome::Refused { reason: format!("address {ip} is not allowed") };
        }
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
                None => DeliveryOutcome::Failed { retryable: true, reason: format!("request failed: {e}") },
            },
        }
    }
}
