//! Lambda for /api/v1/usage (GET) and /api/v1/usage/current (GET).
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::Usage).await
}
