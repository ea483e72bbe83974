//! Lambda for /api/v1/admin/models (the model registry's decisions).
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::AdminModels).await
}
