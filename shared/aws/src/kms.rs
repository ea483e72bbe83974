//! KMS as the master key of the token envelope: `GenerateDataKey` (AES-256) gives each sealed
//! token its own data key, wrapped by the KMS key; `Decrypt` unwraps it. The envelope's
//! context goes along as KMS encryption context, so a wrapped key opens only for the row and
//! purpose it was made for (and CloudTrail shows which).

use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use domain::{Error, Result};
use goviral_adapters::envelope::{DataKey, MasterKey};

use crate::unavailable;

pub struct KmsMasterKey {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl KmsMasterKey {
    pub fn new(config: &aws_config::SdkConfig, key_id: String) -> KmsMasterKey {
        KmsMasterKey { client: aws_sdk_kms::Client::new(config), key_id }
    }
}

const CONTEXT_KEY: &str = "goviral";

fn key_of(bytes: &[u8]) -> Result<[u8; 32]> {
    bytes.try_into().map_err(|_| Error::Internal(format!("KMS gave a data key of {} bytes", bytes.len())))
}

#[async_trait]
impl MasterKey for KmsMasterKey {
    async fn data_key(&self, context: &str) -> Result<DataKey> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(CONTEXT_KEY, context)
            .send()
            .await
            .map_err(|e| unavailable("kms:GenerateDataKey", aws_sdk_kms::error::DisplayErrorContext(e)))?;
        let plaintext = key_of(out.plaintext().map(Blob::as_ref).unwrap_or_default())?;
        let wrapped =
            out.ciphertext_blob().map(|b| b.as_ref().to_vec()).ok_or_else(|| Error::Internal("KMS gave no wrapped key".into()))?;
        Ok(DataKey { plaintext, wrapped })
    }

    async fn unwrap(&self, wrapped: &[u8], context: &str) -> Result<[u8; 32]> {
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped))
            .encryption_context(CONTEXT_KEY, context)
            .send()
            .await
            .map_err(|e| {
                let text = aws_sdk_kms::error::DisplayErrorContext(&e).to_string();
                if text.contains("InvalidCiphertext") {
                    Error::Internal("a sealed value could not be opened: KMS refused its data key (another key or context)".into())
                } else {
                    unavailable("kms:Decrypt", text)
                }
            })?;
        key_of(out.plaintext().map(Blob::as_ref).unwrap_or_default())
    }
}
