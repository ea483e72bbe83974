//! What every Lambda's `main` calls: build what it uses once per container (through the one
//! composition root, goviral-app's `Composition`), then
//! serve one kind of event: an API endpoint's routes through lambda_http (API Gateway HTTP
//! API, payload v2), a stage's SQS batches, the scheduled queued-job sweep, or S3's reports
//! of uploaded objects.

pub mod stage;

use std::sync::Arc;

use tracing::Instrument;

use axum::extract::Request;
use axum::middleware::Next;
use domain::service::App;
use goviral_api::{ClientIp, Endpoint};
use goviral_app::{Composition, Profile};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;

pub use goviral_app::InitError;

/// API Gateway knows the caller's address; hand it to the audit log and the throttles.
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
    let function = endpoint.function_name();
    goviral_api::router(app, &[endpoint])
        .layer(axum::middleware::from_fn(source_ip))
        .layer(axum::middleware::from_fn(move |request: Request, next: Next| after_invocation(function, request, next)))
}

async fn after_invocation(function: &'static str, request: Request, next: Next) -> axum::response::Response {
    let response = next.run(request).await;
    report(function).await;
    response
}

/// What this process recorded since the last report, as EMF documents for `function`.
pub fn emf_lines(function: &'static str) -> Vec<String> {
    let now_ms = (domain::model::now().unix_timestamp_nanos() / 1_000_000) as i64;
    domain::telemetry::metrics().flush_emf(EMF_NAMESPACE, &[("function", function)], now_ms)
}

/// CloudWatch's namespace for the product's metrics.
pub const EMF_NAMESPACE: &str = "GoViralNow";

/// After an invocation, before the sandbox may be frozen: what it recorded goes out as
/// CloudWatch Embedded Metric Format lines on stdout (one per metric and label set, the
/// function's name a dimension), and its spans to the OTLP endpoint where one is set.
pub async fn report(function: &'static str) {
    let lines = emf_lines(function);
    if !lines.is_empty() {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
    }
    let _ = tokio::task::spawn_blocking(goviral_app::telemetry::flush).await;
}

/// The configuration and secrets, read once per container, and tracing set up from them.
async fn compose() -> Result<Composition, InitError> {
    let composition = Composition::load(Profile::Aws).await?;
    let service = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "goviral-lambda".into());
    goviral_app::init_tracing(composition.config.log_json, composition.config.otlp_endpoint.as_deref(), &service);
    Ok(composition)
}

pub async fn run_endpoint(endpoint: Endpoint) -> Result<(), InitError> {
    if endpoint == Endpoint::OpenApi {
        // A static document: no secrets, no store, nothing to build.
        goviral_app::init_tracing(true, None, endpoint.function_name());
        tracing::info!(function = endpoint.function_name(), "initialised");
        return lambda_http::run(goviral_api::openapi_router().layer(axum::middleware::from_fn(source_ip))).await;
    }
    let composition = compose().await?;
    // Each builds only what it uses: only analyze hands jobs to Step Functions, only the uploads
    // and status functions sign S3 URLs (uploads may put uploads and get their copies; status may
    // get a video's stills), only compare ranks.
    let uses = goviral_app::AppUses {
        submissions: endpoint == Endpoint::Analyze,
        signed_urls: matches!(endpoint, Endpoint::Uploads | Endpoint::AnalyzeStatus),
        comparisons: endpoint == Endpoint::Compare,
        platforms: matches!(endpoint, Endpoint::Accounts | Endpoint::AccountsCallback | Endpoint::AnalyzePosts),
    };
    let app = Arc::new(composition.app(uses).await?);
    tracing::info!(function = endpoint.function_name(), "initialised");
    if endpoint == Endpoint::AnalyzeEvents {
        // Server-Sent Events are written as they happen (a function URL in RESPONSE_STREAM mode).
        return lambda_http::run_with_streaming_response(endpoint_router(app, endpoint)).await;
    }
    lambda_http::run(endpoint_router(app, endpoint)).await
}

/// What every stage Lambda's `main` calls: the stage context (the relational store, S3
/// blobs, on-device moderation and scoring, the guarded webhook sender), built once per
/// container, consuming the stage's SQS queue and answering Step Functions by task token.
pub async fn run_stage_consumer(stage: domain::pipeline::Stage) -> Result<(), InitError> {
    use aws_lambda_events::event::sqs::SqsEvent;
    let composition = compose().await?;
    let ctx = Arc::new(composition.stage_context().await?);
    let callbacks = composition.task_callbacks()?;
    tracing::info!(stage = stage.as_str(), "initialised");
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
        let (ctx, callbacks) = (ctx.clone(), callbacks.clone());
        async move {
            let response = stage::handle_sqs_event(&ctx, callbacks.as_ref(), stage, event.payload).await;
            report(stage.function_name()).await;
            Ok::<_, lambda_runtime::Error>(response)
        }
    }))
    .await
}

/// How many queued jobs one sweep looks at; the schedule runs it every few minutes.
const SWEEP_LIMIT: u32 = 500;

/// The scheduled sweep (EventBridge): starts an execution for every queued job without one.
pub async fn run_pipeline_sweep() -> Result<(), InitError> {
    let composition = compose().await?;
    let store: Arc<dyn domain::ports::Store> = composition.store().await?;
    let pipeline = composition.step_functions_pipeline().await?;
    tracing::info!("initialised");
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<ScheduledEvent>| {
        let (store, pipeline) = (store.clone(), pipeline.clone());
        async move { Ok::<_, lambda_runtime::Error>(sweep(store.as_ref(), &pipeline, event.payload).await?) }
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

/// The scheduled quota job (EventBridge): reconciles the usage totals with the ledger and
/// drains the billing outbox to Stripe (where configured).
pub async fn run_quota_job() -> Result<(), InitError> {
    let composition = compose().await?;
    let store: Arc<dyn domain::ports::Store> = composition.store().await?;
    let sink = composition.meter_sink();
    let (webhooks, terms) = (composition.webhook_sender(), composition.usage_terms());
    tracing::info!("initialised");
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<ScheduledEvent>| {
        let (store, sink, webhooks) = (store.clone(), sink.clone(), webhooks.clone());
        async move {
            let job = domain::usage::QuotaJob { store: store.as_ref(), sink: sink.as_deref(), webhooks: webhooks.as_ref(), terms: &terms };
            Ok::<_, lambda_runtime::Error>(quota(&job, event.payload).await?)
        }
    }))
    .await
}

/// One run of the quota job; answers with what it found, repaired, exported and notified
/// (every step runs; the invocation fails, after them all, if one did).
pub async fn quota(job: &domain::usage::QuotaJob<'_>, event: ScheduledEvent) -> domain::Result<serde_json::Value> {
    let span = tracing::info_span!("quota", event_id = event.id.as_deref().unwrap_or(""));
    async move {
        let run = job.run(domain::model::now(), true).await;
        if let Some(e) = run.error() {
            return Err(e.clone());
        }
        let (Ok(n), Some(Ok(report))) = (&run.notices, &run.reconciled) else { unreachable!("no step failed, and it reconciled") };
        let notices = serde_json::json!({"crossed": n.crossed, "delivered": n.delivered, "retrying": n.retrying, "dead": n.dead});
        let exported = match &run.export {
            Some(Ok(d)) => serde_json::json!({"sent": d.sent, "cancelled": d.cancelled, "retrying": d.retrying, "refused": d.refused}),
            _ => serde_json::Value::Null,
        };
        tracing::info!(accounts = report.accounts_checked, drifted = report.drifted.len(), "reconciled usage with the ledger");
        Ok(serde_json::json!({
            "periods": report.periods,
            "accounts_checked": report.accounts_checked,
            "billing_export": exported,
            "threshold_notices": notices,
            "drifted": report.drifted.iter().map(|d| serde_json::json!({
                "user_id": d.user_id, "period": d.period, "counter": d.counter, "ledger": d.ledger, "repaired": d.repaired,
            })).collect::<Vec<_>>(),
        }))
    }
    .instrument(span)
    .await
}

/// Followed posts one run of the outcome collection reads at most; it runs every 15 minutes.
const COLLECT_LIMIT: u32 = 500;

/// The scheduled outcome collection (EventBridge): reads followed posts whose check is due.
pub async fn run_outcomes_job() -> Result<(), InitError> {
    let composition = compose().await?;
    let uses = goviral_app::AppUses { platforms: true, ..Default::default() };
    let app = Arc::new(composition.app(uses).await?);
    tracing::info!("initialised");
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<ScheduledEvent>| {
        let app = app.clone();
        async move {
            let answer = collect(&app, event.payload).await;
            report("cron-outcomes").await;
            Ok::<_, lambda_runtime::Error>(answer?)
        }
    }))
    .await
}

/// One run of the outcome collection; answers with what it did.
pub async fn collect(app: &domain::service::App, event: ScheduledEvent) -> domain::Result<serde_json::Value> {
    let span = tracing::info_span!("collect_outcomes", event_id = event.id.as_deref().unwrap_or(""));
    async move {
        let report = app.collect_outcomes(COLLECT_LIMIT).await?;
        tracing::info!(
            due = report.due,
            observed = report.observed,
            deferred = report.deferred,
            ended = report.ended,
            "collected outcomes"
        );
        Ok(serde_json::to_value(&report).unwrap_or_default())
    }
    .instrument(span)
    .await
}

/// Retraining is deterministic for its data: one seed, always.
const RETRAIN_SEED: u64 = 20261124;

/// The scheduled retraining (EventBridge): trains a candidate from the training prefix's
/// public tests and the collected outcomes, gates it and registers it.
pub async fn run_retrain_job() -> Result<(), InitError> {
    let composition = Arc::new(compose().await?);
    tracing::info!("initialised");
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<ScheduledEvent>| {
        let composition = composition.clone();
        async move {
            let answer = retrain(&composition, event.payload).await;
            report("cron-retrain").await;
            answer.map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}

/// One scheduled retraining; answers with the candidate registered.
pub async fn retrain(composition: &Composition, event: ScheduledEvent) -> Result<serde_json::Value, InitError> {
    let span = tracing::info_span!("retrain", event_id = event.id.as_deref().unwrap_or(""));
    async move {
        let done = composition.retrain(composition.training_data().await?, RETRAIN_SEED).await?;
        Ok(serde_json::json!({
            "model_version_id": done.version.id, "label": done.version.label(), "state": done.version.state.as_str(),
            "gate_passed": done.version.gate_passed, "gate": domain::registry::gate_summary(&done.version.metrics),
            "observations": done.observations, "outcome_pairs": done.outcome_pairs, "training_seconds": done.training_seconds,
        }))
    }
    .instrument(span)
    .await
}

/// S3 ObjectCreated events for the upload prefix: marks each upload ready or rejected.
pub async fn run_upload_intake() -> Result<(), InitError> {
    let composition = compose().await?;
    let store: Arc<dyn domain::ports::Store> = composition.store().await?;
    let blobs = composition.blobs()?;
    tracing::info!("initialised");
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<S3Event>| {
        let (store, blobs) = (store.clone(), blobs.clone());
        async move { Ok::<_, lambda_runtime::Error>(intake(store.as_ref(), blobs.as_ref(), event.payload).await?) }
    }))
    .await
}

pub type S3Event = aws_lambda_events::event::s3::S3Event;

/// One S3 event: every record is taken in; answers with what each became. An error (the
/// store or S3 unavailable) fails the invocation so Lambda retries the event, then hands it
/// to the intake's failure queue; records already taken in are skipped on the retry.
pub async fn intake(
    store: &dyn domain::ports::Store,
    blobs: &dyn domain::ports::BlobStore,
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
