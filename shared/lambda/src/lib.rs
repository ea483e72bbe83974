//! What every Lambda's `main` calls: build the adapters once per container (wiring), then
//! serve one kind of event: an API endpoint's routes through lambda_http (API Gateway HTTP
//! API, payload v2), a stage's SQS batches, the scheduled queued-job sweep, or S3's reports
//! of uploaded objects.

pub mod stage;
pub mod wiring;

use std::sync::Arc;

use tracing::Instrument;

use axum::extract::Request;
use axum::middleware::Next;
use domain::service::App;
use goviral_api::{ClientIp, Endpoint};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;

pub use wiring::{Container, InitError, Role};

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

pub async fn run_endpoint(endpoint: Endpoint) -> Result<(), InitError> {
    let container = Container::init(Role::Api).await?;
    let mut app = container.app()?;
    if endpoint == Endpoint::Uploads {
        // Only the uploads function signs S3 URLs (its role may put and get uploads).
        let signer: Arc<dyn domain::ports::UrlSigner> = container.blobs()?;
        app = app.with_url_signer(signer);
    }
    let app = Arc::new(app);
    tracing::info!(function = endpoint.function_name(), "initialised");
    lambda_http::run(endpoint_router(app, endpoint)).await
}

/// What every stage Lambda's `main` calls: builds the stage context once per container (the
/// relational store, S3 blobs, on-device moderation and scoring, the guarded webhook sender)
/// and consumes the stage's SQS queue, answering Step Functions by task token.
pub async fn run_stage_consumer(stage: domain::pipeline::Stage) -> Result<(), InitError> {
    use aws_lambda_events::event::sqs::SqsEvent;
    use domain::pipeline::{StageContext, WebhookPolicy};
    use goviral_local::asl::StateMachine;

    let container = Container::init(Role::Worker).await?;
    let config = &container.config;
    let machine = StateMachine::pipeline();
    let webhook_retries = machine.task_retry(domain::pipeline::Stage::Webhook).map_or(0, |r| r.max_attempts);
    let ctx = Arc::new(StageContext {
        store: container.store.clone(),
        blobs: container.blobs()?,
        moderator: Arc::new(goviral_local::moderation::LexiconModerator),
        scorer: goviral_app::scorer(config),
        webhooks: Arc::new(goviral_local::webhook::HttpWebhookSender::new(config.webhook_timeout, false)),
        webhook_policy: WebhookPolicy { max_attempts: webhook_retries + 1, allow_loopback: false },
    });
    let callbacks: Arc<dyn domain::pipeline::TaskCallbacks> = Arc::new(goviral_aws::SfnCallbacks::new(&container.aws));
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

/// How many queued jobs one sweep looks at; the schedule runs it every few minutes.
const SWEEP_LIMIT: u32 = 500;

/// The scheduled sweep (EventBridge): starts an execution for every queued job without one.
pub async fn run_pipeline_sweep() -> Result<(), InitError> {
    let container = Arc::new(Container::init(Role::Worker).await?);
    let pipeline = container.pipeline()?;
    tracing::info!("initialised");
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<ScheduledEvent>| {
        let (container, pipeline) = (container.clone(), pipeline.clone());
        async move { Ok::<_, lambda_runtime::Error>(sweep(container.store.as_ref(), &pipeline, event.payload).await?) }
    }))
    .await
}

pub type ScheduledEvent = aws_lambda_events::event::eventbridge::EventBridgeEvent<serde_json::Value>;

/// One scheduled sweep; answers with what it did.
pub async fn sweep(
    store: &dyn domain::ports::Store,
    pipeline: &goviral_aws::StepFunctionsPipeline,
    event: ScheduledEvent,
) -> domain::Result<serde_json::Value> {
    let span = tracing::info_span!("sweep", event_id = event.id.as_deref().unwrap_or(""));
    async move {
        let (started, existing) = goviral_aws::pipeline::sweep_queued(store, pipeline, SWEEP_LIMIT).await?;
        tracing::info!(started, existing, "swept queued jobs");
        Ok(serde_json::json!({ "started": started, "already_started": existing }))
    }
    .instrument(span)
    .await
}

/// S3 ObjectCreated events for the upload prefix: marks each upload ready or rejected.
pub async fn run_upload_intake() -> Result<(), InitError> {
    let container = Arc::new(Container::init(Role::Worker).await?);
    let blobs = container.blobs()?;
    tracing::info!("initialised");
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<S3Event>| {
        let (container, blobs) = (container.clone(), blobs.clone());
        async move { Ok::<_, lambda_runtime::Error>(intake(container.store.as_ref(), blobs.as_ref(), event.payload).await?) }
    }))
    .await
}

pub type S3Event = aws_lambda_events::event::s3::S3Event;

/// One S3 event: every record is taken in; answers with what each became. An error (the
/// store or S3 unavailable) fails the invocation so Lambda retries the event, then hands it
/// to the intake's failure queue; records already taken in are skipped on the retry.
pub async fn intake(
    store: &dyn domain::ports::Store,
    blobs: &dyn domain::pipeline::BlobStore,
    event: S3Event,
) -> domain::Result<serde_json::Value> {
    use domain::uploads::Intake;
    let mut outcomes = Vec::new();
    let mut failed = None;
    for record in event.records {
        let Some(raw_key) = record.s3.object.key.as_deref() else { continue };
        // Keys in S3 events are URL-encoded (a space arrives as `+`).
        let key = s3_event_key(raw_key);
        let size = record.s3.object.size.unwrap_or(0).max(0) as u64;
        let span = tracing::info_span!("intake", key = %key, size);
        match domain::uploads::receive(store, blobs, &key, size).instrument(span.clone()).await {
            Ok(outcome) => {
                let _enter = span.enter();
                match &outcome {
                    Intake::Ready(id) => tracing::info!(upload_id = %id, "upload ready"),
                    Intake::Rejected { upload_id, reason } => tracing::warn!(upload_id = %upload_id, reason, "upload rejected"),
                    Intake::Unknown => tracing::warn!("object is not a pending upload; ignored"),
                    Intake::AlreadyFinished(id) => tracing::info!(upload_id = %id, "upload already taken in"),
                }
                outcomes.push(serde_json::json!({ "key": key, "outcome": format!("{outcome:?}") }));
            }
            Err(e) => {
                span.in_scope(|| tracing::error!(error = %e, "upload intake failed; the event will be retried"));
                failed.get_or_insert(e);
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(serde_json::json!({ "records": outcomes })),
    }
}

fn s3_event_key(raw: &str) -> String {
    form_urlencoded::parse(format!("k={raw}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}
