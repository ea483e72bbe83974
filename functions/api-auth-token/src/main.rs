//! Lambda for POST /api/v1/auth/token.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::AuthToken).await
}
