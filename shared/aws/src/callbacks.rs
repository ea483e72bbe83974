//! Task-token callbacks to Step Functions: how a stage Lambda answers the state machine.
//! The task vocabulary (messages carrying a task token, callbacks) is Step Functions' and
//! stays here, out of the domain.

use async_trait::async_trait;
use domain::Result;
use domain::pipeline::Stage;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::unavailable;

/// The SQS message a Task state sends to a stage (its `Parameters.MessageBody`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageMessage {
    pub stage: Stage,
    pub input: Value,
    pub task_token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackOutcome {
    Accepted,
    /// The token timed out or was already answered: nothing is waiting for this result.
    Stale,
}

/// Reports a stage's result to the waiting state machine.
#[async_trait]
pub trait TaskCallbacks: Send + Sync {
    async fn succeed(&self, task_token: &str, output: &Value) -> Result<CallbackOutcome>;
    async fn fail(&self, task_token: &str, error: &str, cause: &str) -> Result<CallbackOutcome>;
}

/// Task-token callbacks to Step Functions.
pub struct SfnCallbacks {
    client: aws_sdk_sfn::Client,
}

impl SfnCallbacks {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        SfnCallbacks { client: aws_sdk_sfn::Client::new(config) }
    }
}

#[async_trait]
impl TaskCallbacks for SfnCallbacks {
    async fn succeed(&self, task_token: &str, output: &Value) -> Result<CallbackOutcome> {
        use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessError as E;
        match self.client.send_task_success().task_token(task_token).output(output.to_string()).send().await {
            Ok(_) => Ok(CallbackOutcome::Accepted),
            Err(e) => match e.as_service_error() {
                Some(E::TaskTimedOut(_) | E::TaskDoesNotExist(_) | E::InvalidToken(_)) => Ok(CallbackOutcome::Stale),
                _ => Err(unavailable("states:SendTaskSuccess", aws_sdk_sfn::error::DisplayErrorContext(e))),
            },
        }
    }

    async fn fail(&self, task_token: &str, error: &str, cause: &str) -> Result<CallbackOutcome> {
        use aws_sdk_sfn::operation::send_task_failure::SendTaskFailureError as E;
        match self.client.send_task_failure().task_token(task_token).error(error).cause(cause).send().await {
            Ok(_) => Ok(CallbackOutcome::Accepted),
            Err(e) => match e.as_service_error() {
                Some(E::TaskTimedOut(_) | E::TaskDoesNotExist(_) | E::InvalidToken(_)) => Ok(CallbackOutcome::Stale),
                _ => Err(unavailable("states:SendTaskFailure", aws_sdk_sfn::error::DisplayErrorContext(e))),
            },
        }
    }
}
