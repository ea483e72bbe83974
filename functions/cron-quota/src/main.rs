//! Lambda for the scheduled quota job.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_quota_job().await
}
