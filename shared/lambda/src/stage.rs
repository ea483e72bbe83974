//! The stage Lambdas' edge: an SQS batch of task messages in, one stage run per message,
//! the result reported to Step Functions by task token, and per-message batch failures out.
//!
//! A message is reported failed (so SQS redelivers it, and after `maxReceiveCount` moves it
//! to the DLQ) only when its outcome could not be reported: an unparseable (poison) message,
//! or Step Functions unreachable. Stage errors themselves are reported to the state machine,
//! whose Retry/Catch rules decide; the message is then done. Redelivery is safe: stages are
//! idempotent.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use domain::pipeline::{Stage, StageContext, run_stage};
use goviral_aws::{CallbackOutcome, StageMessage, TaskCallbacks};
use tracing::Instrument;

/// Step Functions caps `cause` at 32,768 characters.
const CAUSE_MAX: usize = 32_000;

/// How many messages of one batch are worked on at once: a slow webhook receiver holds up
/// only its own message, not the batch (and so not the invocation's timeout).
const BATCH_CONCURRENCY: usize = 10;

/// Processes the batch, messages concurrently, each in its own span; returns the message
/// ids to report as failed.
pub async fn process_batch(
    ctx: &StageContext,
    callbacks: &dyn TaskCallbacks,
    expected: Stage,
    records: Vec<(String, String)>,
) -> Vec<String> {
    use futures_util::StreamExt;
    futures_util::stream::iter(records)
        .map(|(message_id, body)| {
            let span = tracing::info_span!("message", message_id = %message_id, stage = expected.as_str());
            async move { (!process_message(ctx, callbacks, expected, &body).await).then_some(message_id) }.instrument(span)
        })
        .buffer_unordered(BATCH_CONCURRENCY)
        .filter_map(|failed| async move { failed })
        .collect()
        .await
}

/// One message; false when it must be reported failed (redelivered, then dead-lettered).
async fn process_message(ctx: &StageContext, callbacks: &dyn TaskCallbacks, expected: Stage, body: &str) -> bool {
    let message: StageMessage = match serde_json::from_str(body) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "poison message: not a stage message; leaving it for the DLQ");
            return false;
        }
    };
    let reported = if message.stage != expected {
        let cause = format!("message for stage {} reached the {} queue", message.stage.as_str(), expected.as_str());
        callbacks.fail(&message.task_token, domain::pipeline::PERMANENT, &cause).await
    } else {
        match run_stage(ctx, expected, message.input).await {
            Ok(output) => callbacks.succeed(&message.task_token, &output).await,
            Err(e) => {
                tracing::warn!(error = e.type_name(), cause = %e, "stage failed; reporting to the state machine");
                let cause: String = e.to_string().chars().take(CAUSE_MAX).collect();
                callbacks.fail(&message.task_token, e.type_name(), &cause).await
            }
        }
    };
    match reported {
        Ok(CallbackOutcome::Accepted) => true,
        Ok(CallbackOutcome::Stale) => {
            tracing::warn!("task token no longer waiting; result dropped");
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "could not report to Step Functions; the message will be redelivered");
            false
        }
    }
}

/// One Lambda invocation: the SQS event in, the partial batch failure response out.
pub async fn handle_sqs_event(ctx: &StageContext, callbacks: &dyn TaskCallbacks, expected: Stage, event: SqsEvent) -> SqsBatchResponse {
    let records = event.records.into_iter().map(|r| (r.message_id.unwrap_or_default(), r.body.unwrap_or_default())).collect();
    let failed = process_batch(ctx, callbacks, expected, records).await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            // Both types are non-exhaustive: build from Default.
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}
