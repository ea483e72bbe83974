//! Lambda for GET|DELETE /api/v1/analyze/{job_id} and POST /api/v1/analyze/{job_id}/stream-token.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::AnalyzeStatus).await
}
