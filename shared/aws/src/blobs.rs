//! Blobs in S3: the claim-check documents stages pass by key, and presigned URLs that let
//! clients put and fetch uploads without the bytes passing through a function.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use aws_sdk_s3::primitives::ByteStream;
use domain::Result;
use domain::ports::{BlobDigest, BlobStore};
use domain::ports::{SignedRequest, UrlSigner};

use crate::unavailable;

/// Blobs in S3.
#[derive(Clone)]
pub struct S3BlobStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3BlobStore {
    /// `path_style` for emulators that do not serve virtual-hosted buckets.
    pub fn new(config: &aws_config::SdkConfig, bucket: impl Into<String>, path_style: bool) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(path_style).build();
        S3BlobStore { client: aws_sdk_s3::Client::from_conf(s3), bucket: bucket.into() }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| unavailable("s3 put", aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => {
                let bytes = out.body.collect().await.map_err(|e| unavailable("s3 read", e))?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(unavailable("s3 get", aws_sdk_s3::error::DisplayErrorContext(e))),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        // S3 answers a missing key with success too.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| unavailable("s3 delete", aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    async fn copy(&self, from: &str, to: &str) -> Result<bool> {
        // Keys are plain ASCII segments (ids and prefixes), so the source needs no escaping.
        let copied = self.client.copy_object().bucket(&self.bucket).key(to).copy_source(format!("{}/{from}", self.bucket)).send().await;
        match copied {
            Ok(_) => Ok(true),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
            Err(e) => Err(unavailable("s3 copy", aws_sdk_s3::error::DisplayErrorContext(e))),
        }
    }

    async fn put_file(&self, key: &str, file: &std::path::Path, content_type: &str) -> Result<()> {
        // Read from disk as it is sent: a fetched video is never whole in memory.
        let body = ByteStream::from_path(file).await.map_err(|e| unavailable("reading the file to store", e))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| unavailable("s3 put", aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    async fn fetch_to(&self, key: &str, dest: &std::path::Path) -> Result<bool> {
        use tokio::io::AsyncWriteExt;
        let mut out = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(false),
            Err(e) => return Err(unavailable("s3 get", aws_sdk_s3::error::DisplayErrorContext(e))),
        };
        // Chunk by chunk to disk: the video is never whole in memory.
        let mut file = tokio::fs::File::create(dest).await.map_err(|e| unavailable("writing the download", e))?;
        while let Some(chunk) = out.body.try_next().await.map_err(|e| unavailable("s3 read", e))? {
            file.write_all(&chunk).await.map_err(|e| unavailable("writing the download", e))?;
        }
        file.flush().await.map_err(|e| unavailable("writing the download", e))?;
        Ok(true)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(unavailable("s3 head", aws_sdk_s3::error::DisplayErrorContext(e))),
        }
    }

    async fn digest(&self, key: &str) -> Result<Option<BlobDigest>> {
        use sha2::Digest;
        let mut out = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(unavailable("s3 get", aws_sdk_s3::error::DisplayErrorContext(e))),
        };
        // Chunk by chunk: a 512 MiB video never sits whole in a Lambda's memory.
        let (mut hasher, mut bytes) = (sha2::Sha256::new(), 0u64);
        while let Some(chunk) = out.body.try_next().await.map_err(|e| unavailable("s3 read", e))? {
            hasher.update(&chunk);
            bytes += chunk.len() as u64;
        }
        Ok(Some(BlobDigest { bytes, sha256: hex::encode(hasher.finalize()) }))
    }
}

/// Presigned S3 requests (SigV4 in the query string). A URL signed with a Lambda's temporary
/// credentials stops working when they expire, whichever comes first.
#[async_trait]
impl UrlSigner for S3BlobStore {
    async fn sign_put(&self, key: &str, media_type: &str, bytes: u64, expires_in: Duration) -> Result<SignedRequest> {
        let length = i64::try_from(bytes).map_err(|_| domain::Error::validation("size_bytes", "too large"))?;
        // Content type and length are signed: S3 refuses a PUT that differs from the
        // declaration. `If-None-Match: *` is signed too: S3 refuses to overwrite an object
        // that arrived, so an upload is written once.
        let presigned = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(media_type)
            .content_length(length)
            .if_none_match("*")
            .presigned(presigning(expires_in)?)
            .await
            .map_err(|e| unavailable("s3 presign", aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(signed(&presigned, expires_in))
    }

    async fn sign_get(&self, key: &str, expires_in: Duration) -> Result<SignedRequest> {
        // S3 answers with the disposition and type named in the signed URL, so a download
        // is a download there too (S3 sends no sniffing or script policy of its own: its
        // origin is the bucket's, not the dashboard's).
        let served = domain::uploads::served_as(key);
        let presigned = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_disposition(served.disposition)
            .set_response_content_type(served.content_type.map(str::to_string))
            .presigned(presigning(expires_in)?)
            .await
            .map_err(|e| unavailable("s3 presign", aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(signed(&presigned, expires_in))
    }
}

fn presigning(expires_in: Duration) -> Result<PresigningConfig> {
    PresigningConfig::expires_in(expires_in).map_err(|e| domain::Error::Internal(format!("presigning config: {e}")))
}

fn signed(p: &PresignedRequest, expires_in: Duration) -> SignedRequest {
    SignedRequest {
        method: p.method().to_string(),
        url: p.uri().to_string(),
        headers: p.headers().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect(),
        expires_at: domain::model::now() + expires_in,
    }
}
