//! Lambda for the scheduled queued-job sweep.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_pipeline_sweep().await
}
