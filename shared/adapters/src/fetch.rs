//! Videos by URL (`source_url`), downloaded under the one SSRF policy: the URL is checked,
//! every connection goes through the guarded resolver, each redirect is checked again before
//! it is followed, and the download is bounded in bytes and in time. The type is decided by
//! the file's first bytes; a web page, an image or audio is refused before the rest is read.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use domain::media::{SNIFF_BYTES, Sniffed, sniff};
use domain::ports::{FetchedMedia, MediaFetcher};
use domain::{Error, Result};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::outbound::{Refused, guarded_client, refused_in_chain};

const MAX_REDIRECTS: usize = 5;
const MIB: f64 = 1024.0 * 1024.0;

pub struct HttpMediaFetcher {
    client: reqwest::Client,
    allow_loopback: bool,
    max_bytes: u64,
    timeout: Duration,
    /// Bytes per second, judged over each `rate_window`; 0 judges nothing.
    min_rate: u64,
    /// A server must answer, and then send at least `min_rate`'s worth of bytes, in every
    /// window this long.
    rate_window: Duration,
}

impl HttpMediaFetcher {
    /// A download may take `timeout` in all and hold at most `max_bytes`. `allow_loopback`
    /// (http:// to this machine) is for local development only.
    pub fn new(timeout: Duration, max_bytes: u64, allow_loopback: bool) -> Self {
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(Refused(format!("more than {MAX_REDIRECTS} redirects")));
            }
            match domain::net::check_target_url(attempt.url().as_str(), allow_loopback) {
                Ok(_) => attempt.follow(),
                Err(why) => {
                    let reason = format!("redirected to {}, which {why}", attempt.url());
                    attempt.error(Refused(reason))
                }
            }
        });
        let client = guarded_client(allow_loopback)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(redirects)
            .user_agent("GoViralNow-Fetch/1")
            .build()
            .expect("the HTTP client builds");
        HttpMediaFetcher { client, allow_loopback, max_bytes, timeout, min_rate: 0, rate_window: Duration::from_secs(10) }
    }

    /// Gives a download up when it brings less than `bytes_per_sec` over a `window` (or no
    /// answer within one): a server trickling bytes gets a clear refusal in seconds instead
    /// of holding a download place until the timeout.
    pub fn with_min_rate(mut self, bytes_per_sec: u64, window: Duration) -> Self {
        self.min_rate = bytes_per_sec;
        self.rate_window = window.max(Duration::from_millis(100));
        self
    }

    fn too_slow(&self) -> Error {
        Error::validation(
            "source_url",
            format!(
                "the media server sent under {} KiB/s for {} s; upload the file instead",
                self.min_rate / 1024,
                self.rate_window.as_secs_f64()
            ),
        )
    }

    async fn download(&self, url: reqwest::Url, dest: &Path) -> Result<FetchedMedia> {
        let judged = self.min_rate > 0;
        let send = self.client.get(url).send();
        let response = if judged { tokio::time::timeout(self.rate_window, send).await.map_err(|_| self.too_slow())? } else { send.await };
        let response = response.map_err(request_error)?;
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(status));
        }
        if let Some(len) = response.content_length().filter(|len| *len > self.max_bytes) {
            return Err(too_big(len, self.max_bytes));
        }
        let mut response = response;
        let mut file = tokio::fs::File::create(dest).await.map_err(|e| Error::Unavailable(format!("writing the download: {e}")))?;
        let (mut hasher, mut bytes, mut head, mut media_type) = (Sha256::new(), 0u64, Vec::with_capacity(SNIFF_BYTES), None);
        let (mut window_start, mut window_bytes) = (tokio::time::Instant::now(), 0u64);
        loop {
            let next = if judged {
                match tokio::time::timeout_at(window_start + self.rate_window, response.chunk()).await {
                    Ok(next) => Some(next.map_err(request_error)?),
                    Err(_) => None, // the window ended with nothing more
                }
            } else {
                Some(response.chunk().await.map_err(request_error)?)
            };
            let chunk = match next {
                Some(Some(chunk)) => chunk,
                Some(None) => break,
                None => Default::default(),
            };
            if judged {
                window_bytes += chunk.len() as u64;
                let now = tokio::time::Instant::now();
                if now >= window_start + self.rate_window {
                    if (window_bytes as f64) < self.min_rate as f64 * self.rate_window.as_secs_f64() {
                        return Err(self.too_slow());
                    }
                    (window_start, window_bytes) = (now, 0);
                }
            }
            if chunk.is_empty() {
                continue;
            }
            bytes += chunk.len() as u64;
            if bytes > self.max_bytes {
                return Err(too_big(bytes, self.max_bytes));
            }
            if media_type.is_none() {
                head.extend_from_slice(&chunk[..chunk.len().min(SNIFF_BYTES - head.len())]);
                if head.len() == SNIFF_BYTES {
                    media_type = Some(video_type(&head)?); // refused before the rest is read
                }
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(|e| Error::Unavailable(format!("writing the download: {e}")))?;
        }
        file.flush().await.map_err(|e| Error::Unavailable(format!("writing the download: {e}")))?;
        if bytes == 0 {
            return Err(Error::validation("source_url", "the URL gave an empty file"));
        }
        let media_type = match media_type {
            Some(t) => t,
            None => video_type(&head)?, // a file shorter than the sniff window
        };
        Ok(FetchedMedia { bytes, sha256: hex::encode(hasher.finalize()), media_type: media_type.to_string() })
    }
}

fn video_type(head: &[u8]) -> Result<&'static str> {
    match sniff(head) {
        Sniffed::Video(t) => Ok(t),
        other => Err(Error::validation("source_url", other.refusal().unwrap_or_default())),
    }
}

fn too_big(bytes: u64, max: u64) -> Error {
    Error::validation(
        "source_url",
        format!("the file is over {:.0} MiB (it sent {:.0} MiB); upload a shorter or smaller video", max as f64 / MIB, bytes as f64 / MIB),
    )
}

fn status_error(status: reqwest::StatusCode) -> Error {
    let code = status.as_u16();
    match code {
        // The server may recover: the stage is retried.
        408 | 425 | 429 | 500..=599 => Error::Unavailable(format!("the media server answered {status}")),
        401 | 403 => Error::validation("source_url", format!("the media server refused access ({status}): the link must be public")),
        404 | 410 => Error::validation("source_url", format!("the media server has no file at that URL ({status}): check the link")),
        _ => Error::validation("source_url", format!("the media server answered {status}")),
    }
}

fn request_error(e: reqwest::Error) -> Error {
    if let Some(reason) = refused_in_chain(&e) {
        return Error::validation("source_url", format!("not fetched: {reason}; only public addresses are fetched"));
    }
    if e.is_redirect() {
        return Error::validation("source_url", format!("the redirects could not be followed: {}", domain::error::chain(&e)));
    }
    Error::Unavailable(format!("fetching the video failed: {}", domain::error::chain(&e)))
}

#[async_trait]
impl MediaFetcher for HttpMediaFetcher {
    async fn fetch(&self, url: &str, dest: &Path) -> Result<FetchedMedia> {
        let parsed = domain::net::check_target_url(url, self.allow_loopback).map_err(|why| Error::validation("source_url", why))?;
        match tokio::time::timeout(self.timeout, self.download(parsed, dest)).await {
            Ok(result) => result,
            // A server that never finishes is a property of the link, not a passing fault.
            Err(_) => Err(Error::validation(
                "source_url",
                format!("the download did not finish within {} s; upload the file instead", self.timeout.as_secs_f64().ceil()),
            )),
        }
    }
}
