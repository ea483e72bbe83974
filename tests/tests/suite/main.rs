//! One test binary for every suite (one link instead of many).

/// Declares each test `$name` once per backend, `sqlite::$name` and `postgres::$name`,
/// calling the suite's `async fn $name(backend: Backend)` (the contract suites).
macro_rules! contract {
    // `with_dynamodb:` adds `dynamodb::$name`: PostgreSQL with the usage totals in DynamoDB.
    (with_dynamodb: $($name:ident),* $(,)?) => {
        contract!($($name),*);
        mod dynamodb {
            $(#[tokio::test] async fn $name() { super::$name(goviral_testkit::Backend::PostgresDynamo).await })*
        }
    };
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(goviral_testkit::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(goviral_testkit::Backend::Postgres).await })*
        }
    };
}

mod accounts;
mod api_analyze;
mod api_auth;
mod api_resources;
mod attacks;
mod aws;
mod blob_contract;
mod counters_contract;
mod events;
mod faces;
mod hardening;
mod lambda_events;
mod media;
mod media_urls;
mod openai;
mod pipeline;
mod registry;
mod scorer;
mod secrets;
mod speech;
mod state_machine;
mod store_contract;
mod telemetry;
mod uploads;
mod usage;
