//! Lambda for /api/v1/admin/usage (GET) and /api/v1/admin/users/{user_id}/usage (PUT).
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::AdminUsage).await
}
