//! One test binary for every suite (one link instead of many).

mod api_analyze;
mod api_auth;
mod api_resources;
mod blob_contract;
mod lambda_events;
mod openai;
mod pipeline;
mod scorer;
mod store_contract;
