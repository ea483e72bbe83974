//! What every outbound HTTP client shares under the one SSRF policy (`domain::net`): a
//! resolver that drops disallowed addresses, so a connection goes only to an address that
//! was checked (a DNS answer cannot smuggle in a private one), and the refusal it reports.

use std::net::SocketAddr;
use std::sync::Arc;

use domain::net::ip_allowed;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A target the policy refused (as opposed to one that failed).
#[derive(Debug)]
pub(crate) struct Refused(pub(crate) String);

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

/// A client builder that resolves through the guard and ignores proxy settings (a proxy
/// would connect on our behalf to addresses we never checked).
pub(crate) fn guarded_client(allow_loopback: bool) -> reqwest::ClientBuilder {
    reqwest::Client::builder().no_proxy().dns_resolver(Arc::new(GuardedResolver { allow_loopback }))
}

/// The policy's refusal, if that is what an error chain holds.
pub(crate) fn refused_in_chain(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = Some(e);
    while let Some(err) = source {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Some(r.0.clone());
        }
        source = err.source();
    }
    None
}
