//! Lambda for GET /api/v1/users/{user_id}/history.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::UserHistory).await
}
