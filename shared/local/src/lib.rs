//! Local adapters for the embedded default: blobs as files and signed URLs for them, on-device moderation and scoring,
//! the webhook sender, and the in-process runner that executes the pipeline's state machine.

pub mod asl;
pub mod blobs;
pub mod moderation;
pub mod runner;
pub mod signed_urls;
pub mod webhook;
