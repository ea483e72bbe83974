//! The embedded default's own adapters (one machine, no cloud): blobs as files with signed
//! URLs for them, and the in-process runner that executes the pipeline's state machine over a
//! durable queue. Adapters every deployment shares live in goviral-adapters.

pub mod blobs;
pub mod runner;
pub mod signed_urls;
