//! Lambda for POST /api/v1/analyze.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::Analyze).await
}
