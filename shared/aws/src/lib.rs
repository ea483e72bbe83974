//! AWS adapters behind the domain's ports. Only Lambda binaries depend on this crate, so the
//! local binary's build stays free of the AWS SDK.

pub mod blobs;
pub mod callbacks;
pub mod counters;
pub mod kms;
pub mod pipeline;
pub mod secrets;
pub mod usage;

pub use blobs::S3BlobStore;
pub use callbacks::{CallbackOutcome, SfnCallbacks, StageMessage, TaskCallbacks};
pub use counters::DynamoCounters;
pub use kms::KmsMasterKey;
pub use pipeline::StepFunctionsPipeline;
pub use usage::DynamoUsageTotals;

use domain::Error;

/// Shared AWS configuration, read once per container. `AWS_ENDPOINT_URL` (an emulator) is
/// honoured by the SDK itself.
pub async fn load_config() -> aws_config::SdkConfig {
    aws_config::load_from_env().await
}

fn unavailable(service: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("{service}: {e}"))
}
