//! The Lambda packaging: sample API Gateway events from events/ go through lambda_http's own
//! event conversion into the router each Lambda serves, and the template declares every
//! function with every route.

use std::sync::Arc;

use domain::model::Plan;
use domain::pipeline::Stage;
use domain::ports::BlobStore;
use goviral_api::Endpoint;
use goviral_testkit::{Backend, TestApp};
use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

fn event(name: &str, substitutions: &[(&str, &str)]) -> String {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (from, to) in substitutions {
        text = text.replace(from, to);
    }
    text
}

async fn invoke(app: &Arc<domain::service::App>, endpoint: Endpoint, event: &str) -> (StatusCode, http::HeaderMap, Value) {
    let request = lambda_http::request::from_str(event).expect("a valid API Gateway v2 event");
    let response = goviral_lambda::endpoint_router(app.clone(), endpoint).oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The live stream's function URL event runs through its router: an ended job's stream is
/// its history, then the end, and closes (so a buffered read of it finishes).
#[tokio::test]
async fn the_live_stream_answers_its_function_url_event() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let body = serde_json::json!({"content_type": "text", "caption": "Streamed", "user_id": ann.user.id});
    let job = t.post("/api/v1/analyze").api_key(&ann.api_key).json(&body).send().await.body["job_id"].as_str().unwrap().to_string();
    let errors = serde_json::json!([{"stage": "inference", "error": "States.Timeout", "reason": "test"}]);
    t.app.store.fail_job(job.parse().unwrap(), &errors, None, domain::model::now()).await.unwrap();
    let subs = [("REPLACE_WITH_API_KEY", ann.api_key.as_str()), ("REPLACE_WITH_JOB_ID", job.as_str())];
    let request = lambda_http::request::from_str(&event("apigw-analyze-events.json", &subs)).expect("a function URL event");
    let response = goviral_lambda::endpoint_router(t.app.clone(), Endpoint::AnalyzeEvents).oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(text.starts_with("id: 1\nevent: queued\n"), "{text}");
    assert!(text.contains("id: 2\nevent: failed\n") && text.contains("States.Timeout"), "{text}");
}

#[tokio::test]
async fn sample_events_run_through_the_lambda_routers() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let user_id = ann.user.id.to_string();
    let subs = [("REPLACE_WITH_API_KEY", ann.api_key.as_str()), ("REPLACE_WITH_USER_ID", user_id.as_str())];

    let (status, headers, body) = invoke(&t.app, Endpoint::Health, &event("apigw-health.json", &[])).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));
    assert_eq!(headers.get("x-request-id").unwrap(), "evt-health-1");

    let (status, _, body) = invoke(&t.app, Endpoint::OpenApi, &event("apigw-openapi.json", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["paths"]["/api/v1/analyze"].is_object());

    let (status, _, body) = invoke(&t.app, Endpoint::InsightTemplates, &event("apigw-insight-templates-unauthenticated.json", &[])).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));

    let (status, _, body) = invoke(&t.app, Endpoint::AuthToken, &event("apigw-auth-token.json", &subs)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "bearer");

    // The dashboard's sign-in: a session cookie and a CSRF token, never the key.
    let (status, headers, body) = invoke(&t.app, Endpoint::AuthSession, &event("apigw-auth-session.json", &subs)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("gv_session=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains(&ann.api_key) && body["csrf_token"].as_str().is_some_and(|c| c.len() >= 32), "{body}");

    let (status, headers, body) = invoke(&t.app, Endpoint::Analyze, &event("apigw-analyze.json", &subs)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(headers.contains_key("x-request-id"));
    let job_id: uuid::Uuid = body["job_id"].as_str().unwrap().parse().unwrap();
    assert!(t.app.store.job(job_id).await.unwrap().is_some());

    let (status, headers, body) = invoke(&t.app, Endpoint::Compare, &event("apigw-compare.json", &subs)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ranking"].as_array().map(Vec::len), Some(3));
    assert!(headers["ratelimit"].to_str().unwrap().contains("\"monthly\""));

    // What the post did, once the job is complete.
    t.app
        .store
        .complete_job(
            job_id,
            &domain::model::JobResult { score: 61.0, confidence: 0.7, insights: vec![], metrics: serde_json::json!({}) },
            None,
            domain::model::now(),
        )
        .await
        .unwrap();
    let job = job_id.to_string();
    let outcome_subs = [("REPLACE_WITH_API_KEY", ann.api_key.as_str()), ("REPLACE_WITH_JOB_ID", job.as_str())];
    let (status, _, body) = invoke(&t.app, Endpoint::AnalyzeOutcome, &event("apigw-analyze-outcome.json", &outcome_subs)).await;
    assert_eq!((status, body["views"].as_u64()), (StatusCode::CREATED, Some(18_250)), "{body}");

    let (status, _, body) = invoke(&t.app, Endpoint::Analyze, &event("apigw-analyze-malformed.json", &subs)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("malformed_json")));

    // A Lambda serves only its own endpoint.
    let (status, _, body) = invoke(&t.app, Endpoint::Health, &event("apigw-openapi.json", &[])).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));

    // The caller's address from API Gateway reaches the audit log.
    let mut create: Value = serde_json::from_str(&event("apigw-analyze.json", &subs)).unwrap();
    create["rawPath"] = "/api/v1/webhooks".into();
    create["requestContext"]["http"]["path"] = "/api/v1/webhooks".into();
    create["body"] = r#"{"target_url": "https://hooks.example.com/gvn"}"#.into();
    let (status, _, body) = invoke(&t.app, Endpoint::Webhooks, &create.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let audit = t.app.store.audit_for_actor(&user_id, 10).await.unwrap();
    let entry = audit.iter().find(|a| a.action == "webhook.create").expect("audited");
    assert_eq!(entry.ip_address, Some("203.0.113.10".parse().unwrap()));
}

/// Docker cannot run here, so the extraction image is checked for what can be checked: it
/// builds and runs the stage binary, installs what media analysis needs (the packages
/// scripts/media-tools installs), bakes in the speech model and points the stage at it, and
/// the template runs it as an image with room for a video.
#[test]
fn the_extraction_image_has_what_media_analysis_needs() {
    let root = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(format!("{root}/infra/extraction/Dockerfile")).unwrap();
    let tools = std::fs::read_to_string(format!("{root}/scripts/media-tools")).unwrap();
    let needed = tools.lines().find_map(|l| l.strip_prefix("packages=(")).unwrap().trim_end_matches(')');
    for package in needed.split_whitespace() {
        assert!(dockerfile.split_whitespace().any(|w| w == package), "the image lacks {package}");
    }
    assert!(dockerfile.contains("cargo build --release -p stage-extraction"));
    assert!(dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/stage-extraction"]"#));
    assert!(dockerfile.contains("scripts/whisper-model") && dockerfile.contains("ENV GOVIRAL_WHISPER_DIR=/opt/goviral/whisper-tiny.en"));
    assert!(dockerfile.contains("COPY --from=build /models/whisper-tiny.en /opt/goviral/whisper-tiny.en"));
    assert!(dockerfile.contains("scripts/face-model") && dockerfile.contains("ENV GOVIRAL_FACE_MODEL=/opt/goviral/centerface.onnx"));
    assert!(dockerfile.contains("COPY --from=build /models/centerface/centerface.onnx /opt/goviral/centerface.onnx"));
    let template = std::fs::read_to_string(format!("{root}/template.yaml")).unwrap();
    let function = template.split("  StageExtractionFunction:").nth(1).unwrap().split("\n\n").next().unwrap();
    for line in ["PackageType: Image", "Dockerfile: infra/extraction/Dockerfile", "MemorySize: 3584", "Timeout: 300"] {
        assert!(function.contains(line), "StageExtractionFunction lacks {line}");
    }
    let asl = std::fs::read_to_string(format!("{root}/infra/pipeline.asl.json")).unwrap();
    let extract: serde_json::Value = serde_json::from_str::<serde_json::Value>(&asl).unwrap()["States"]["Extract"].clone();
    assert!(extract["TimeoutSeconds"].as_u64().unwrap() >= 300, "the state machine waits as long as the function may run");
}

#[test]
fn template_declares_every_function_and_route() {
    let template = std::fs::read_to_string(format!("{}/../template.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let functions_dir = format!("{}/../functions", env!("CARGO_MANIFEST_DIR"));
    let mut packages: Vec<String> =
        std::fs::read_dir(&functions_dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    packages.sort();
    let mut declared: Vec<String> = template.lines().filter_map(|l| l.trim().strip_prefix("Binary: ").map(String::from)).collect();
    // Container-image functions name their binary in their Dockerfile.
    for dockerfile in template.lines().filter_map(|l| l.trim().strip_prefix("Dockerfile: ")) {
        let text = std::fs::read_to_string(format!("{}/../{dockerfile}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        declared.extend(text.split_whitespace().skip_while(|w| *w != "-p").nth(1).map(String::from));
    }
    declared.sort();
    assert_eq!(packages, declared, "functions/ and template.yaml disagree");
    // Every function has a sample event in events/ that a test drives.
    let tests = [include_str!("lambda_events.rs"), include_str!("state_machine.rs")].concat();
    let events: Vec<String> = std::fs::read_dir(format!("{}/../events", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for package in &packages {
        let prefix = match package.split_once('-').unwrap() {
            ("api", rest) => format!("apigw-{rest}"),
            ("stage", _) => format!("sqs-{package}"),
            ("cron", rest) => format!("schedule-{rest}"),
            ("upload", "intake") => "s3-upload-intake".to_string(),
            _ => panic!("{package}: unknown kind of function"),
        };
        assert!(
            events.iter().any(|e| e.starts_with(&prefix) && tests.contains(&format!("\"{e}\""))),
            "{package}: no sample event {prefix}*.json used by a test"
        );
    }
    for endpoint in Endpoint::ALL {
        assert!(packages.contains(&endpoint.function_name().to_string()), "{endpoint:?} has no package");
        let block = template.split(&format!("Binary: {}\n", endpoint.function_name())).nth(1).unwrap();
        let block = block.split("Type: AWS::Serverless::Function").next().unwrap();
        if *endpoint == Endpoint::AnalyzeEvents {
            // A response-streaming function URL: no API route.
            assert!(block.contains("InvokeMode: RESPONSE_STREAM"), "the live stream does not stream");
            continue;
        }
        for (method, path) in endpoint.routes() {
            assert!(
                block.contains(&format!("Method: {method}\n            Path: {path}\n")),
                "{method} {path} missing from {}",
                endpoint.function_name()
            );
        }
    }
    // Each stage Lambda consumes its own queue (which has a DLQ) and reports partial failures.
    for stage in domain::pipeline::Stage::ALL {
        let name = stage.function_name().to_string();
        assert!(packages.contains(&name), "{name} has no package");
        // Zip or image, a function is found by its name.
        let block = template.split(&format!("FunctionName: !Sub \"goviral-${{Stage}}-{name}\"\n")).nth(1).unwrap();
        let block = block.split("Type: AWS::Serverless::Function").next().unwrap();
        assert!(block.contains("FunctionResponseTypes: [ReportBatchItemFailures]"), "{name} does not report batch failures");
        let queue = block.split("Queue: !GetAtt ").nth(1).unwrap().split(".Arn").next().unwrap();
        let queue_block = template.split(&format!("  {queue}:\n")).nth(1).unwrap();
        assert!(queue_block.split("\n  Stage").next().unwrap().contains("deadLetterTargetArn"), "{queue} has no DLQ");
        let dlq = queue.replace("Queue", "Dlq");
        assert!(template.contains(&format!("Value: !GetAtt {dlq}.QueueName")), "{dlq} has no alarm");
    }
    // The state machine is the file in infra/, and every placeholder in it is substituted.
    assert!(template.contains("DefinitionUri: infra/pipeline.asl.json"));
    let asl = std::fs::read_to_string(format!("{}/../infra/pipeline.asl.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    for placeholder in asl.split("${").skip(1).map(|rest| rest.split('}').next().unwrap()) {
        assert!(template.contains(&format!("        {placeholder}: ")), "${{{placeholder}}} is not substituted");
    }
}

/// The context a stage Lambda builds, on the test app's store and the testkit's stage fakes.
fn stage_context(t: &TestApp, stages: &goviral_testkit::pipeline::Stages) -> domain::pipeline::StageContext {
    let webhooks = Arc::new(goviral_adapters::webhook::HttpWebhookSender::new(std::time::Duration::from_secs(1), false));
    stages.context(t.app.store.clone(), webhooks, domain::pipeline::WebhookPolicy { max_attempts: 5, allow_loopback: false })
}

/// Step Functions as the stage Lambdas see it: records every answer; one token cannot be
/// reported (Step Functions unreachable).
#[derive(Default)]
struct RecordingCallbacks {
    answers: std::sync::Mutex<Vec<(String, Result<Value, (String, String)>)>>,
}

#[async_trait::async_trait]
impl goviral_aws::TaskCallbacks for RecordingCallbacks {
    async fn succeed(&self, token: &str, output: &Value) -> domain::Result<goviral_aws::CallbackOutcome> {
        self.answer(token, Ok(output.clone()))
    }
    async fn fail(&self, token: &str, error: &str, cause: &str) -> domain::Result<goviral_aws::CallbackOutcome> {
        self.answer(token, Err((error.to_string(), cause.to_string())))
    }
}

impl RecordingCallbacks {
    fn answer(&self, token: &str, result: Result<Value, (String, String)>) -> domain::Result<goviral_aws::CallbackOutcome> {
        if token == "TOKEN-SFN-UNREACHABLE" {
            return Err(domain::Error::Unavailable("states.us-east-1.amazonaws.com: connection refused".into()));
        }
        self.answers.lock().unwrap().push((token.to_string(), result));
        Ok(goviral_aws::CallbackOutcome::Accepted)
    }
}

#[tokio::test]
async fn sqs_stage_batches_answer_step_functions_and_fail_only_what_was_not_reported() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let body = serde_json::json!({"content_type": "text", "caption": "A calm caption", "user_id": ann.user.id});
    let job = t.post("/api/v1/analyze").api_key(&ann.api_key).json(&body).send().await.body["job_id"].as_str().unwrap().to_string();
    let stages = goviral_testkit::pipeline::Stages::new();
    let ctx = stage_context(&t, &stages);
    let sqs: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(&event("sqs-stage-moderation.json", &[("REPLACE_WITH_JOB_ID", &job)])).expect("an SQS event");
    let callbacks = RecordingCallbacks::default();

    let response = goviral_lambda::stage::handle_sqs_event(&ctx, &callbacks, domain::pipeline::Stage::Moderation, sqs).await;

    // Only the poison message and the unreportable one go back to the queue (and on to its DLQ).
    let mut failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    failed.sort(); // messages are worked on concurrently; SQS does not care about order
    assert_eq!(failed, ["9d5e1c4a-0002-4c1b-9a55-000000000002", "9d5e1c4a-0006-4c1b-9a55-000000000006"]);
    let answers = callbacks.answers.lock().unwrap();
    let mut tokens: Vec<&str> = answers.iter().map(|(t, _)| t.as_str()).collect();
    tokens.sort();
    assert_eq!(tokens, ["TOKEN-BAD-INPUT", "TOKEN-FIRST", "TOKEN-FIRST", "TOKEN-MISROUTED"]);
    let answer = |token: &str| answers.iter().filter(|(t, _)| t == token).map(|(_, r)| r.clone()).collect::<Vec<_>>();
    // The redelivered message gets the same answer, and moderation ran on the real job.
    let moderated = serde_json::json!({"flagged": false, "text_key": format!("moderated/{job}.txt")});
    assert_eq!(answer("TOKEN-FIRST"), vec![Ok(moderated); 2]);
    let (error, cause) = answer("TOKEN-MISROUTED")[0].clone().unwrap_err();
    assert_eq!(error, "Stage.Permanent");
    assert!(cause.contains("inference") && cause.contains("moderation"), "{cause}");
    let (error, cause) = answer("TOKEN-BAD-INPUT")[0].clone().unwrap_err();
    assert_eq!(error, "Stage.Permanent");
    assert!(cause.contains("bad stage input"), "{cause}");
    // The wire shape Lambda expects back.
    let wire = serde_json::to_value(&response).unwrap();
    let mut ids: Vec<&str> = wire["batchItemFailures"].as_array().unwrap().iter().map(|f| f["itemIdentifier"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, failed);
}

#[tokio::test]
async fn every_api_function_answers_its_sample_event() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let admin = t.user("ops@example.com", Plan::Enterprise, true).await;
    let body = serde_json::json!({"content_type": "text", "caption": "A calm caption", "user_id": ann.user.id});
    let job = t.post("/api/v1/analyze").api_key(&ann.api_key).json(&body).send().await.body["job_id"].as_str().unwrap().to_string();
    let user_id = ann.user.id.to_string();
    let subs = [
        ("REPLACE_WITH_ADMIN_API_KEY", admin.api_key.as_str()),
        ("REPLACE_WITH_API_KEY", ann.api_key.as_str()),
        ("REPLACE_WITH_USER_ID", user_id.as_str()),
        ("REPLACE_WITH_JOB_ID", job.as_str()),
    ];
    let cases = [
        (Endpoint::AnalyzeStatus, "apigw-analyze-status.json", StatusCode::OK),
        (Endpoint::UserHistory, "apigw-user-history.json", StatusCode::OK),
        (Endpoint::AdminJobs, "apigw-admin-jobs.json", StatusCode::OK),
        (Endpoint::AdminDeadLetters, "apigw-admin-dead-letters.json", StatusCode::OK),
        (Endpoint::HooksCompletion, "apigw-hooks-completion-unsigned.json", StatusCode::UNAUTHORIZED),
        (Endpoint::Webhooks, "apigw-webhooks-create.json", StatusCode::CREATED),
        (Endpoint::Keys, "apigw-keys-list.json", StatusCode::OK),
        (Endpoint::Uploads, "apigw-uploads-create.json", StatusCode::CREATED),
        (Endpoint::Usage, "apigw-usage-current.json", StatusCode::OK),
        (Endpoint::AdminUsage, "apigw-admin-usage-terms.json", StatusCode::OK),
    ];
    for (endpoint, file, expected) in cases {
        let (status, headers, body) = invoke(&t.app, endpoint, &event(file, &subs)).await;
        assert_eq!(status, expected, "{file}: {body}");
        assert!(headers.contains_key("x-request-id"), "{file}");
        if !status.is_success() {
            assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string(), "{file}: {body}");
        }
    }
    let (_, _, status) = invoke(&t.app, Endpoint::AnalyzeStatus, &event("apigw-analyze-status.json", &subs)).await;
    assert_eq!(status["job_id"].as_str(), Some(job.as_str()));
    let (_, _, history) = invoke(&t.app, Endpoint::UserHistory, &event("apigw-user-history.json", &subs)).await;
    assert_eq!(history["items"][0]["job_id"].as_str(), Some(job.as_str()), "{history}");
    // The operator's change took, and the account's standing shows it (and the one analysis).
    let (_, _, usage) = invoke(&t.app, Endpoint::Usage, &event("apigw-usage-current.json", &subs)).await;
    assert_eq!(
        (usage["allowance"].as_u64(), usage["credits"].as_u64(), usage["used"].as_u64()),
        (Some(500), Some(100), Some(1)),
        "{usage}"
    );
}

/// Each stage's sample batch, in pipeline order on one job: the good message is answered with
/// the stage's real output, the poison message is the only batch item failure.
#[tokio::test]
async fn stage_sample_events_run_every_stage_and_fail_only_the_poison_message() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let submit = |caption: &'static str| {
        let body = serde_json::json!({"content_type": "text", "caption": caption, "user_id": ann.user.id});
        let call = t.post("/api/v1/analyze").api_key(&ann.api_key).json(&body);
        async move { call.send().await.body["job_id"].as_str().unwrap().to_string() }
    };
    let job = submit("Five mistakes everyone makes with sourdough (and the one fix)").await;
    let failed_job = submit("A second caption that will be marked failed").await;
    let stages = goviral_testkit::pipeline::Stages::new();
    let ctx = stage_context(&t, &stages);
    let subs = [("REPLACE_WITH_FAILED_JOB_ID", failed_job.as_str()), ("REPLACE_WITH_JOB_ID", job.as_str())];
    let batches = [
        (Stage::Extraction, "sqs-stage-extraction.json"),
        (Stage::Inference, "sqs-stage-inference.json"),
        (Stage::Webhook, "sqs-stage-webhook.json"),
        (Stage::Failure, "sqs-stage-failure.json"),
    ];
    for (stage, file) in batches {
        let sqs: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_str(&event(file, &subs)).expect("an SQS event");
        let poison = sqs.records[1].message_id.clone().unwrap();
        let callbacks = RecordingCallbacks::default();
        let response = goviral_lambda::stage::handle_sqs_event(&ctx, &callbacks, stage, sqs).await;
        let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        assert_eq!(failed, [poison.as_str()], "{file}");
        let answers = callbacks.answers.lock().unwrap();
        assert_eq!(answers.len(), 1, "{file}");
        assert_eq!(answers[0].0, format!("TOKEN-{}", stage.as_str().to_uppercase()));
        let output = answers[0].1.clone().unwrap_or_else(|e| panic!("{file}: {e:?}"));
        match stage {
            Stage::Extraction => assert_eq!(output["features_key"], format!("features/{job}.json")),
            Stage::Inference => assert!(output["score"].as_f64().is_some_and(|s| (0.0..=100.0).contains(&s)), "{output}"),
            Stage::Webhook => assert_eq!(output["delivered"], 0, "no webhook subscribed: {output}"),
            _ => assert_eq!(output["failed"], true),
        }
    }
    let done = t.app.store.job(job.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(done.status, domain::model::JobStatus::Complete);
    let failed = t.app.store.job(failed_job.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(failed.status, domain::model::JobStatus::Failed);
    assert_eq!(failed.errors.unwrap()[0]["stage"], "inference");
}

/// The scheduled event drives the sweep Lambda's handler against Step Functions (moto): the
/// queued job without an execution gets one; a second sweep starts nothing.
#[tokio::test]
async fn the_schedule_event_sweeps_queued_jobs_into_step_functions() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let body = serde_json::json!({"content_type": "text", "caption": "Left queued", "user_id": ann.user.id});
    let job: uuid::Uuid =
        t.post("/api/v1/analyze").api_key(&ann.api_key).json(&body).send().await.body["job_id"].as_str().unwrap().parse().unwrap();
    let config = crate::aws::config().await;
    let sfn = aws_sdk_sfn::Client::new(&config);
    // A stand-in machine that waits, so the execution is still there to be found.
    let machine = sfn
        .create_state_machine()
        .name(crate::aws::unique("sweep"))
        .definition(r#"{"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 30, "End": true}}}"#)
        .role_arn("arn:aws:iam::123456789012:role/goviral-pipeline")
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_string();
    let pipeline = goviral_aws::StepFunctionsPipeline::new(&config, &machine, t.app.store.clone());
    let scheduled: goviral_lambda::ScheduledEvent =
        serde_json::from_str(&event("schedule-pipeline-sweep.json", &[])).expect("a scheduled event");
    assert_eq!(scheduled.detail_type, "Scheduled Event");

    let report = goviral_lambda::sweep(t.app.store.as_ref(), &pipeline, scheduled.clone()).await.unwrap();
    assert_eq!(report, serde_json::json!({"started": 1, "already_started": 0}));
    assert!(pipeline.has_execution(job).await.unwrap());
    let execution = sfn.describe_execution().execution_arn(pipeline.execution_arn(job)).send().await.unwrap();
    assert_eq!(serde_json::from_str::<Value>(execution.input().unwrap()).unwrap(), serde_json::json!({"job_id": job}));
    let report = goviral_lambda::sweep(t.app.store.as_ref(), &pipeline, scheduled).await.unwrap();
    assert_eq!(report, serde_json::json!({"started": 0, "already_started": 1}));
}

/// The quota job's schedule event drives its handler: it reconciles the current period and
/// reports what it checked.
#[tokio::test]
async fn the_quota_job_answers_its_schedule_event() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let body = serde_json::json!({"content_type": "text", "caption": "Counted once", "user_id": ann.user.id});
    assert_eq!(t.post("/api/v1/analyze").api_key(&ann.api_key).json(&body).send().await.status, StatusCode::CREATED);
    let scheduled: goviral_lambda::ScheduledEvent = serde_json::from_str(&event("schedule-quota.json", &[])).expect("a scheduled event");
    let webhooks = goviral_adapters::webhook::HttpWebhookSender::new(std::time::Duration::from_secs(2), true);
    let terms = t.config.settings.usage;
    let job = domain::usage::QuotaJob { store: t.app.store.as_ref(), sink: None, webhooks: &webhooks, terms: &terms };
    let report = goviral_lambda::quota(&job, scheduled).await.unwrap();
    assert_eq!((report["accounts_checked"].as_u64(), report["drifted"].as_array().map(Vec::len)), (Some(1), Some(0)), "{report}");
    assert_eq!(report["periods"][0].as_str(), Some(domain::usage::Period::of(domain::model::now()).key.as_str()));
}

/// The account functions' sample events, in the order a creator goes: start a connection,
/// come back from the platform (a fake of YouTube's API on loopback), follow a post; then
/// `cron-outcomes`' schedule event runs the collection.
#[tokio::test]
async fn the_account_functions_and_cron_outcomes_answer_their_sample_events() {
    use goviral_testkit::platforms::FakePlatform;
    let youtube = FakePlatform::start(domain::model::Platform::Youtube, 3).await;
    let apps = vec![(youtube.platform, youtube.settings())];
    let t = TestApp::spawn_tuned(Backend::Sqlite, Default::default(), Default::default(), move |c| c.accounts.apps = apps).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let subs = [("REPLACE_WITH_API_KEY", ann.api_key.as_str())];
    let (status, _, started) = invoke(&t.app, Endpoint::Accounts, &event("apigw-accounts-connect.json", &subs)).await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let back = url::Url::parse(&youtube.consent(started["authorize_url"].as_str().unwrap())).unwrap();
    let param = |name: &str| back.query_pairs().find(|(k, _)| k == name).unwrap().1.to_string();
    let (code, state) = (param("code"), param("state"));
    let subs =
        [("REPLACE_WITH_STATE", state.as_str()), ("REPLACE_WITH_CODE", code.as_str()), ("REPLACE_WITH_API_KEY", ann.api_key.as_str())];
    let (status, _, account) = invoke(&t.app, Endpoint::AccountsCallback, &event("apigw-accounts-callback.json", &subs)).await;
    assert_eq!(status, StatusCode::CREATED, "{account}");

    let body = serde_json::json!({"content_type": "text", "caption": "A calm caption", "user_id": ann.user.id});
    let job = t.post("/api/v1/analyze").api_key(&ann.api_key).json(&body).send().await.body["job_id"].as_str().unwrap().to_string();
    let result = domain::model::JobResult { score: 50.0, confidence: 0.6, insights: vec![], metrics: serde_json::json!({}) };
    t.app.store.complete_job(job.parse().unwrap(), &result, None, domain::model::now()).await.unwrap();
    let post = youtube.posts()[0].id.clone();
    let subs = [
        ("REPLACE_WITH_API_KEY", ann.api_key.as_str()),
        ("REPLACE_WITH_JOB_ID", job.as_str()),
        ("REPLACE_WITH_ACCOUNT_ID", account["account_id"].as_str().unwrap()),
        ("REPLACE_WITH_POST_ID", post.as_str()),
    ];
    let (status, _, followed) = invoke(&t.app, Endpoint::AnalyzePosts, &event("apigw-analyze-posts.json", &subs)).await;
    assert_eq!(status, StatusCode::CREATED, "{followed}");
    assert_eq!(followed["observation"]["views"].as_u64(), Some(youtube.posts()[0].views));

    let scheduled: goviral_lambda::ScheduledEvent = serde_json::from_str(&event("schedule-outcomes.json", &[])).expect("a scheduled event");
    let report = goviral_lambda::collect(&t.app, scheduled).await.unwrap();
    assert_eq!((report["due"].as_u64(), report["observed"].as_u64()), (Some(0), Some(0)), "the 24 h reading is not due yet: {report}");
}

/// The registry function's sample event: an admin approves a registered candidate.
#[tokio::test]
async fn the_model_registry_function_answers_its_sample_event() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let admin = t.user("ops@example.com", Plan::Enterprise, true).await;
    let candidate = domain::registry::Candidate {
        name: "headline".into(),
        artifact: goviral_scoring::Model::embedded_bytes().to_vec(),
        training_data_hash: "sha256:test".into(),
        code_version: "test".into(),
        metrics: serde_json::json!({"gate": {"pairwise_accuracy": 0.71, "pairs": 100}, "serving": {"pairwise_accuracy": 0.70, "pairs": 100}}),
        gate_passed: true,
    };
    let v = domain::registry::register(t.app.store.as_ref(), t.blobs.as_ref(), candidate).await.unwrap();
    let id = v.id.to_string();
    let subs = [("REPLACE_WITH_ADMIN_API_KEY", admin.api_key.as_str()), ("REPLACE_WITH_MODEL_VERSION_ID", id.as_str())];
    let (status, _, body) = invoke(&t.app, Endpoint::AdminModels, &event("apigw-admin-models-approve.json", &subs)).await;
    assert_eq!(
        (status, body["state"].as_str(), body["decision_note"].as_str()),
        (StatusCode::OK, Some("approved"), Some("beats headline@1 on the gate")),
        "{body}"
    );
}

/// cron-retrain's schedule event runs a retraining from the blob store's training prefix and
/// registers a candidate.
#[tokio::test]
async fn the_retrain_job_answers_its_schedule_event() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    crate::registry::creator_outcomes(&t, &ann.api_key, ann.user.id).await;
    for (name, text) in [("train.csv", crate::registry::synthetic_tests(120, 1)), ("gate.csv", crate::registry::synthetic_tests(60, 2))] {
        t.blobs.put(&format!("training/{name}"), text.into_bytes(), "text/csv").await.unwrap();
    }
    let mut config = t.config.clone();
    config.training_prefix = Some("training".into());
    let swaps = goviral_app::Swaps { store: Some(Arc::new(t.db.store.clone())), blobs: Some(t.blobs.clone()), ..Default::default() };
    let composition = goviral_app::Composition::new(config).swap(swaps);
    let scheduled: goviral_lambda::ScheduledEvent = serde_json::from_str(&event("schedule-retrain.json", &[])).expect("a scheduled event");
    let report = goviral_lambda::retrain(&composition, scheduled).await.unwrap();
    assert_eq!(
        (report["label"].as_str(), report["state"].as_str(), report["outcome_pairs"].as_u64()),
        (Some("headline@1"), Some("candidate"), Some(36)),
        "{report}"
    );
}

/// The text the intake sample event reports (its first record's size is this many bytes).
const UPLOADED_SCRIPT: &str =
    "Stop scrolling: the three edits that doubled our watch time.\nWhich one will you try first? Tell me below.\n";

/// S3's ObjectCreated event drives the intake Lambda's handler against S3 (moto): the upload
/// that arrived whole becomes ready, the one that arrived short is rejected, a key that is no
/// upload is ignored, and a redelivered event changes nothing.
#[tokio::test]
async fn the_s3_event_takes_uploads_in() {
    use domain::model::UploadStatus;
    let t = TestApp::spawn(Backend::Postgres).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let config = crate::aws::config().await;
    let bucket = crate::aws::unique("goviral-intake");
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let blobs = goviral_aws::S3BlobStore::new(&config, &bucket, true);
    // The uploads are made the way the uploads Lambda makes them: signed by S3 itself.
    let app = domain::service::App::new(t.app.store.clone(), t.app.counters.clone(), goviral_testkit::test_settings(Default::default()))
        .with_url_signer(std::sync::Arc::new(blobs.clone()));
    let principal = app.authenticate_api_key(&ann.api_key, &Default::default()).await.unwrap();
    let text = domain::uploads::UploadInput { media_type: "text/plain".into(), size_bytes: UPLOADED_SCRIPT.len() as u64, filename: None };
    let script = app.create_upload(&principal, text).await.unwrap();
    let short = domain::uploads::UploadInput { media_type: "video/mp4".into(), size_bytes: 4096, filename: Some("cut.mp4".into()) };
    let short = app.create_upload(&principal, short).await.unwrap();
    blobs.put(&script.upload.storage_key, UPLOADED_SCRIPT.as_bytes().to_vec(), "text/plain").await.unwrap();

    let (user_id, script_id, short_id) = (ann.user.id.to_string(), script.upload.id.to_string(), short.upload.id.to_string());
    let subs = [
        ("REPLACE_WITH_USER_ID", user_id.as_str()),
        ("REPLACE_WITH_UPLOAD_ID", script_id.as_str()),
        ("REPLACE_WITH_SHORT_UPLOAD_ID", short_id.as_str()),
    ];
    let s3_event: goviral_lambda::S3Event = serde_json::from_str(&event("s3-upload-intake.json", &subs)).expect("an S3 event");
    assert_eq!(s3_event.records[0].s3.object.size, Some(UPLOADED_SCRIPT.len() as i64));

    let report = goviral_lambda::intake(t.app.store.as_ref(), &blobs, s3_event.clone()).await.unwrap();
    let outcomes: Vec<&str> = report["records"].as_array().unwrap().iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert!(outcomes[0].starts_with("Ready") && outcomes[1].starts_with("Rejected") && outcomes[2] == "Unknown", "{report}");
    assert_eq!(report["records"][2]["key"], "uploads/someone's notes.txt", "keys are URL-decoded");
    let ready = t.app.store.upload(script.upload.id).await.unwrap().unwrap();
    assert_eq!((ready.status, ready.received_bytes), (UploadStatus::Ready, Some(UPLOADED_SCRIPT.len() as u64)));
    let rejected = t.app.store.upload(short.upload.id).await.unwrap().unwrap();
    assert_eq!(rejected.status, UploadStatus::Rejected);
    assert_eq!(rejected.rejection.as_deref(), Some("12 bytes arrived, 4096 were declared"));

    let again = goviral_lambda::intake(t.app.store.as_ref(), &blobs, s3_event.clone()).await.unwrap();
    assert!(again["records"][0]["outcome"].as_str().unwrap().starts_with("AlreadyFinished"), "{again}");
    assert_eq!(t.app.store.upload(script.upload.id).await.unwrap().unwrap(), ready);

    // S3 unreachable while a text upload is checked: the invocation fails, to be retried.
    let third = domain::uploads::UploadInput { media_type: "text/plain".into(), size_bytes: UPLOADED_SCRIPT.len() as u64, filename: None };
    let third = app.create_upload(&principal, third).await.unwrap();
    let third_id = third.upload.id.to_string();
    let subs = [
        ("REPLACE_WITH_USER_ID", user_id.as_str()),
        ("REPLACE_WITH_UPLOAD_ID", third_id.as_str()),
        ("REPLACE_WITH_SHORT_UPLOAD_ID", short_id.as_str()),
    ];
    let retry: goviral_lambda::S3Event = serde_json::from_str(&event("s3-upload-intake.json", &subs)).unwrap();
    let gone = goviral_aws::S3BlobStore::new(&config, "goviral-no-such-bucket", true);
    assert!(matches!(goviral_lambda::intake(t.app.store.as_ref(), &gone, retry).await, Err(domain::Error::Unavailable(_))));
    assert_eq!(t.app.store.upload(third.upload.id).await.unwrap().unwrap().status, UploadStatus::Pending);
}

/// A batch is worked on concurrently: three webhook deliveries whose receiver answers only
/// once all three are waiting at once. One at a time, the first would wait for ever (here:
/// until the receiver gives up and answers 500).
#[tokio::test]
async fn a_webhook_batch_is_delivered_concurrently_so_one_slow_receiver_holds_up_nothing() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(3));
    let receiver = axum::Router::new().fallback(move || {
        let barrier = barrier.clone();
        async move {
            match tokio::time::timeout(std::time::Duration::from_secs(5), barrier.wait()).await {
                Ok(_) => http::StatusCode::NO_CONTENT,
                Err(_) => http::StatusCode::INTERNAL_SERVER_ERROR,
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });
    let mut records = Vec::new();
    for i in 0..3 {
        let body =
            serde_json::json!({"content_type": "text", "caption": format!("Caption {i}"), "user_id": ann.user.id, "notify_webhook": url});
        let job: uuid::Uuid =
            t.post("/api/v1/analyze").api_key(&ann.api_key).json(&body).send().await.body["job_id"].as_str().unwrap().parse().unwrap();
        t.app.store.fail_job(job, &serde_json::json!([]), None, domain::model::now()).await.unwrap();
        let message = serde_json::json!({"stage": "webhook", "input": {"job_id": job}, "task_token": format!("TOKEN-{i}")});
        records.push((format!("message-{i}"), message.to_string()));
    }
    let stages = goviral_testkit::pipeline::Stages::new();
    let mut ctx = stage_context(&t, &stages);
    ctx.webhooks = Arc::new(goviral_adapters::webhook::HttpWebhookSender::new(std::time::Duration::from_secs(10), true));
    ctx.webhook_policy.allow_loopback = true;
    let callbacks = RecordingCallbacks::default();
    let started = std::time::Instant::now();
    let failed = goviral_lambda::stage::process_batch(&ctx, &callbacks, Stage::Webhook, records).await;
    assert!(failed.is_empty(), "{failed:?}");
    let answers = callbacks.answers.lock().unwrap();
    assert_eq!(answers.len(), 3);
    for (token, result) in answers.iter() {
        let output = result.clone().unwrap_or_else(|e| panic!("{token}: {e:?}"));
        assert_eq!(output["delivered"], 1, "{token}: {output}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "the deliveries waited on each other");
}
