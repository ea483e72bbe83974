//! Adapters every deployment uses, on AWS and on one machine alike (no cloud SDK): webhook
//! POSTs and video downloads under the SSRF policy, on-device moderation, the pipeline's
//! state machine as infra/pipeline.asl.json defines it, the social platforms' APIs, and the
//! envelope encryption that keeps their tokens sealed.

pub mod asl;
pub mod envelope;
pub mod fetch;
pub mod moderation;
mod outbound;
pub mod platforms;
pub mod stripe;
pub mod webhook;
