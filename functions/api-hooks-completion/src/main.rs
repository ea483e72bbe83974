//! Lambda for POST /api/v1/hooks/completion.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::HooksCompletion).await
}
