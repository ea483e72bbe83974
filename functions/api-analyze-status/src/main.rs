//! Lambda for GET|DELETE /api/v1/analyze/{job_id}.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::AnalyzeStatus).await
}
