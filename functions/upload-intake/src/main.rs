//! Lambda for S3's ObjectCreated events on the upload prefix.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    goviral_lambda::run_upload_intake().await
}
