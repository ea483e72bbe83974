//! The built web dashboard (`shared/dashboard/dist`), served by `goviral serve` at `/`. The
//! files are read once at start-up into memory (a build is well under a megabyte), so a
//! request can name nothing outside them. Paths that are not files (`/jobs/{id}`, `/compare`)
//! get the app's page, which routes in the browser; API paths never fall through to it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, Uri, header};

use crate::error::ApiError;

/// A build larger than this is not a dashboard build.
const MAX_TOTAL_BYTES: u64 = 32 * 1024 * 1024;
const MAX_FILES: usize = 1_000;

/// The page's policy: everything from this origin only; nothing may frame it.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; \
                   connect-src 'self'; manifest-src 'self'; worker-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

struct Asset {
    bytes: axum::body::Bytes,
    /// The same file gzipped at build time (`name.gz` beside it), for clients that take it.
    gzipped: Option<axum::body::Bytes>,
    content_type: &'static str,
}

pub struct Dashboard {
    files: HashMap<String, Asset>,
}

#[derive(Debug, thiserror::Error)]
#[error("the dashboard at {dir}: {reason}")]
pub struct DashboardError {
    dir: PathBuf,
    reason: String,
}

impl Dashboard {
    /// Reads a build (`index.html` and what it loads).
    pub fn load(dir: &Path) -> Result<Dashboard, DashboardError> {
        let fail = |reason: String| DashboardError { dir: dir.to_path_buf(), reason };
        let mut files = HashMap::new();
        let mut total = 0u64;
        let mut pending = vec![dir.to_path_buf()];
        while let Some(folder) = pending.pop() {
            for entry in std::fs::read_dir(&folder).map_err(|e| fail(e.to_string()))? {
                let entry = entry.map_err(|e| fail(e.to_string()))?;
                let path = entry.path();
                let kind = entry.file_type().map_err(|e| fail(e.to_string()))?;
                if kind.is_dir() {
                    pending.push(path);
                    continue;
                }
                if !kind.is_file() {
                    continue; // links are not followed
                }
                let bytes = std::fs::read(&path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
                total += bytes.len() as u64;
                if total > MAX_TOTAL_BYTES || files.len() >= MAX_FILES {
                    return Err(fail(format!("larger than {MAX_TOTAL_BYTES} bytes or {MAX_FILES} files")));
                }
                let relative = path.strip_prefix(dir).expect("under the dir").to_string_lossy().replace('\\', "/");
                files.insert(format!("/{relative}"), Asset { content_type: content_type(&relative), bytes: bytes.into(), gzipped: None });
            }
        }
        // `x.js.gz` is served in place of `x.js` to clients that accept gzip, never by its name.
        let gzipped: Vec<String> = files.keys().filter(|k| k.ends_with(".gz")).cloned().collect();
        for name in gzipped {
            let gz = files.remove(&name).expect("listed").bytes;
            if let Some(original) = files.get_mut(name.trim_end_matches(".gz")) {
                original.gzipped = Some(gz);
            }
        }
        if !files.contains_key("/index.html") {
            return Err(fail("no index.html: build it with `npm run build` in shared/dashboard".into()));
        }
        Ok(Dashboard { files })
    }

    /// The answer to a request no API route took.
    pub fn respond(&self, method: &Method, uri: &Uri, accept_encoding: Option<&HeaderValue>) -> Response {
        let path = uri.path();
        if path.starts_with("/api/") || path == "/api" || path.starts_with("/blobs/") || path == "/healthz" {
            return ApiError::NoRoute(path.to_string()).into_response();
        }
        if method != Method::GET && method != Method::HEAD {
            return ApiError::MethodNotAllowed.into_response();
        }
        let (name, asset) = match self.files.get_key_value(path) {
            Some((name, asset)) if name != "/index.html" => (name.as_str(), asset),
            // A file that is not there is a 404; any other path is a page of the app.
            _ if path.starts_with("/assets/") || path.rsplit('/').next().is_some_and(|last| last.contains('.')) => {
                return ApiError::NoRoute(path.to_string()).into_response();
            }
            _ => ("/index.html", &self.files["/index.html"]),
        };
        let gzipped = asset.gzipped.as_ref().filter(|_| accepts_gzip(accept_encoding));
        let bytes = gzipped.unwrap_or(&asset.bytes).clone();
        let body = if method == Method::HEAD { Body::empty() } else { Body::from(bytes) };
        let mut response = (StatusCode::OK, body).into_response();
        let h = response.headers_mut();
        if asset.gzipped.is_some() {
            h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        if gzipped.is_some() {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        // Vite names built assets by their hash: they never change. Everything else (the page,
        // the manifest, the service worker) is checked each time, so a new build shows at once.
        let cache = if name.starts_with("/assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
        h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
        if asset.content_type.starts_with("text/html") {
            h.insert("content-security-policy", HeaderValue::from_static(CSP));
            h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        }
        if name == "/sw.js" {
            // The service worker controls the whole app.
            h.insert("service-worker-allowed", HeaderValue::from_static("/"));
        }
        response
    }
}

/// Whether `Accept-Encoding` takes gzip (named, or `*`, and not with q=0).
fn accepts_gzip(header: Option<&HeaderValue>) -> bool {
    let Some(value) = header.and_then(|v| v.to_str().ok()) else { return false };
    value.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default();
        let refused = parts.any(|p| p.strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()).is_some_and(|q| q == 0.0));
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build() -> (PathBuf, Dashboard) {
        let dir = std::env::temp_dir().join(format!("gv-dashboard-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("assets")).unwrap();
        std::fs::write(dir.join("index.html"), "<!doctype html><title>app</title>").unwrap();
        std::fs::write(dir.join("assets/app-1a2b.js"), "console.log(1)").unwrap();
        std::fs::write(dir.join("assets/app-1a2b.js.gz"), "GZ").unwrap();
        std::fs::write(dir.join("sw.js"), "self").unwrap();
        let d = Dashboard::load(&dir).unwrap();
        (dir, d)
    }

    async fn get(d: &Dashboard, path: &str, gzip: bool) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let accept = HeaderValue::from_static("br;q=1, gzip;q=0.8");
        let r = d.respond(&Method::GET, &path.parse().unwrap(), gzip.then_some(&accept));
        let (parts, body) = r.into_parts();
        (parts.status, parts.headers, axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec())
    }

    #[tokio::test]
    async fn pages_route_to_the_app_and_nothing_else_falls_through() {
        let (dir, d) = build();
        // Any page of the app is the app (deep links), with its security headers.
        let (status, h, body) = get(&d, "/jobs/0190a0a0-0000-7000-8000-000000000000", false).await;
        assert_eq!((status, body.as_slice()), (StatusCode::OK, b"<!doctype html><title>app</title>".as_slice()));
        assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        // Hashed assets are immutable; gzip goes to clients that take it.
        let (status, h, body) = get(&d, "/assets/app-1a2b.js", true).await;
        assert_eq!((status, body.as_slice(), h[header::CONTENT_ENCODING].to_str().unwrap()), (StatusCode::OK, b"GZ".as_slice(), "gzip"));
        assert!(h[header::CACHE_CONTROL].to_str().unwrap().contains("immutable"));
        let (_, h, body) = get(&d, "/assets/app-1a2b.js", false).await;
        assert_eq!((body.as_slice(), h.get(header::CONTENT_ENCODING)), (b"console.log(1)".as_slice(), None));
        assert_eq!(h[header::VARY], "accept-encoding");
        // The .gz is not a file of its own; missing files and API paths are JSON 404s.
        for path in ["/assets/app-1a2b.js.gz", "/assets/gone.js", "/favicon.ico", "/api/v1/nope", "/blobs/x", "/healthz"] {
            let (status, h, _) = get(&d, path, true).await;
            assert_eq!((status, h[header::CONTENT_TYPE].to_str().unwrap()), (StatusCode::NOT_FOUND, "application/json"), "{path}");
        }
        let r = d.respond(&Method::POST, &"/jobs".parse().unwrap(), None);
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(!accepts_gzip(Some(&HeaderValue::from_static("gzip;q=0, identity"))));
        assert!(accepts_gzip(Some(&HeaderValue::from_static("*"))));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_folder_without_a_build_is_refused() {
        let dir = std::env::temp_dir().join(format!("gv-dashboard-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(Dashboard::load(&dir).err().unwrap().to_string().contains("npm run build"));
        assert!(Dashboard::load(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
