//! Lambda for /api/v1/analyze/{job_id}/posts (posts followed on connected accounts).
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::AnalyzePosts).await
}
