//! Lambda for GET /api/v1/insights/templates.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_endpoint(goviral_api::Endpoint::InsightTemplates).await
}
