//! The pipeline on AWS: one Step Functions execution per job, named by the job id.
//!
//! The name makes the hand-off idempotent: Step Functions refuses a second execution of the
//! same name (or returns the running one for the same input), so the API and the queued-job
//! sweep can both start a job without it ever running twice.

use std::sync::Arc;

use async_trait::async_trait;
use domain::Result;
use domain::ports::{CompletionEstimate, Pipeline, Store};
use serde_json::json;
use uuid::Uuid;

use crate::unavailable;

pub struct StepFunctionsPipeline {
    client: aws_sdk_sfn::Client,
    state_machine_arn: String,
    estimate: CompletionEstimate,
}

impl StepFunctionsPipeline {
    pub fn new(config: &aws_config::SdkConfig, state_machine_arn: impl Into<String>, store: Arc<dyn Store>) -> Self {
        StepFunctionsPipeline {
            client: aws_sdk_sfn::Client::new(config),
            state_machine_arn: state_machine_arn.into(),
            estimate: CompletionEstimate::new(store),
        }
    }

    /// The execution name of a job; also what the console shows.
    pub fn execution_name(job_id: Uuid) -> String {
        job_id.to_string()
    }

    /// The ARN the job's execution has (or will have).
    pub fn execution_arn(&self, job_id: Uuid) -> String {
        format!("{}:{}", self.state_machine_arn.replacen(":stateMachine:", ":execution:", 1), Self::execution_name(job_id))
    }

    /// Starts the job's execution. Idempotent: for a running execution of the job Step
    /// Functions answers with it, for a finished one with ExecutionAlreadyExists.
    pub async fn start(&self, job_id: Uuid) -> Result<()> {
        use aws_sdk_sfn::operation::start_execution::StartExecutionError as E;
        let input = json!({ "job_id": job_id }).to_string();
        let started = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(Self::execution_name(job_id))
            .input(input)
            .send()
            .await;
        match started {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.as_service_error(), Some(E::ExecutionAlreadyExists(_))) => Ok(()),
            Err(e) => Err(unavailable("states:StartExecution", aws_sdk_sfn::error::DisplayErrorContext(e))),
        }
    }

    /// Whether the job has an execution, running or finished.
    pub async fn has_execution(&self, job_id: Uuid) -> Result<bool> {
        use aws_sdk_sfn::operation::describe_execution::DescribeExecutionError as E;
        match self.client.describe_execution().execution_arn(self.execution_arn(job_id)).send().await {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.as_service_error(), Some(E::ExecutionDoesNotExist(_))) => Ok(false),
            Err(e) => Err(unavailable("states:DescribeExecution", aws_sdk_sfn::error::DisplayErrorContext(e))),
        }
    }
}

#[async_trait]
impl Pipeline for StepFunctionsPipeline {
    async fn enqueue(&self, job_id: Uuid) -> Result<()> {
        self.start(job_id).await?;
        tracing::info!(%job_id, "pipeline execution started");
        Ok(())
    }

    async fn estimated_completion_secs(&self) -> u32 {
        self.estimate.secs().await
    }
}

/// The queued-job sweep (a scheduled Lambda): starts an execution for every queued job that
/// has none, e.g. because StartExecution failed when the job was submitted. Returns
/// (started, already had one) counts. A queued job with an execution is one whose first
/// stage has not run yet; it is left alone.
pub async fn sweep_queued(store: &dyn Store, pipeline: &StepFunctionsPipeline, limit: u32) -> Result<(u64, u64)> {
    let (mut started, mut existing) = (0, 0);
    for job_id in store.queued_jobs(limit).await? {
        if pipeline.has_execution(job_id).await? {
            existing += 1;
        } else {
            pipeline.start(job_id).await?;
            tracing::warn!(%job_id, "queued job had no execution; started one");
            started += 1;
        }
    }
    Ok((started, existing))
}
