//! The OpenAI path against a mock server on 127.0.0.1: success, malformed output, 429, 500,
//! timeout, and the circuit breaker. The score is always the on-device one; failures fall
//! back to on-device insights and say so in the metrics.

use std::time::Duration;

use domain::model::{ContentType, Platform};
use domain::ports::{ScoreOutput, ScoreRequest, Scorer};
use goviral_llm::{EnrichedScorer, OpenAiRewriter, OpenAiSettings};
use goviral_testkit::openai::{MockOpenAi, Reply};

const TEXT: &str = "5 mistakes everyone makes with sourdough\nQuestions? mail jane.doe@example.com or call +1 415 555 0132";

fn scorer(mock: &MockOpenAi, tune: impl FnOnce(&mut OpenAiSettings)) -> EnrichedScorer {
    let mut settings = OpenAiSettings::new(&mock.base_url, "sk-test", "gpt-test");
    settings.backoff_base = Duration::from_millis(1);
    settings.timeout = Duration::from_millis(300);
    tune(&mut settings);
    EnrichedScorer::new(Some(OpenAiRewriter::new(settings)))
}

async fn score(s: &EnrichedScorer) -> ScoreOutput {
    let request = ScoreRequest {
        text: TEXT.into(),
        platform: Some(Platform::Tiktok),
        content_type: ContentType::Text,
        features: EnrichedScorer::new(None).features(TEXT, Some(Platform::Tiktok)),
    };
    s.score(&request).await.unwrap()
}

async fn on_device() -> ScoreOutput {
    score(&EnrichedScorer::new(None)).await
}

fn assert_fallback(out: &ScoreOutput, reason: &str) {
    assert_eq!(out.metrics["llm"]["status"], "fallback", "{}", out.metrics["llm"]);
    assert!(out.metrics["llm"]["reason"].as_str().unwrap().contains(reason), "{}", out.metrics["llm"]);
    assert_eq!(out.model_name, "headline-v3");
    assert!(out.token_usage.is_none());
    assert_eq!(out.insights.len(), 5);
    assert!(out.insights.iter().all(|i| !i.recommendations.is_empty()));
}

#[tokio::test]
async fn success_enriches_insights_records_usage_and_hashes_the_prompt() {
    let mock = MockOpenAi::start().await;
    let s = scorer(&mock, |_| {});
    let out = score(&s).await;
    let base = on_device().await;
    assert_eq!(out.score, base.score, "the score stays on-device");
    assert_eq!(out.model_name, "headline-v3+gpt-test");
    assert_eq!(out.metrics["llm"]["status"], "enriched");
    assert_eq!(out.token_usage.as_ref().unwrap()["total_tokens"], 375);
    let hook = &out.insights[0].recommendations;
    assert!(
        hook.iter().any(|r| r.starts_with("Try this opening: \"5 sourdough mistakes") && r.contains("as an opening it scores ")),
        "{hook:?}"
    );
    // Each suggested opening is scored as the model scores headlines, against the first line
    // it would replace; the ones made on-device from the text's own words come first.
    let rewrites = out.metrics["rewrites"].as_array().expect("scored rewrites");
    let suggested: Vec<&serde_json::Value> = rewrites.iter().filter(|r| r["kind"] == "suggested").collect();
    assert_eq!(suggested.len(), 1, "{rewrites:?}");
    let model = goviral_scoring::Model::embedded();
    for r in suggested {
        let (score, change) = (r["score"].as_f64().unwrap(), r["change"].as_f64().unwrap());
        assert_eq!(r["opening"], "5 sourdough mistakes you're making (and the 1-minute fix)");
        assert_eq!(score, goviral_scoring::score::opening_score(model, r["opening"].as_str().unwrap()));
        let replaced = goviral_scoring::score::opening_score(model, r["replaces"].as_str().unwrap());
        assert!((score - replaced - change).abs() < 0.06, "{r} vs {replaced}");
    }
    assert!(out.insights[4].recommendations.iter().any(|r| r.contains("Comment below")));
    let hash = out.prompt_hash.clone().unwrap();
    assert_eq!(hash.len(), 64);
    assert_eq!(score(&s).await.prompt_hash.unwrap(), hash, "same input, same prompt, same hash");

    let sent = &mock.requests()[0];
    assert_eq!((sent["model"].as_str(), sent["temperature"].as_f64(), sent["seed"].as_i64()), (Some("gpt-test"), Some(0.0), Some(7)));
    assert_eq!(sent["response_format"]["type"], "json_schema");
    assert_eq!(sent["response_format"]["json_schema"]["strict"], true);
    let wire = sent.to_string();
    assert!(wire.contains("sourdough") && wire.contains("[email]") && wire.contains("[phone]"), "{wire}");
    assert!(!wire.contains("jane.doe") && !wire.contains("555"), "personal data left the machine: {wire}");
}

#[tokio::test]
async fn malformed_output_falls_back_without_retrying() {
    let mock = MockOpenAi::start().await;
    mock.then([Reply::Content(r#"{"hook_rewrites": [], "recommendations": []}"#.into())]);
    let out = score(&scorer(&mock, |_| {})).await;
    assert_fallback(&out, "does not match the schema");
    mock.then([Reply::Content("Sure! Here are some tips: …".into())]);
    assert_fallback(&score(&scorer(&mock, |_| {})).await, "does not match the schema");
    mock.then([Reply::Content(r#"{"hook_rewrites":["ok"],"recommendations":[{"category":"vibes","text":"x"}]}"#.into())]);
    assert_fallback(&score(&scorer(&mock, |_| {})).await, "unknown category");
    assert_eq!(mock.requests().len(), 3, "the same deterministic request would fail the same way");
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_with_backoff() {
    let mock = MockOpenAi::start().await;
    mock.then([Reply::Status(429), Reply::Status(500)]);
    let out = score(&scorer(&mock, |_| {})).await;
    assert_eq!((out.metrics["llm"]["status"].as_str(), out.metrics["llm"]["attempts"].as_u64()), (Some("enriched"), Some(3)));
    assert_eq!(mock.requests().len(), 3);
}

#[tokio::test]
async fn persistent_server_errors_fall_back_after_the_last_attempt() {
    let mock = MockOpenAi::start().await;
    mock.then([Reply::Status(500), Reply::Status(502), Reply::Status(503)]);
    assert_fallback(&score(&scorer(&mock, |_| {})).await, "provider error 503");
    assert_eq!(mock.requests().len(), 3);
    // A client error is not retried.
    mock.then([Reply::Status(400)]);
    assert_fallback(&score(&scorer(&mock, |_| {})).await, "refused");
    assert_eq!(mock.requests().len(), 4);
}

#[tokio::test]
async fn a_hanging_provider_times_out_and_falls_back() {
    let mock = MockOpenAi::start().await;
    mock.then([Reply::Hang(Duration::from_secs(3)), Reply::Hang(Duration::from_secs(3))]);
    let started = std::time::Instant::now();
    let out = score(&scorer(&mock, |s| s.max_attempts = 2)).await;
    assert_fallback(&out, "no answer within 300 ms");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn the_circuit_opens_after_repeated_failures_and_recovers_after_the_cooldown() {
    let mock = MockOpenAi::start().await;
    let s = scorer(&mock, |s| {
        s.max_attempts = 1;
        s.breaker_failures = 2;
        s.breaker_cooldown = Duration::from_millis(300);
    });
    mock.then([Reply::Status(500), Reply::Status(500)]);
    score(&s).await;
    score(&s).await;
    assert_eq!(mock.requests().len(), 2);
    assert_fallback(&score(&s).await, "circuit open");
    assert_eq!(mock.requests().len(), 2, "an open circuit sends nothing");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(score(&s).await.metrics["llm"]["status"], "enriched", "one trial call closes it again");
    assert_eq!(mock.requests().len(), 3);
}

#[tokio::test]
async fn jobs_scored_through_the_pipeline_record_the_llm_run() {
    use domain::model::Plan;
    use goviral_testkit::pipeline::Stages;
    use goviral_testkit::{Backend, TestApp};

    let mock = MockOpenAi::start().await;
    let t = TestApp::spawn(Backend::Sqlite).await;
    let pipeline = t.start_pipeline(&Stages::with_openai(OpenAiSettings::new(&mock.base_url, "sk-test", "gpt-test")));
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let body = serde_json::json!({"content_type": "text", "caption": TEXT, "platform_hint": "tiktok", "user_id": ann.user.id});
    let job = t.post("/api/v1/analyze").api_key(&ann.api_key).json(&body).send().await.body["job_id"].as_str().unwrap().to_string();
    let done = t.finished_job(&ann.api_key, &job).await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["metrics"]["llm"]["status"], "enriched", "{}", done["metrics"]);
    assert!(done["insights"][0]["recommendations"].to_string().contains("Try this opening"));
    let runs = t.app.store.model_runs(job.parse().unwrap()).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].model_name, "headline-v3+gpt-test");
    assert_eq!(runs[0].token_usage.as_ref().unwrap()["total_tokens"], 375);
    assert_eq!(runs[0].prompt_hash.as_ref().unwrap().len(), 64);
    assert!(!mock.requests()[0].to_string().contains("jane.doe"));
    pipeline.stop().await;
}
