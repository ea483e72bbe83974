//! Lambda for the failure stage of the analysis pipeline.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_stage_consumer(domain::pipeline::Stage::Failure).await
}
