//! The embedded default's stand-in for S3's upload and download URLs: `PUT` and `GET` on
//! `/blobs/{key}` with a signature from `LocalUrlSigner`. A PUT that lands reports the new
//! object to the upload intake in-process, as S3's ObjectCreated event does on AWS. Served by
//! `goviral serve` only; on AWS clients talk to S3 directly.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use domain::Error;
use domain::ports::BlobStore;
use domain::ports::Store;
use goviral_local::signed_urls::{LocalUrlSigner, Refusal};
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};

#[derive(Clone)]
pub struct LocalBlobs {
    pub signer: Arc<LocalUrlSigner>,
    pub blobs: Arc<dyn BlobStore>,
    pub store: Arc<dyn Store>,
}

#[derive(Deserialize)]
pub(crate) struct Signature {
    expires: Option<i64>,
    signature: Option<String>,
}

fn check(blobs: &LocalBlobs, method: &str, key: &str, media_type: &str, bytes: Option<u64>, q: &Signature) -> ApiResult<()> {
    let (Some(expires), Some(signature)) = (q.expires, q.signature.as_deref()) else {
        return Err(Error::Forbidden("this URL is not signed; ask the API for an upload".into()).into());
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    blobs.signer.verify(method, key, media_type, bytes, expires, signature, now).map_err(|refusal| {
        ApiError::from(Error::Forbidden(match refusal {
            Refusal::Expired => "this URL has expired; ask the API for a new upload".into(),
            Refusal::BadSignature => {
                "the signature does not match this request: send the method, Content-Type and exact size it was made for".into()
            }
        }))
    })
}

pub(crate) async fn put(
    State(blobs): State<LocalBlobs>,
    Path(key): Path<String>,
    Query(q): Query<Signature>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let media_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let Some(length) = length else {
        return Err(Error::validation("content-length", "send the file with its exact Content-Length").into());
    };
    check(&blobs, "PUT", &key, media_type, Some(length), &q)?;
    // An upload is written once: after intake took it in, its URL takes nothing more.
    if let Some((_, id)) = domain::uploads::parse_storage_key(&key) {
        if blobs.store.upload(id).await?.is_some_and(|u| u.status != domain::model::UploadStatus::Pending) {
            return Err(Error::Conflict("this upload has already been received; ask the API for a new upload".into()).into());
        }
    }
    // Streamed to a staging file and hashed on the way; exactly the signed size or nothing.
    let mut reader = tokio_util::io::StreamReader::new(futures_util::TryStreamExt::map_err(body.into_data_stream(), std::io::Error::other));
    blobs.blobs.put_stream(&key, &mut reader, length, media_type).await?;
    // S3 would now emit ObjectCreated; here the intake runs before the client hears back, so
    // a failure is the client's to retry.
    let intake = domain::uploads::receive(blobs.store.as_ref(), blobs.blobs.as_ref(), &key, length).await?;
    tracing::info!(key, ?intake, "upload received");
    Ok(StatusCode::OK)
}

pub(crate) async fn get(State(blobs): State<LocalBlobs>, Path(key): Path<String>, Query(q): Query<Signature>) -> ApiResult<Response> {
    check(&blobs, "GET", &key, "", None, &q)?;
    let Some(bytes) = blobs.blobs.get(&key).await? else {
        return Err(Error::NotFound("blob").into());
    };
    let served = domain::uploads::served_as(&key);
    let media_type = match (served.content_type, domain::uploads::parse_upload_key(&key)) {
        (Some(t), _) => Some(t.to_string()),
        (None, Some((_, id))) => blobs.store.upload(id).await?.map(|u| u.media_type),
        (None, None) => None,
    };
    let media_type = media_type.unwrap_or_else(|| "application/octet-stream".into());
    // Served on the dashboard's own origin: never sniffed, never run, a download unless it
    // is a still the dashboard shows.
    let headers = [
        (header::CONTENT_TYPE, media_type),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        (header::CONTENT_SECURITY_POLICY, domain::uploads::SERVED_CSP.to_string()),
        (header::CONTENT_DISPOSITION, served.disposition.to_string()),
        (header::CACHE_CONTROL, "private, no-store".to_string()),
    ];
    Ok((headers, bytes).into_response())
}
