//! Lambda for the platforms' OAuth redirect, /api/v1/accounts/callback.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::AccountsCallback).await
}
