//! Lambda for GET /api/v1/analyze/{job_id}/events (Server-Sent Events, response streaming).
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::AnalyzeEvents).await
}
