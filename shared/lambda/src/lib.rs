//! What every API Lambda's `main` calls: read config, build the adapters once per container,
//! and serve one endpoint's routes through lambda_http (API Gateway HTTP API, payload v2).

pub mod stage;

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use domain::service::App;
use goviral_api::{ClientIp, Endpoint};
use goviral_app::{Config, Mode};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;

/// API Gateway knows the caller's address; hand it to the audit log.
async fn source_ip(mut request: Request, next: Next) -> axum::response::Response {
    let ip = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.as_deref().and_then(|ip| ip.parse().ok()),
        _ => None,
    };
    if let Some(ip) = ip {
        request.extensions_mut().insert(ClientIp(ip));
    }
    next.run(request).await
}

/// The routes one Lambda serves, exactly as its `main` serves them.
pub fn endpoint_router(app: Arc<App>, endpoint: Endpoint) -> axum::Router {
    goviral_api::router(app, &[endpoint]).layer(axum::middleware::from_fn(source_ip))
}

pub async fn run_endpoint(endpoint: Endpoint) -> Result<(), lambda_http::Error> {
    let config = Config::from_env(Mode::Lambda)?;
    goviral_app::init_tracing(config.log_json);
    let wired = goviral_app::wire(&config).await?;
    tracing::info!(function = endpoint.function_name(), "initialised");
    lambda_http::run(endpoint_router(wired.app, endpoint)).await
}

/// What every stage Lambda's `main` calls: builds the stage context once per container (the
/// relational store, S3 blobs, on-device moderation and scoring, the guarded webhook sender)
/// and consumes the stage's SQS queue, answering Step Functions by task token.
pub async fn run_stage_consumer(stage: domain::pipeline::Stage) -> Result<(), lambda_http::Error> {
    use aws_lambda_events::event::sqs::SqsEvent;
    use domain::pipeline::{StageContext, WebhookPolicy};
    use goviral_local::asl::StateMachine;

    let config = Config::from_env(Mode::Lambda)?;
    goviral_app::init_tracing(config.log_json);
    let bucket = std::env::var("GOVIRAL_BLOB_BUCKET").map_err(|_| "GOVIRAL_BLOB_BUCKET is required")?;
    let path_style = std::env::var("GOVIRAL_S3_PATH_STYLE").is_ok_and(|v| v == "true");
    let pool = goviral_sql::PoolSettings { max_connections: config.db_max_connections, acquire_timeout: config.db_acquire_timeout };
    let store = Arc::new(goviral_sql::SqlStore::connect(&config.database_url, &pool).await?);
    let aws = goviral_aws::load_config().await;
    let machine = StateMachine::pipeline();
    let webhook_retries = machine.task_retry(domain::pipeline::Stage::Webhook).map_or(0, |r| r.max_attempts);
    let ctx = Arc::new(StageContext {
        store,
        blobs: Arc::new(goviral_aws::S3BlobStore::new(&aws, bucket, path_style)),
        moderator: Arc::new(goviral_local::moderation::LexiconModerator),
        scorer: goviral_app::scorer(&config),
        webhooks: Arc::new(goviral_local::webhook::HttpWebhookSender::new(config.webhook_timeout, false, false)),
        webhook_policy: WebhookPolicy { max_attempts: webhook_retries + 1, allow_loopback: false },
    });
    let callbacks: Arc<dyn domain::pipeline::TaskCallbacks> = Arc::new(goviral_aws::SfnCallbacks::new(&aws));
    tracing::info!(stage = stage.as_str(), "initialised");
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
        let (ctx, callbacks) = (ctx.clone(), callbacks.clone());
        async move {
            let response = stage::handle_sqs_event(&ctx, callbacks.as_ref(), stage, event.payload).await;
            Ok::<_, lambda_runtime::Error>(response)
        }
    }))
    .await
}
