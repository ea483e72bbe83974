//! AWS adapters behind the domain's ports. Only Lambda binaries depend on this crate, so the
//! local binary's build stays free of the AWS SDK.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use domain::pipeline::{BlobStore, CallbackOutcome, TaskCallbacks};
use domain::{Error, Result};
use serde_json::Value;

/// Shared AWS configuration, read once per container. `AWS_ENDPOINT_URL` (an emulator) is
/// honoured by the SDK itself.
pub async fn load_config() -> aws_config::SdkConfig {
    aws_config::load_from_env().await
}

fn unavailable(service: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("{service}: {e}"))
}

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

/// Task-token callbacks to Step Functions.
pub struct SfnCallbacks {
    client: aws_sdk_sfn::Client,
}

impl SfnCallbacks {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        SfnCallbacks { client: aws_sdk_sfn::Client::new(config) }
    }
}

#[async_trait]
impl TaskCallbacks for SfnCallbacks {
    async fn succeed(&self, task_token: &str, output: &Value) -> Result<CallbackOutcome> {
        use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessError as E;
        match self.client.send_task_success().task_token(task_token).output(output.to_string()).send().await {
            Ok(_) => Ok(CallbackOutcome::Accepted),
            Err(e) => match e.as_service_error() {
                Some(E::TaskTimedOut(_) | E::TaskDoesNotExist(_) | E::InvalidToken(_)) => Ok(CallbackOutcome::Stale),
                _ => Err(unavailable("states:SendTaskSuccess", aws_sdk_sfn::error::DisplayErrorContext(e))),
            },
        }
    }

    async fn fail(&self, task_token: &str, error: &str, cause: &str) -> Result<CallbackOutcome> {
        use aws_sdk_sfn::operation::send_task_failure::SendTaskFailureError as E;
        match self.client.send_task_failure().task_token(task_token).error(error).cause(cause).send().await {
            Ok(_) => Ok(CallbackOutcome::Accepted),
            Err(e) => match e.as_service_error() {
                Some(E::TaskTimedOut(_) | E::TaskDoesNotExist(_) | E::InvalidToken(_)) => Ok(CallbackOutcome::Stale),
                _ => Err(unavailable("states:SendTaskFailure", aws_sdk_sfn::error::DisplayErrorContext(e))),
            },
        }
    }
}
