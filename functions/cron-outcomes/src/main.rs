//! Lambda for the scheduled outcome collection.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_outcomes_job().await
}
