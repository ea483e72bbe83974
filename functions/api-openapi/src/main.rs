//! Lambda for GET /api/v1/openapi.json.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::OpenApi).await
}
