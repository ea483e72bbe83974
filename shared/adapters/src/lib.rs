//! Adapters every deployment uses, on AWS and on one machine alike (no cloud SDK): webhook
//! POSTs and video downloads under the SSRF policy, on-device moderation, and the pipeline's
//! state machine as infra/pipeline.asl.json defines it.

pub mod asl;
pub mod fetch;
pub mod moderation;
mod outbound;
pub mod stripe;
pub mod webhook;
