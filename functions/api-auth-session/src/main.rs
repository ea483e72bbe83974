//! Lambda for /api/v1/auth/session (the dashboard's sign-in).
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::AuthSession).await
}
