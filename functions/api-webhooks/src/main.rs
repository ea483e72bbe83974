//! Lambda for /api/v1/webhooks (POST, GET) and /api/v1/webhooks/{webhook_id} (DELETE).
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::Webhooks).await
}
