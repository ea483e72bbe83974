//! Signed blob URLs on the embedded default: the local server's `/blobs/{key}` route plays
//! S3's part, and an HMAC over the method, key, declared type and size, and expiry plays
//! SigV4's. A URL works for exactly the request it was signed for, until it expires.

use std::time::Duration;

use async_trait::async_trait;
use domain::Result;
use domain::ports::{SignedRequest, UrlSigner};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Where the local server serves blobs.
pub const ROUTE_PREFIX: &str = "/blobs/";

pub struct LocalUrlSigner {
    /// How clients reach the server, e.g. `http://127.0.0.1:8080`.
    base_url: String,
    key: Vec<u8>,
}

/// Why a signed request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Expired,
    BadSignature,
}

impl LocalUrlSigner {
    /// `secret`: any server secret; the signing key is derived from it so it signs nothing else.
    pub fn new(base_url: impl Into<String>, secret: &[u8]) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(b"goviral local blob urls v1");
        LocalUrlSigner { base_url: base_url.into().trim_end_matches('/').to_string(), key: mac.finalize().into_bytes().to_vec() }
    }

    /// The MAC of everything a request may not change.
    fn mac(&self, method: &str, key: &str, media_type: &str, bytes: Option<u64>, expires: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        let bytes = bytes.map(|b| b.to_string()).unwrap_or_default();
        mac.update(format!("{method}\n{key}\n{media_type}\n{bytes}\n{expires}").as_bytes());
        mac
    }

    fn sign(&self, method: &str, key: &str, media_type: &str, bytes: Option<u64>, expires_in: Duration) -> SignedRequest {
        let expires_at = domain::model::now() + expires_in;
        let expires = expires_at.unix_timestamp();
        let sig = hex::encode(self.mac(method, key, media_type, bytes, expires).finalize().into_bytes());
        let mut headers = std::collections::BTreeMap::new();
        if method == "PUT" {
            headers.insert("content-type".to_string(), media_type.to_string());
        }
        let url = format!("{}{ROUTE_PREFIX}{key}?expires={expires}&signature={sig}", self.base_url);
        SignedRequest { method: method.into(), url, headers, expires_at }
    }

    /// Checks a request against its signature: `media_type` and `bytes` are what the request
    /// carries (a PUT), empty and None for a GET.
    pub fn verify(
        &self,
        method: &str,
        key: &str,
        media_type: &str,
        bytes: Option<u64>,
        expires: i64,
        signature: &str,
        now_unix: i64,
    ) -> Result<(), Refusal> {
        let given = hex::decode(signature).map_err(|_| Refusal::BadSignature)?;
        // Constant-time comparison, then expiry: a forged URL learns nothing from timing.
        self.mac(method, key, media_type, bytes, expires).verify_slice(&given).map_err(|_| Refusal::BadSignature)?;
        if now_unix >= expires { Err(Refusal::Expired) } else { Ok(()) }
    }
}

#[async_trait]
impl UrlSigner for LocalUrlSigner {
    async fn sign_put(&self, key: &str, media_type: &str, bytes: u64, expires_in: Duration) -> Result<SignedRequest> {
        Ok(self.sign("PUT", key, media_type, Some(bytes), expires_in))
    }

    async fn sign_get(&self, key: &str, expires_in: Duration) -> Result<SignedRequest> {
        Ok(self.sign("GET", key, "", None, expires_in))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(url: &str) -> (i64, String) {
        let q = url.split_once('?').unwrap().1;
        let mut expires = 0;
        let mut sig = String::new();
        for pair in q.split('&') {
            match pair.split_once('=').unwrap() {
                ("expires", v) => expires = v.parse().unwrap(),
                ("signature", v) => sig = v.to_string(),
                _ => {}
            }
        }
        (expires, sig)
    }

    #[tokio::test]
    async fn a_url_works_only_for_what_it_was_signed_for() {
        let signer = LocalUrlSigner::new("http://127.0.0.1:8080/", b"server secret");
        let put = signer.sign_put("uploads/a/b", "video/mp4", 10, Duration::from_secs(60)).await.unwrap();
        assert!(put.url.starts_with("http://127.0.0.1:8080/blobs/uploads/a/b?"));
        assert_eq!(put.headers["content-type"], "video/mp4");
        let (expires, sig) = query(&put.url);
        let now = expires - 30;
        assert_eq!(signer.verify("PUT", "uploads/a/b", "video/mp4", Some(10), expires, &sig, now), Ok(()));
        for (method, key, media, bytes) in [
            ("GET", "uploads/a/b", "video/mp4", Some(10)),
            ("PUT", "uploads/a/c", "video/mp4", Some(10)),
            ("PUT", "uploads/a/b", "text/plain", Some(10)),
            ("PUT", "uploads/a/b", "video/mp4", Some(11)),
        ] {
            assert_eq!(
                signer.verify(method, key, media, bytes, expires, &sig, now),
                Err(Refusal::BadSignature),
                "{method} {key} {media} {bytes:?}"
            );
        }
        assert_eq!(signer.verify("PUT", "uploads/a/b", "video/mp4", Some(10), expires + 1, &sig, now), Err(Refusal::BadSignature));
        assert_eq!(signer.verify("PUT", "uploads/a/b", "video/mp4", Some(10), expires, &sig, expires), Err(Refusal::Expired));
        assert_eq!(signer.verify("PUT", "uploads/a/b", "video/mp4", Some(10), expires, "zz", now), Err(Refusal::BadSignature));
        // Another server secret signs differently.
        let other = LocalUrlSigner::new("http://127.0.0.1:8080", b"another secret");
        assert_eq!(other.verify("PUT", "uploads/a/b", "video/mp4", Some(10), expires, &sig, now), Err(Refusal::BadSignature));
    }
}
