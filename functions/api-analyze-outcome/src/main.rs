//! Lambda for /api/v1/analyze/{job_id}/outcome (what a post did).
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::AnalyzeOutcome).await
}
