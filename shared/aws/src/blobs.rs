//! Blobs in S3: the claim-check documents stages pass by key.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use domain::Result;
use domain::pipeline::BlobStore;

use crate::unavailable;

/// Blobs in S3.
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
}
