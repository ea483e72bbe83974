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

/// Step Functions caps `cause` at 32,768 characters.
const CAUSE_MAX: usize = 32_000;

/// Processes the batch; returns the message ids to report as failed.
pub async fn process_batch(
    ctx: &StageContext,
    callbacks: &dyn TaskCallbacks,
    expected: Stage,
    records: Vec<(String, String)>,
) -> Vec<String> {
    let mut failed = Vec::new();
    for (message_id, body) in records {
        let span = tracing::info_span!("message", message_id = %message_id, stage = expected.as_str());
        let _e = span.enter();
        let message: StageMessage = match serde_json::from_str(&body) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "poison message: not a stage message; leaving it for the DLQ");
                failed.push(message_id);
                continue;
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
            Ok(CallbackOutcome::Accepted) => {}
            Ok(CallbackOutcome::Stale) => tracing::warn!("task token no longer waiting; result dropped"),
            Err(e) => {
                tracing::error!(error = %e, "could not report to Step Functions; the message will be redelivered");
                failed.push(message_id);
            }
        }
    }
    failed
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
