//! Lambda for the scheduled retraining.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_retrain_job().await
}
