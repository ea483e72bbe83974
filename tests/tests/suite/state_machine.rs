//! infra/pipeline.asl.json executed by Step Functions (moto, with execution enabled by
//! scripts/test) over the real stage binaries, served Lambda-style by `cargo lambda watch`.
//!
//! The state machine hands work to the stages through SQS with task tokens, so what sits
//! between moto and the binaries here is the SQS event source mapping: `EventSource` polls
//! each stage queue, invokes the stage's function with an SQS event through cargo lambda's
//! invoke API, and deletes what the function did not report as a batch item failure. A
//! failure stays, is received again after its visibility timeout, and after
//! `maxReceiveCount` receives moto's redrive policy moves it to the stage's DLQ.
//!
//! Everything the binaries read comes from configuration: secrets (JWT key, database
//! credentials) from Secrets Manager, blobs in S3, the database on the local PostgreSQL.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEventType};
use aws_sdk_sqs::types::QueueAttributeName;
use domain::model::{JobStatus, Plan, Role};
use domain::pipeline::Stage;
use domain::ports::Store;
use domain::service::{AnalyzeInput, App, RateLimits};
use goviral_testkit::TestDb;
use serde_json::{Value, json};
use uuid::Uuid;

const STAGES: [Stage; 5] = [Stage::Moderation, Stage::Extraction, Stage::Inference, Stage::Webhook, Stage::Failure];
/// Receives before SQS moves a message to the DLQ (the template uses 5; fewer keeps this quick).
const MAX_RECEIVES: u32 = 2;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct StageQueue {
    stage: Stage,
    url: String,
    dlq_url: String,
}

/// `cargo lambda watch` serving the workspace's functions on a loopback port; killed on drop.
pub(crate) struct LambdaWatch {
    child: tokio::process::Child,
    invoke_url: String,
    /// Where function URLs are served: `{base}/lambda-url/<function>/<path>`.
    pub(crate) base_url: String,
}

impl LambdaWatch {
    pub(crate) async fn start(env: &[(String, String)]) -> LambdaWatch {
        let bin = std::env::var("GOVIRAL_CARGO_LAMBDA").expect("GOVIRAL_CARGO_LAMBDA: run the suite through scripts/test");
        let port = free_port();
        let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let log = std::fs::File::create(std::env::temp_dir().join(format!("goviral-lambda-watch-{port}.log"))).unwrap();
        let child = tokio::process::Command::new(bin)
            .args(["lambda", "watch", "-A", "127.0.0.1", "-P", &port.to_string(), "--ignore-changes", "--quiet"])
            .current_dir(workspace)
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start cargo lambda watch");
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "cargo lambda watch did not listen on {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        LambdaWatch {
            child,
            invoke_url: format!("http://127.0.0.1:{port}/2015-03-31/functions"),
            base_url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for LambdaWatch {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The SQS → Lambda event source mapping, as AWS runs it with `ReportBatchItemFailures`.
struct EventSource {
    sqs: aws_sdk_sqs::Client,
    queues: Vec<StageQueue>,
    invoke_url: String,
    http: HttpClient,
    /// Function invocations per stage, and how many messages each reported failed.
    invocations: tokio::sync::Mutex<HashMap<&'static str, (u32, u32)>>,
    /// Delivery stops after the first batch of real stage messages until the test resumes
    /// it: the test changes the world (creates the bucket) between a failed attempt and its
    /// retry, whatever the retry's jittered delay.
    pause_after_first_task: AtomicBool,
    paused: AtomicBool,
}

impl EventSource {
    async fn poll_once(&self) {
        for queue in &self.queues {
            if self.paused.load(Ordering::SeqCst) {
                return;
            }
            let received = self
                .sqs
                .receive_message()
                .queue_url(&queue.url)
                .max_number_of_messages(10)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await
                .unwrap();
            let messages = received.messages();
            if messages.is_empty() {
                continue;
            }
            let records: Vec<Value> = messages
                .iter()
                .map(|m| {
                    json!({
                        "messageId": m.message_id(),
                        "receiptHandle": m.receipt_handle(),
                        "body": m.body(),
                        "attributes": {"ApproximateReceiveCount": m.attributes().and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)).cloned().unwrap_or_default()},
                        "messageAttributes": {},
                        "eventSource": "aws:sqs",
                        "eventSourceARN": format!("arn:aws:sqs:us-east-1:123456789012:{}", queue.url.rsplit('/').next().unwrap()),
                        "awsRegion": "us-east-1"
                    })
                })
                .collect();
            let url = format!("{}/{}/invocations", self.invoke_url, queue.stage.function_name());
            let (status, response) = post_json(&self.http, &url, &json!({ "Records": records })).await;
            let failed: Vec<String> = if status == 200 && response["batchItemFailures"].is_array() {
                response["batchItemFailures"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
                    .collect()
            } else {
                // A function error: the whole batch stays for redelivery.
                messages.iter().map(|m| m.message_id().unwrap().to_string()).collect()
            };
            {
                let mut counts = self.invocations.lock().await;
                let entry = counts.entry(queue.stage.as_str()).or_default();
                entry.0 += 1;
                entry.1 += failed.len() as u32;
            }
            let carried_a_task = messages
                .iter()
                .any(|m| serde_json::from_str::<Value>(m.body().unwrap_or_default()).is_ok_and(|b| b["task_token"].is_string()));
            if carried_a_task && self.pause_after_first_task.swap(false, Ordering::SeqCst) {
                self.paused.store(true, Ordering::SeqCst);
            }
            for m in messages {
                if !failed.iter().any(|id| Some(id.as_str()) == m.message_id()) {
                    self.sqs.delete_message().queue_url(&queue.url).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
                }
            }
        }
    }

    fn spawn(self: Arc<Self>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                self.poll_once().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }
}

type HttpClient =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, http_body_util::Full<hyper::body::Bytes>>;

/// One invocation through cargo lambda's Lambda invoke API: (HTTP status, JSON answer).
async fn post_json(http: &HttpClient, url: &str, body: &Value) -> (u16, Value) {
    use http_body_util::BodyExt;
    let request = http::Request::post(url).body(http_body_util::Full::new(hyper::body::Bytes::from(body.to_string()))).unwrap();
    let response = http.request(request).await.expect("cargo lambda watch answers");
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

struct Moto {
    config: aws_config::SdkConfig,
    sfn: aws_sdk_sfn::Client,
    sqs: aws_sdk_sqs::Client,
}

impl Moto {
    async fn new() -> Moto {
        let config = crate::aws::config().await;
        Moto { sfn: aws_sdk_sfn::Client::new(&config), sqs: aws_sdk_sqs::Client::new(&config), config }
    }

    async fn stage_queue(&self, stage: Stage, run: &str) -> StageQueue {
        let name = format!("goviral-{run}-{}", stage.as_str());
        let dlq_url = self.sqs.create_queue().queue_name(format!("{name}-dlq")).send().await.unwrap().queue_url().unwrap().to_string();
        let dlq_arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}-dlq");
        let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES}).to_string();
        let url = self
            .sqs
            .create_queue()
            .queue_name(&name)
            .attributes(QueueAttributeName::VisibilityTimeout, "1")
            .attributes(QueueAttributeName::RedrivePolicy, redrive)
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_string();
        StageQueue { stage, url, dlq_url }
    }

    /// The state machine from infra/, with the template's substitutions applied.
    async fn state_machine(&self, run: &str, queues: &[StageQueue]) -> String {
        let mut definition = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/pipeline.asl.json")).unwrap();
        for q in queues {
            let stage = q.stage.as_str();
            let placeholder = format!("${{{}{}QueueUrl}}", stage[..1].to_uppercase(), &stage[1..]);
            assert!(definition.contains(&placeholder), "{placeholder} missing from the ASL");
            definition = definition.replace(&placeholder, &q.url);
        }
        assert!(!definition.contains("${"), "every substitution is applied");
        // One change to the file's policy: the stages that write to S3 first (Moderate keeps
        // the text it passed; Extract the features) may retry 8 times instead of 3, so the
        // test can notice the first S3 failure and bring S3 back before full-jitter retries
        // (which may come at once) run out on a loaded machine.
        let mut parsed: Value = serde_json::from_str(&definition).unwrap();
        for state in ["Moderate", "Extract"] {
            let retry = &mut parsed["States"][state]["Retry"][0]["MaxAttempts"];
            assert_eq!(*retry, json!(3), "the retry policy this test relaxes");
            *retry = json!(8);
        }
        let definition = parsed.to_string();
        self.sfn
            .create_state_machine()
            .name(format!("goviral-{run}"))
            .definition(definition)
            .role_arn("arn:aws:iam::123456789012:role/goviral-pipeline")
            .send()
            .await
            .unwrap()
            .state_machine_arn()
            .to_string()
    }

    async fn secret(&self, name: &str, value: &str) -> String {
        let sm = aws_sdk_secretsmanager::Client::new(&self.config);
        sm.create_secret().name(name).secret_string(value).send().await.unwrap().arn().unwrap().to_string()
    }

    async fn execution(&self, arn: &str) -> (ExecutionStatus, Vec<aws_sdk_sfn::types::HistoryEvent>) {
        let status = self.sfn.describe_execution().execution_arn(arn).send().await.unwrap().status().clone();
        let history = self.sfn.get_execution_history().execution_arn(arn).max_results(1000).send().await.unwrap().events().to_vec();
        (status, history)
    }

    async fn wait_until_done(&self, arn: &str, timeout: Duration) -> (ExecutionStatus, Vec<aws_sdk_sfn::types::HistoryEvent>) {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, history) = self.execution(arn).await;
            if status != ExecutionStatus::Running {
                return (status, history);
            }
            assert!(Instant::now() < deadline, "execution {arn} still running after {timeout:?}; history: {}", summary(&history));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The task failures of an execution, as (error, cause).
/// The execution as one line per event: type, state entered, error.
fn summary(history: &[aws_sdk_sfn::types::HistoryEvent]) -> String {
    history
        .iter()
        .map(|e| {
            let state = e.state_entered_event_details().map(|d| d.name()).unwrap_or_default();
            let failed =
                e.task_failed_event_details().map(|d| format!("{} {}", d.error().unwrap_or_default(), d.cause().unwrap_or_default()));
            let execution_failed =
                e.execution_failed_event_details().map(|d| format!("{} {}", d.error().unwrap_or_default(), d.cause().unwrap_or_default()));
            format!("{:?} {state} {}{}", e.r#type(), failed.unwrap_or_default(), execution_failed.unwrap_or_default())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn task_failures(history: &[aws_sdk_sfn::types::HistoryEvent]) -> Vec<(String, String)> {
    history
        .iter()
        .filter(|e| e.r#type() == &HistoryEventType::TaskFailed)
        .filter_map(|e| e.task_failed_event_details())
        .map(|d| (d.error().unwrap_or_default().to_string(), d.cause().unwrap_or_default().to_string()))
        .collect()
}

#[tokio::test]
async fn the_state_machine_runs_the_stage_binaries_with_retry_catch_and_dlq() {
    let moto = Moto::new().await;
    let run = Uuid::now_v7().simple().to_string()[20..].to_string();
    let db = TestDb::postgres().await;

    // Secrets the binaries read at init, as on AWS.
    let pg: sqlx::postgres::PgConnectOptions = db.url.parse().unwrap();
    let db_secret = json!({
        "username": pg.get_username(), "password": "", "engine": "postgres",
        "host": pg.get_host(), "port": pg.get_port(), "dbname": pg.get_database().unwrap()
    });
    let db_secret_arn = moto.secret(&format!("goviral-{run}/database"), &db_secret.to_string()).await;
    let jwt_secret_arn = moto.secret(&format!("goviral-{run}/jwt"), &"j".repeat(48)).await;

    let mut queues = Vec::new();
    for stage in STAGES {
        queues.push(moto.stage_queue(stage, &run).await);
    }
    let machine_arn = moto.state_machine(&run, &queues).await;
    // The bucket is created only after the first extraction failed: S3 "down" is retried.
    let bucket = format!("goviral-{run}-blobs");

    let endpoint = crate::aws::endpoint();
    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("GOVIRAL_DATABASE_SECRET_ARN", db_secret_arn.as_str()),
        ("GOVIRAL_DATABASE_SSLMODE", "disable"),
        ("GOVIRAL_JWT_SECRET_ARN", jwt_secret_arn.as_str()),
        ("GOVIRAL_BLOB_BUCKET", bucket.as_str()),
        ("GOVIRAL_S3_PATH_STYLE", "true"),
        // The silent video is served from this machine.
        ("GOVIRAL_MEDIA_ALLOW_LOOPBACK", "true"),
        ("RUST_LOG", "info"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let watch = LambdaWatch::start(&env).await;

    // The API side: the domain App on DynamoDB counters and the Step Functions pipeline.
    let store: Arc<goviral_sql::SqlStore> = Arc::new(db.store.clone());
    let (counters_table, keys_table) = crate::aws::counter_tables(&moto.config).await;
    let counters = Arc::new(goviral_aws::DynamoCounters::new(&moto.config, counters_table, keys_table));
    let pipeline = Arc::new(goviral_aws::StepFunctionsPipeline::new(&moto.config, &machine_arn, store.clone()));
    let app = App::new(store.clone(), counters, goviral_testkit::test_settings(RateLimits::default())).with_pipeline(pipeline.clone());
    let ann = app.create_user("ann@example.com", Plan::Pro, vec![Role::User], "test").await.unwrap();
    let principal = app.authenticate_api_key(&ann.api_key, &Default::default()).await.unwrap();
    let input = |caption: Option<&str>, source_url: Option<&str>| AnalyzeInput {
        content_type: if source_url.is_some() { domain::model::ContentType::Video } else { domain::model::ContentType::Text },
        source_url: source_url.map(str::to_string),
        upload_id: None,
        caption: caption.map(str::to_string),
        platform_hint: None,
        user_id: principal.user.id,
        notify_webhook: None,
    };

    const GOOD_CAPTION: &str = "You won't believe what this dog did when the mail came. Watch till the end!";
    // A good caption (started by the API), and a video with no text at all (nothing to score:
    // a permanent error the state machine catches).
    let (good, _) = app.submit(&principal, input(Some(GOOD_CAPTION), None), Some("idem-1")).await.unwrap();
    let silent_url = goviral_testkit::media::serve_clip(goviral_testkit::media::mute_clip()).await;
    let (silent, _) = app.submit(&principal, input(None, Some(&silent_url)), None).await.unwrap();
    // The same Idempotency-Key and body replays the job; no second execution.
    let (replay, _) = app.submit(&principal, input(Some(GOOD_CAPTION), None), Some("idem-1")).await.unwrap();
    assert!(replay.replayed && replay.job_id == good.job_id);
    // Starting a job again (a retried hand-off) is harmless: one execution per job, named by its id.
    pipeline.start(good.job_id).await.unwrap();
    assert!(pipeline.has_execution(good.job_id).await.unwrap());
    let executions = moto.sfn.list_executions().state_machine_arn(&machine_arn).send().await.unwrap();
    assert_eq!(executions.executions().len(), 2, "{executions:?}");

    // A poison message on the moderation queue: reported failed until SQS dead-letters it.
    let (moderation_url, moderation_dlq) = (queues[0].url.clone(), queues[0].dlq_url.clone());
    moto.sqs.send_message().queue_url(&moderation_url).message_body("{not a stage message").send().await.unwrap();

    let source = Arc::new(EventSource {
        sqs: moto.sqs.clone(),
        queues,
        invoke_url: watch.invoke_url.clone(),
        http: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http(),
        invocations: tokio::sync::Mutex::new(HashMap::new()),
        pause_after_first_task: AtomicBool::new(true),
        paused: AtomicBool::new(false),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let poller = source.clone().spawn(stop.clone());

    // The first stage attempt fails on the missing bucket (delivery pauses right after it),
    // then S3 comes "back" and delivery resumes: the failure must have been retried.
    let good_arn = pipeline.execution_arn(good.job_id);
    let silent_arn = pipeline.execution_arn(silent.job_id);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut failed = false;
        if source.paused.load(Ordering::SeqCst) {
            for arn in [&good_arn, &silent_arn] {
                let (_, history) = moto.execution(arn).await;
                failed |= task_failures(&history).iter().any(|(error, _)| error == "Stage.Retryable");
            }
        }
        if failed {
            break;
        }
        assert!(Instant::now() < deadline, "no stage failed on the missing bucket: {}", summary(&moto.execution(&good_arn).await.1));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&moto.config).force_path_style(true).build());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    source.paused.store(false, Ordering::SeqCst);

    // Happy path, after a retry: scored, explained, the features blob in S3.
    let (status, history) = moto.wait_until_done(&good_arn, Duration::from_secs(120)).await;
    assert_eq!(status, ExecutionStatus::Succeeded, "{}", summary(&history));
    let failures = task_failures(&history);
    assert!(failures.iter().all(|(e, _)| e == "Stage.Retryable"), "only the retried failure: {failures:?}");
    let job = store.job(good.job_id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.errors);
    assert!(job.score.is_some_and(|s| (0.0..=100.0).contains(&s)));
    assert_eq!(store.insights(good.job_id).await.unwrap().len(), 5);
    let features = s3.get_object().bucket(&bucket).key(domain::pipeline::features_key(good.job_id)).send().await.unwrap();
    let features: Value = serde_json::from_slice(&features.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(features["job_id"], json!(good.job_id));

    // The permanent failure: caught, marked failed with the stage and reason, owner notified.
    let (status, history) = moto.wait_until_done(&pipeline.execution_arn(silent.job_id), Duration::from_secs(120)).await;
    assert_eq!(status, ExecutionStatus::Succeeded, "Catch → MarkFailed → Notify ends the execution normally: {}", summary(&history));
    // (moto 5.2.5 drops SendTaskFailure's cause, so only the error name is checked here; the
    // pipeline suite checks the reason on the local runner.)
    assert!(task_failures(&history).iter().any(|(e, _)| e == "Stage.Permanent"), "{}", summary(&history));
    let job = store.job(silent.job_id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    let errors = job.errors.as_ref().unwrap();
    assert_eq!((errors[0]["stage"].as_str(), errors[0]["error"].as_str()), (Some("inference"), Some("Stage.Permanent")), "{errors}");
    assert!(job.score.is_none());

    // A job whose hand-off was lost is started by the scheduled sweep, exactly once.
    let (orphan, _) = App::new(store.clone(), store.clone(), goviral_testkit::test_settings(RateLimits::default()))
        .with_pipeline(Arc::new(NoPipeline))
        .submit(&principal, input(Some("Three habits that changed my mornings"), None), None)
        .await
        .unwrap();
    let (started, _) = goviral_aws::pipeline::sweep_queued(store.as_ref(), &pipeline, 100).await.unwrap();
    assert_eq!(started, 1, "only the orphan lacked an execution");
    let (status, history) = moto.wait_until_done(&pipeline.execution_arn(orphan.job_id), Duration::from_secs(120)).await;
    assert_eq!(status, ExecutionStatus::Succeeded, "{}", summary(&history));
    assert_eq!(store.job(orphan.job_id).await.unwrap().unwrap().status, JobStatus::Complete);

    // The poison message went to the moderation DLQ after MAX_RECEIVES failed receives.
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let got = moto.sqs.receive_message().queue_url(&moderation_dlq).send().await.unwrap();
        if let Some(m) = got.messages().first() {
            break m.body().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "the poison message never reached the DLQ");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(dead, "{not a stage message");
    stop.store(true, Ordering::Relaxed);
    poller.await.unwrap();
    let counts = source.invocations.lock().await.clone();
    assert!(counts["moderation"].1 >= MAX_RECEIVES, "the poison message was reported failed each time: {counts:?}");
    for stage in [Stage::Extraction, Stage::Inference, Stage::Webhook, Stage::Failure] {
        assert!(counts.get(stage.as_str()).is_some_and(|c| c.0 > 0), "{} ran: {counts:?}", stage.function_name());
    }
}

/// A pipeline whose hand-off is lost (StartExecution failed), leaving the job to the sweep.
struct NoPipeline;

#[async_trait::async_trait]
impl domain::ports::Pipeline for NoPipeline {
    async fn enqueue(&self, _job_id: Uuid) -> domain::Result<()> {
        Err(domain::Error::Unavailable("states:StartExecution: connection refused".into()))
    }
    async fn estimated_completion_secs(&self) -> u32 {
        2
    }
}
