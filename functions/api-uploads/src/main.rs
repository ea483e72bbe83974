//! Lambda for /api/v1/uploads (POST) and /api/v1/uploads/{upload_id} (GET).
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::Uploads).await
}
