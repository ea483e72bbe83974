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
                files.insert(format!("/{relative}"), Asset { content_type: content_type(&relative), bytes: bytes.into() });
            }
        }
        if !files.contains_key("/index.html") {
            return Err(fail("no index.html: build it with `npm run build` in shared/dashboard".into()));
        }
        Ok(Dashboard { files })
    }

    /// The answer to a request no API route took.
    pub fn respond(&self, method: &Method, uri: &Uri) -> Response {
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
        let body = if method == Method::HEAD { Body::empty() } else { Body::from(asset.bytes.clone()) };
        let mut response = (StatusCode::OK, body).into_response();
        let h = response.headers_mut();
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
