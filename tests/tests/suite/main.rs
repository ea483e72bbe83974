//! One test binary for every suite (one link instead of many).

mod api_analyze;
mod api_auth;
mod api_resources;
mod aws;
mod blob_contract;
mod counters_contract;
mod faces;
mod hardening;
mod lambda_events;
mod media;
mod media_urls;
mod openai;
mod pipeline;
mod scorer;
mod secrets;
mod speech;
mod state_machine;
mod store_contract;
mod uploads;
mod usage;
