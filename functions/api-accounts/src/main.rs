//! Lambda for /api/v1/accounts (connected platform accounts).
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::Accounts).await
}
