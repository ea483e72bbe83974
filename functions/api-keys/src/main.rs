//! Lambda for /api/v1/keys (POST, GET), /api/v1/keys/{key_id}/rotate (POST), /api/v1/keys/{key_id} (DELETE).
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::Keys).await
}
