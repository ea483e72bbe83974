//! The analysis pipeline on the embedded default: the runner executing infra/'s state
//! machine over the real stages, with scripted failures and a real webhook receiver.

use std::sync::Arc;

use domain::Error;
use domain::auth::verify_webhook_signature;
use domain::model::{Plan, now};
use domain::pipeline::{PipelineState, Stage, run_stage};
use domain::ports::{DeliveryOutcome, WebhookSender};
use goviral_adapters::asl::{State, StateMachine, Transition};
use goviral_adapters::webhook::HttpWebhookSender;
use goviral_testkit::pipeline::{Receiver, Stages};
use goviral_testkit::{Backend, TestApp};
use http::StatusCode;
use serde_json::{Value, json};

async fn submit(t: &TestApp, key: &str, user: uuid::Uuid, caption: &str, notify: Option<&str>) -> String {
    let mut body = json!({"content_type": "text", "caption": caption, "platform_hint": "tiktok", "user_id": user});
    if let Some(url) = notify {
        body["notify_webhook"] = url.into();
    }
    let r = t.post("/api/v1/analyze").api_key(key).json(&body).send().await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["job_id"].as_str().unwrap().to_string()
}

/// Waits until the receiver has `n` requests (5 s at most).
async fn hits(receiver: &Receiver, n: usize) -> Vec<goviral_testkit::pipeline::Hit> {
    for _ in 0..250 {
        if receiver.hits().len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    receiver.hits()
}

fn verify(hit: &goviral_testkit::pipeline::Hit, secret: &str) -> Value {
    let sig = hit.headers.get("x-gvn-signature").unwrap().to_str().unwrap();
    verify_webhook_signature(secret, sig, &hit.body, time::OffsetDateTime::now_utc().unix_timestamp()).expect("valid signature");
    serde_json::from_slice(&hit.body).unwrap()
}

#[tokio::test]
async fn happy_path_scores_explains_and_delivers_a_signed_webhook() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let stages = Stages::new();
    let pipeline = t.start_pipeline(&stages);
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let receiver = Receiver::start().await;
    let sub = t
        .post("/api/v1/webhooks")
        .api_key(&ann.api_key)
        .json(&json!({"target_url": receiver.url, "events": ["job.completed"]}))
        .send()
        .await;
    let secret = sub.body["secret"].as_str().unwrap().to_string();
    let started = std::time::Instant::now();
    let job = submit(&t, &ann.api_key, ann.user.id, "Did you know 3 habits change your mornings?\nFollow for more!", None).await;
    let done = t.finished_job(&ann.api_key, &job).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(done["status"], "complete");
    assert!(done["score"].as_f64().unwrap() > 0.0 && done["confidence"].as_f64().unwrap() > 0.0);
    assert_eq!(done["insights"].as_array().unwrap().len(), 5);
    assert!(done["insights"][0]["message"].as_str().unwrap().contains("Did you know 3 habits"), "insights quote the text");
    assert_eq!(done["metrics"]["model"], "headline-v3");
    assert_eq!(done["metrics"]["sub_scores"].as_object().unwrap().len(), 5, "{}", done["metrics"]);
    let id: uuid::Uuid = job.parse().unwrap();
    let runs = t.app.store.model_runs(id).await.unwrap();
    assert_eq!((runs.len(), runs[0].model_name.as_str()), (1, "headline-v3"));
    assert!(runs[0].prompt_hash.is_some());
    let got = hits(&receiver, 1).await;
    assert_eq!(got.len(), 1);
    let payload = verify(&got[0], &secret);
    assert_eq!((payload["job_id"].as_str(), payload["status"].as_str()), (Some(job.as_str()), Some("complete")));
    assert_eq!(payload["score"], done["score"]);
    assert_eq!(got[0].headers["x-gvn-webhook-id"], sub.body["id"].as_str().unwrap());
    // The signed notice is exactly what the completion endpoint accepts.
    let r = t
        .post("/api/v1/hooks/completion")
        .header("x-gvn-webhook-id", got[0].headers["x-gvn-webhook-id"].to_str().unwrap())
        .header("x-gvn-signature", got[0].headers["x-gvn-signature"].to_str().unwrap())
        .raw("application/json", got[0].body.clone())
        .send()
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    pipeline.stop().await;
}

#[tokio::test]
async fn notify_webhook_is_signed_with_the_account_secret() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let stages = Stages::new();
    let pipeline = t.start_pipeline(&stages);
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let receiver = Receiver::start().await;
    let job = submit(&t, &ann.api_key, ann.user.id, "One line", Some(&receiver.url)).await;
    t.finished_job(&ann.api_key, &job).await;
    let got = hits(&receiver, 1).await;
    assert_eq!(got[0].headers["x-gvn-webhook-id"], format!("user:{}", ann.user.id).as_str());
    verify(&got[0], &ann.user.webhook_secret);
    pipeline.stop().await;
}

#[tokio::test]
async fn flagged_content_fails_with_flags_and_is_never_scored() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let stages = Stages::new();
    let pipeline = t.start_pipeline(&stages);
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let receiver = Receiver::start().await;
    let job = submit(&t, &ann.api_key, ann.user.id, "Send me bitcoin and I will double your bitcoin", Some(&receiver.url)).await;
    let done = t.finished_job(&ann.api_key, &job).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["errors"][0]["stage"], "moderation");
    assert_eq!(done["errors"][0]["error"], "content_flagged");
    assert_eq!(done["moderation_flags"]["categories"]["scam"], 1.0);
    assert!(done.get("score").is_none());
    assert_eq!(stages.scorer.calls(), 0);
    let got = hits(&receiver, 1).await;
    assert_eq!(verify(&got[0], &ann.user.webhook_secret)["status"], "failed");
    pipeline.stop().await;
}

#[tokio::test]
async fn moderation_unavailable_fails_closed_after_retries() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let stages = Stages::new();
    stages.moderator.fail_next((0..10).map(|_| Error::Unavailable("moderation API down".into())));
    let pipeline = t.start_pipeline(&stages);
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let job = submit(&t, &ann.api_key, ann.user.id, "A fine caption", None).await;
    let done = t.finished_job(&ann.api_key, &job).await;
    assert_eq!(done["status"], "failed");
    assert_eq!((done["errors"][0]["stage"].as_str(), done["errors"][0]["error"].as_str()), (Some("moderation"), Some("Stage.Retryable")));
    assert!(done["errors"][0]["reason"].as_str().unwrap().contains("moderation unavailable"));
    let retries = StateMachine::pipeline().task_retry(Stage::Moderation).unwrap().max_attempts;
    assert_eq!(stages.moderator.calls(), retries + 1, "one try plus every retry the state machine allows");
    assert_eq!(stages.scorer.calls(), 0, "nothing unmoderated reaches inference");
    pipeline.stop().await;
}

#[tokio::test]
async fn retryable_stage_errors_are_retried_until_success() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let stages = Stages::new();
    stages.blobs.fail_next([Error::Unavailable("disk busy".into())]);
    stages.scorer.fail_next([Error::Unavailable("model warming".into()), Error::Unavailable("model warming".into())]);
    let pipeline = t.start_pipeline(&stages);
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let job = submit(&t, &ann.api_key, ann.user.id, "Retry me", None).await;
    let done = t.finished_job(&ann.api_key, &job).await;
    assert_eq!(done["status"], "complete", "{done}");
    // Blob writes: moderation's text (refused once, then written) and extraction's features.
    assert_eq!((stages.blobs.calls(), stages.scorer.calls()), (3, 3));
    assert_eq!(t.app.store.model_runs(job.parse().unwrap()).await.unwrap().len(), 1);
    pipeline.stop().await;
}

#[tokio::test]
async fn permanent_stage_errors_fail_the_job_with_the_stage_and_reason() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let stages = Stages::new();
    stages.scorer.fail_next([Error::Internal("weights corrupt".into())]);
    let pipeline = t.start_pipeline(&stages);
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let receiver = Receiver::start().await;
    let job = submit(&t, &ann.api_key, ann.user.id, "Doomed", Some(&receiver.url)).await;
    let done = t.finished_job(&ann.api_key, &job).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["errors"], json!([{"stage": "inference", "error": "Stage.Permanent", "reason": "internal error: weights corrupt"}]));
    assert_eq!(stages.scorer.calls(), 1, "permanent errors are not retried");
    assert_eq!(verify(&hits(&receiver, 1).await[0], &ann.user.webhook_secret)["status"], "failed");
    pipeline.stop().await;
}

#[tokio::test]
async fn a_video_without_any_text_fails_with_a_reason_instead_of_a_made_up_score() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let stages = Stages::new();
    let pipeline = t.start_pipeline(&stages);
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    // A video with no caption, no speech and nothing on screen to read.
    let url = goviral_testkit::media::serve_clip(goviral_testkit::media::mute_clip()).await;
    let body = json!({"content_type": "video", "source_url": url, "user_id": ann.user.id});
    let r = t.post("/api/v1/analyze").api_key(&ann.api_key).json(&body).send().await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let done = t.finished_job(&ann.api_key, r.body["job_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["score"], serde_json::Value::Null);
    assert_eq!((done["errors"][0]["stage"].as_str(), done["errors"][0]["error"].as_str()), (Some("inference"), Some("Stage.Permanent")));
    assert!(done["errors"][0]["reason"].as_str().unwrap().starts_with("nothing to score"), "{}", done["errors"]);
    assert_eq!(stages.scorer.calls(), 0);
    pipeline.stop().await;
}

#[tokio::test]
async fn webhook_receiver_down_then_up_gets_it_exactly_once() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let stages = Stages::new();
    let pipeline = t.start_pipeline(&stages);
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let receiver = Receiver::start().await;
    receiver.fail_next(2, 503);
    let job = submit(&t, &ann.api_key, ann.user.id, "Hello", Some(&receiver.url)).await;
    t.finished_job(&ann.api_key, &job).await;
    let got = hits(&receiver, 3).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(receiver.hits().len(), 3, "two failures, one success, nothing after");
    // One delivery id across the attempts, so receivers can deduplicate.
    assert!(got.iter().all(|h| h.headers["x-gvn-delivery"] == got[0].headers["x-gvn-delivery"]));
    let delivery =
        t.app.store.webhook_delivery(job.parse().unwrap(), &receiver.url, domain::model::WebhookEvent::JobCompleted).await.unwrap();
    assert_eq!((delivery.status, delivery.attempts), (domain::model::DeliveryStatus::Delivered, 3));
    pipeline.stop().await;
}

#[tokio::test]
async fn webhook_receiver_down_for_good_is_dead_lettered_and_visible_to_admins() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let stages = Stages::new();
    let pipeline = t.start_pipeline(&stages);
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let admin = t.user("root@example.com", Plan::Pro, true).await;
    let receiver = Receiver::start().await;
    receiver.always(500);
    let job = submit(&t, &ann.api_key, ann.user.id, "Hello", Some(&receiver.url)).await;
    assert_eq!(t.finished_job(&ann.api_key, &job).await["status"], "complete");
    let max_attempts = StateMachine::pipeline().task_retry(Stage::Webhook).unwrap().max_attempts + 1;
    let mut letters = Value::Null;
    for _ in 0..250 {
        letters = t.get("/api/v1/admin/dead-letters").api_key(&admin.api_key).send().await.body;
        if !letters["items"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(letters["items"].as_array().unwrap().len(), 1, "{letters}");
    let letter = &letters["items"][0];
    assert_eq!((letter["job_id"].as_str(), letter["target_url"].as_str()), (Some(job.as_str()), Some(receiver.url.as_str())));
    assert_eq!(letter["attempts"], max_attempts);
    assert!(letter["last_error"].as_str().unwrap().contains("500"));
    assert_eq!(receiver.hits().len() as u32, max_attempts);
    assert_eq!(t.get("/api/v1/admin/dead-letters").api_key(&ann.api_key).send().await.status, StatusCode::FORBIDDEN);
    pipeline.stop().await;
}

#[tokio::test]
async fn redelivered_stage_messages_write_and_send_nothing_twice() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let stages = Stages::new();
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let receiver = Receiver::start().await;
    let job: uuid::Uuid = submit(&t, &ann.api_key, ann.user.id, "Twice is once", Some(&receiver.url)).await.parse().unwrap();
    let machine = StateMachine::pipeline();
    let policy = domain::pipeline::WebhookPolicy {
        max_attempts: machine.task_retry(Stage::Webhook).unwrap().max_attempts + 1,
        allow_loopback: true,
    };
    let ctx = stages.context(t.app.store.clone(), Arc::new(HttpWebhookSender::new(std::time::Duration::from_secs(2), true)), policy);
    // Each message delivered twice, as SQS may.
    let mut state = serde_json::to_value(PipelineState::new(job)).unwrap();
    for (stage, key) in
        [(Stage::Moderation, "moderation"), (Stage::Extraction, "extraction"), (Stage::Inference, "inference"), (Stage::Webhook, "notify")]
    {
        let first = run_stage(&ctx, stage, state.clone()).await.unwrap();
        let second = run_stage(&ctx, stage, state.clone()).await.unwrap();
        assert_eq!(first.get("score"), second.get("score"));
        state[key] = first;
    }
    assert_eq!(t.app.store.insights(job).await.unwrap().len(), 5);
    assert_eq!(t.app.store.model_runs(job).await.unwrap().len(), 1);
    assert_eq!(stages.scorer.calls(), 1, "a complete job is not scored again");
    assert_eq!(receiver.hits().len(), 1);
}

#[tokio::test]
async fn a_runner_killed_mid_job_resumes_after_restart_without_duplicates() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let stages = Stages::new();
    stages.scorer.hang(true);
    let first = t.start_pipeline(&stages);
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let receiver = Receiver::start().await;
    let job = submit(&t, &ann.api_key, ann.user.id, "Survive a crash", Some(&receiver.url)).await;
    for _ in 0..250 {
        if stages.scorer.calls() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(stages.scorer.calls(), 1, "inference started");
    first.kill().await;
    assert_eq!(t.get(&format!("/api/v1/analyze/{job}")).api_key(&ann.api_key).send().await.body["status"], "processing");
    stages.scorer.hang(false);
    let second = t.start_pipeline(&stages);
    let done = t.finished_job(&ann.api_key, &job).await;
    assert_eq!(done["status"], "complete");
    assert_eq!(stages.scorer.calls(), 2, "only the interrupted state ran again");
    assert_eq!(stages.moderator.calls(), 1, "finished states did not");
    assert_eq!(t.app.store.model_runs(job.parse().unwrap()).await.unwrap().len(), 1);
    assert_eq!(hits(&receiver, 1).await.len(), 1);
    second.stop().await;
}

#[tokio::test]
async fn ssrf_targets_are_refused() {
    let strict = HttpWebhookSender::new(std::time::Duration::from_secs(2), false);
    let body = b"{}";
    for url in [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://192.168.1.10/hook",
        "https://172.16.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[fd00:ec2::254]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://0.0.0.0/hook",
        "http://example.com/hook",
        "ftp://example.com/hook",
    ] {
        let outcome = strict.post(url, &[], body).await;
        assert!(matches!(outcome, DeliveryOutcome::Refused { .. }), "{url}: {outcome:?}");
    }
    // Loopback only when the local configuration explicitly allows it.
    let receiver = Receiver::start().await;
    let dev = HttpWebhookSender::new(std::time::Duration::from_secs(2), true);
    assert_eq!(dev.post(&receiver.url, &[], body).await, DeliveryOutcome::Delivered { status: 204 });
    assert!(matches!(strict.post(&receiver.url, &[], body).await, DeliveryOutcome::Refused { .. }));
    assert!(!domain::net::ip_allowed("169.254.169.254".parse().unwrap(), true));
    assert!(domain::net::ip_allowed("93.184.216.34".parse().unwrap(), false));

    // Through the pipeline: a subscription to a private address (one stored before the
    // registration check existed) is dead-lettered, never sent.
    let t = TestApp::spawn(Backend::Sqlite).await;
    let stages = Stages::new();
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let sub = domain::model::WebhookSubscription {
        id: uuid::Uuid::now_v7(),
        user_id: ann.user.id,
        target_url: "https://10.0.0.5/internal".into(),
        secret: "whsec_x".into(),
        events: domain::model::WebhookEvent::ALL.to_vec(),
        active: true,
        created_at: now(),
    };
    t.app.store.create_webhook(&sub, 20).await.unwrap();
    let ctx =
        stages.context(t.app.store.clone(), Arc::new(strict), domain::pipeline::WebhookPolicy { max_attempts: 6, allow_loopback: false });
    let job: uuid::Uuid = submit(&t, &ann.api_key, ann.user.id, "x", None).await.parse().unwrap();
    t.app.store.fail_job(job, &json!([]), None, now()).await.unwrap();
    run_stage(&ctx, Stage::Webhook, serde_json::to_value(PipelineState::new(job)).unwrap()).await.unwrap();
    let dead = t.app.store.dead_deliveries(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].last_error.as_deref().unwrap().starts_with("refused"));
}

#[test]
fn the_runner_executes_the_state_machine_in_infra() {
    // The runner has no order or policy of its own: it parses infra/pipeline.asl.json.
    let on_disk = std::fs::read_to_string(format!("{}/../infra/pipeline.asl.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert_eq!(on_disk, goviral_adapters::asl::PIPELINE_ASL, "the embedded definition is the file in infra/");
    let m = StateMachine::parse(&on_disk).unwrap();
    // Follow the happy path.
    let mut order = Vec::new();
    let mut at = m.start_at.clone();
    loop {
        match &m.states[&at] {
            State::Task { stage, then, catch, retry, .. } => {
                order.push(stage.as_str());
                assert!(
                    retry.iter().any(|r| r.error_equals.contains(&"Stage.Retryable".to_string()) && r.full_jitter && r.backoff_rate > 1.0),
                    "{at}: exponential backoff with jitter"
                );
                assert!(
                    !retry.iter().any(|r| r.error_equals.iter().any(|e| e == "Stage.Permanent" || e == "States.ALL")),
                    "{at}: permanent errors are never retried"
                );
                assert!(catch.iter().any(|c| c.error_equals == ["States.ALL"]), "{at}: every failure is caught");
                match then {
                    Transition::Next(n) => at = n.clone(),
                    Transition::End => break,
                }
            }
            State::Choice { default, .. } => at = default.clone().unwrap(),
            other => panic!("unexpected {other:?} on the happy path"),
        }
    }
    assert_eq!(order, ["moderation", "extraction", "inference", "webhook"]);
    // Stage failures are caught into the failure handler, which then notifies.
    for stage_state in ["Moderate", "Extract", "Infer"] {
        let State::Task { catch, .. } = &m.states[stage_state] else { panic!() };
        let State::Pass { then: Transition::Next(next), .. } = &m.states[&catch[0].next] else {
            panic!("{stage_state}: catch goes to a Pass")
        };
        let State::Task { stage: Stage::Failure, then: Transition::Next(after), .. } = &m.states[next] else { panic!("then MarkFailed") };
        assert_eq!(after, "Notify");
    }
}

/// A scorer that takes `delay` per call and records how many calls overlap.
struct SlowScorer {
    inner: Arc<dyn domain::ports::Scorer>,
    delay: std::time::Duration,
    running: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl domain::ports::Scorer for SlowScorer {
    fn features(&self, text: &str, platform: Option<domain::model::Platform>) -> Value {
        self.inner.features(text, platform)
    }

    async fn score(&self, request: &domain::ports::ScoreRequest) -> domain::Result<domain::ports::ScoreOutput> {
        use std::sync::atomic::Ordering::SeqCst;
        self.calls.fetch_add(1, SeqCst);
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        tokio::time::sleep(self.delay).await;
        self.running.fetch_sub(1, SeqCst);
        self.inner.score(request).await
    }
}

/// A stage limited to one Task at a time queues the others, and the wait is not work: with a
/// 1 s Task timeout and 0.4 s per job, the fourth job waits 1.2 s and still does not time out.
#[tokio::test]
async fn a_limited_stage_queues_its_tasks_without_their_timeout_running() {
    use std::sync::atomic::Ordering::SeqCst;
    let t = TestApp::spawn(Backend::Sqlite).await;
    let stages = Stages::new();
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let mut asl: Value = serde_json::from_str(goviral_adapters::asl::PIPELINE_ASL).unwrap();
    asl["States"]["Infer"]["TimeoutSeconds"] = json!(1);
    let machine = Arc::new(StateMachine::parse(&asl.to_string()).unwrap());
    let scorer = Arc::new(SlowScorer {
        inner: stages.scorer.clone(),
        delay: std::time::Duration::from_millis(400),
        running: 0.into(),
        most: 0.into(),
        calls: 0.into(),
    });
    let mut ctx = stages.context(
        t.app.store.clone(),
        Arc::new(HttpWebhookSender::new(std::time::Duration::from_secs(2), true)),
        domain::pipeline::WebhookPolicy { max_attempts: 1, allow_loopback: true },
    );
    ctx.scorer = scorer.clone();
    let queue = Arc::new(t.db.store.clone());
    let runner = goviral_local::runner::Runner::new(machine, Arc::new(ctx), queue, t.wake.clone(), 8).limiting(Stage::Inference, 1);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(Arc::new(runner).run(stopped));
    let mut jobs = Vec::new();
    for i in 0..4 {
        jobs.push(submit(&t, &ann.api_key, ann.user.id, &format!("Queued job {i}"), None).await);
    }
    t.wake.notify_one();
    for job in &jobs {
        let done = t.finished_job(&ann.api_key, job).await;
        assert_eq!(done["status"], "complete", "{done}");
    }
    assert_eq!(scorer.most.load(SeqCst), 1, "one at a time");
    assert_eq!(scorer.calls.load(SeqCst), 4, "no Task timed out and was run again");
    stop.send(true).unwrap();
    task.await.unwrap();
}
