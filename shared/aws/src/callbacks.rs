//! Task-token callbacks to Step Functions: how a stage Lambda answers the state machine.

use async_trait::async_trait;
use domain::Result;
use domain::pipeline::{CallbackOutcome, TaskCallbacks};
use serde_json::Value;

use crate::unavailable;

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
