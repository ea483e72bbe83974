//! Lambda for GET /healthz.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::Health).await
}
