//! The model registry: register → approve → serve → roll back, with the gate refusing a
//! candidate that does not beat the serving model unless an admin overrides it (audited), and
//! every scoring naming the version that scored; on SQLite and PostgreSQL.

use domain::model::Plan;
use domain::registry::{Candidate, ModelVersion};
use goviral_testkit::pipeline::Stages;
use goviral_testkit::{Backend, TestApp};
use http::StatusCode;
use serde_json::{Value, json};

fn candidate(accuracy: f64, serving: f64) -> Candidate {
    Candidate {
        name: "headline".into(),
        artifact: goviral_scoring::Model::embedded_bytes().to_vec(),
        training_data_hash: "sha256:0f3c…".into(),
        code_version: "goviral 0.1.0 (test)".into(),
        metrics: json!({"gate": {"pairwise_accuracy": accuracy, "pairs": 4_000}, "serving": {"pairwise_accuracy": serving, "pairs": 4_000}}),
        gate_passed: accuracy > serving,
    }
}

async fn register(t: &TestApp, accuracy: f64, serving: f64) -> ModelVersion {
    domain::registry::register(t.app.store.as_ref(), t.blobs.as_ref(), candidate(accuracy, serving)).await.unwrap()
}

async fn compare_model(t: &TestApp, key: &str) -> String {
    let r =
        t.post("/api/v1/compare").api_key(key).json(&json!({"variants": ["Why 3 million people quit sugar", "Sugar facts"]})).send().await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["model"].as_str().unwrap().to_string()
}

async fn scored_by(t: &TestApp, key: &str, user: uuid::Uuid) -> (String, String) {
    let body = json!({"content_type": "text", "caption": "Did you know 3 habits change your mornings?", "user_id": user});
    let job = t.post("/api/v1/analyze").api_key(key).json(&body).send().await.body["job_id"].as_str().unwrap().to_string();
    let done = t.finished_job(key, &job).await;
    let runs = t.app.store.model_runs(job.parse().unwrap()).await.unwrap();
    (done["metrics"]["model_version"].as_str().unwrap().to_string(), runs[0].model_version.clone().unwrap())
}

async fn decide(t: &TestApp, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let r = t.post(path).api_key(key).json(&body).send().await;
    (r.status, r.body)
}

async fn register_approve_serve_roll_back(backend: Backend) {
    // The API's scorer re-reads the serving version every 100 ms (a Lambda's TTL, shortened).
    let tune = |c: &mut goviral_app::Config| c.model_refresh = std::time::Duration::from_millis(100);
    let t = TestApp::spawn_tuned(backend, Default::default(), Default::default(), tune).await;
    let stages = Stages::serving_registry(&t);
    let _pipeline = t.start_pipeline(&stages);
    let ops = t.user("ops@example.com", Plan::Enterprise, true).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let wait_ttl = || tokio::time::sleep(std::time::Duration::from_millis(120));

    // Nothing registered: the built-in model serves, and says so.
    let built_in = "headline-v3 (built in)".to_string();
    assert_eq!(scored_by(&t, &ann.api_key, ann.user.id).await, (built_in.clone(), built_in.clone()));
    assert_eq!(compare_model(&t, &ann.api_key).await, built_in);

    // v1 beat the gate: approved, promoted, and it scores at once here and within the TTL
    // in the pipeline's scorer.
    let v1 = register(&t, 0.712, 0.705).await;
    assert_eq!((v1.version, v1.state.as_str(), v1.label()), (1, "candidate", "headline@1".to_string()));
    let approve = format!("/api/v1/admin/models/{}/approve", v1.id);
    let (status, _) = decide(&t, &ann.api_key, &approve, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "admins only");
    let (status, body) = decide(&t, &ops.api_key, &format!("/api/v1/admin/models/{}/promote", v1.id), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "a candidate cannot serve before approval: {body}");
    let (status, body) = decide(&t, &ops.api_key, &approve, json!({"note": "beats the built-in model"})).await;
    assert_eq!(
        (status, body["state"].as_str(), body["decided_by"].as_str()),
        (StatusCode::OK, Some("approved"), Some(ops.user.id.to_string().as_str()))
    );
    let (status, body) = decide(&t, &ops.api_key, &format!("/api/v1/admin/models/{}/promote", v1.id), json!({})).await;
    assert_eq!((status, body["state"].as_str()), (StatusCode::OK, Some("serving")), "{body}");
    assert_eq!(compare_model(&t, &ann.api_key).await, "headline@1", "swapped at once in this process");
    wait_ttl().await;
    assert_eq!(scored_by(&t, &ann.api_key, ann.user.id).await, ("headline@1".into(), "headline@1".into()));

    // v2 does worse on the gate: refused, then approved only with an override and a reason.
    let v2 = register(&t, 0.690, 0.712).await;
    assert_eq!(v2.version, 2);
    let approve = format!("/api/v1/admin/models/{}/approve", v2.id);
    let (status, body) = decide(&t, &ops.api_key, &approve, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"]["message"].as_str().unwrap().contains("0.69 vs serving 0.712"), "{body}");
    let (status, _) = decide(&t, &ops.api_key, &approve, json!({"override_gate": true})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "an override needs a reason");
    let (status, body) = decide(&t, &ops.api_key, &approve, json!({"override_gate": true, "note": "better on fresh outcomes"})).await;
    assert_eq!((status, body["overridden"].as_bool()), (StatusCode::OK, Some(true)), "{body}");
    let audit = t.app.store.audit_for_actor(&ops.user.id.to_string(), 50).await.unwrap();
    let overridden = audit.iter().find(|a| a.action == "model.approve" && a.payload["label"] == "headline@2").expect("audited");
    assert_eq!((overridden.payload["overridden"].as_bool(), overridden.payload["gate_passed"].as_bool()), (Some(true), Some(false)));
    assert_eq!(overridden.payload["metrics"]["gate"]["pairwise_accuracy"], 0.69);

    let (status, _) = decide(&t, &ops.api_key, &format!("/api/v1/admin/models/{}/promote", v2.id), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(compare_model(&t, &ann.api_key).await, "headline@2");
    let listed = t.get("/api/v1/admin/models").api_key(&ops.api_key).send().await;
    let states: Vec<(String, String)> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["label"].as_str().unwrap().into(), i["state"].as_str().unwrap().into()))
        .collect();
    assert_eq!(states, [("headline@2".into(), "serving".into()), ("headline@1".into(), "retired".into())], "one serves");

    // Roll back: v1 serves again, without a redeploy.
    let (status, body) = decide(&t, &ops.api_key, "/api/v1/admin/models/rollback", json!({"note": "v2 regressed on TikTok"})).await;
    assert_eq!((status, body["label"].as_str(), body["state"].as_str()), (StatusCode::OK, Some("headline@1"), Some("serving")), "{body}");
    assert_eq!(compare_model(&t, &ann.api_key).await, "headline@1");
    wait_ttl().await;
    assert_eq!(scored_by(&t, &ann.api_key, ann.user.id).await.1, "headline@1");
    assert_eq!(t.app.store.model_version(v2.id).await.unwrap().unwrap().state.as_str(), "retired");
    let (status, _) = decide(&t, &ops.api_key, "/api/v1/admin/models/rollback", json!({})).await;
    assert_eq!(status, StatusCode::OK, "and forward again: v2 served before v1's return");

    // An artifact altered in the blob store is refused: what served keeps serving, and results
    // name what actually scored.
    let (status, _) = decide(&t, &ops.api_key, "/api/v1/admin/models/rollback", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let v3 = register(&t, 0.75, 0.712).await;
    domain::ports::BlobStore::put(t.blobs.as_ref(), &v3.artifact_key, b"GVNMODL1 tampered".to_vec(), "application/octet-stream")
        .await
        .unwrap();
    decide(&t, &ops.api_key, &format!("/api/v1/admin/models/{}/approve", v3.id), json!({})).await;
    let (status, _) = decide(&t, &ops.api_key, &format!("/api/v1/admin/models/{}/promote", v3.id), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    wait_ttl().await;
    assert_eq!(compare_model(&t, &ann.api_key).await, "headline@1");
    assert_eq!(scored_by(&t, &ann.api_key, ann.user.id).await.1, "headline@1");

    // Promoted by another process (another Lambda, the CLI): picked up within the TTL.
    let elsewhere = domain::registry::Decision {
        id: v2.id,
        from: vec![domain::registry::ModelState::Retired],
        to: domain::registry::ModelState::Serving,
        by: ops.user.id.to_string(),
        note: None,
        overridden: false,
        at: domain::model::now(),
    };
    assert!(t.app.store.decide_model_version(&elsewhere).await.unwrap());
    wait_ttl().await;
    assert_eq!(compare_model(&t, &ann.api_key).await, "headline@2");
    assert_eq!(scored_by(&t, &ann.api_key, ann.user.id).await.1, "headline@2");
}

/// Public A/B tests where "you" headlines draw twice the clicks (as the scorer's own tests).
pub fn synthetic_tests(tests: usize, salt: u64) -> String {
    const TOPICS: &[&str] = &["garden", "budget", "sleep", "coffee", "running", "music", "school", "ocean", "kitchen", "cities"];
    let mut csv = String::from("clickability_test_id,headline,impressions,clicks\n");
    for t in 0..tests {
        let (topic, n) = (TOPICS[(t * 7 + salt as usize) % TOPICS.len()], 10 + (t * 13 + salt as usize) % 20);
        csv.push_str(&format!("{salt}-{t},What {n} {topic} facts mean for you,2000,{}\n", 120 + t % 20));
        csv.push_str(&format!("{salt}-{t},What {n} {topic} facts mean for them,2000,{}\n", 60 + t % 17));
    }
    csv
}

/// A training directory as `GOVIRAL_TRAINING_DIR` names one: public tests and a gate set.
pub fn training_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.csv"), synthetic_tests(120, 1)).unwrap();
    std::fs::write(dir.path().join("gate.csv"), synthetic_tests(60, 2)).unwrap();
    dir
}

/// A creator's past posts with outcomes: the ones that ask a question drew 3× the views.
pub async fn creator_outcomes(t: &TestApp, key: &str, user: uuid::Uuid) {
    for i in 0..12u64 {
        let caption = if i % 2 == 0 { format!("Did you know this about sleep, part {i}?") } else { format!("Sleep notes, part {i}") };
        let body = json!({"content_type": "text", "caption": caption, "user_id": user, "platform_hint": "tiktok"});
        let job = t.post("/api/v1/analyze").api_key(key).json(&body).send().await.body["job_id"].as_str().unwrap().to_string();
        let result = domain::model::JobResult { score: 50.0, confidence: 0.6, insights: vec![], metrics: json!({}) };
        t.app.store.complete_job(job.parse().unwrap(), &result, None, domain::model::now()).await.unwrap();
        let views = if i % 2 == 0 { 3_000 + i * 10 } else { 1_000 + i * 10 };
        let outcome = json!({"platform": "tiktok", "observed_at": "2026-11-20T09:00:00Z", "views": views, "followers": 4_000});
        let r = t.post(&format!("/api/v1/analyze/{job}/outcome")).api_key(key).json(&outcome).send().await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
}

/// Retraining: public tests plus the creator's outcome pairs → a gated candidate → approved →
/// serving (the pipeline scores with it) → a second retrain promoted → rolled back.
async fn retrain_register_approve_serve_roll_back(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let stages = Stages::serving_registry(&t);
    let _pipeline = t.start_pipeline(&stages);
    let ops = t.user("ops@example.com", Plan::Enterprise, true).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    creator_outcomes(&t, &ann.api_key, ann.user.id).await;
    let dir = training_dir();
    let swaps =
        goviral_app::Swaps { store: Some(std::sync::Arc::new(t.db.store.clone())), blobs: Some(t.blobs.clone()), ..Default::default() };
    let composition = goviral_app::Composition::new(t.config.clone()).swap(swaps);
    let data = || goviral_scoring::retrain::TrainingData::from_dir(dir.path()).unwrap();

    let first = composition.retrain(data(), 20261124).await.unwrap();
    let v1 = &first.version;
    assert_eq!((v1.label().as_str(), v1.state.as_str()), ("headline@1", "candidate"));
    assert_eq!(first.observations, 12);
    assert_eq!(first.outcome_pairs, 36, "6 questions × 6 statements, all one creator's");
    assert_eq!(v1.metrics["training"]["outcome_pairs"], 36);
    assert!(v1.training_data_hash.starts_with("sha256:") && v1.code_version.starts_with("goviral "));
    assert_eq!(v1.metrics["serving"]["model"], "headline-v3 (built in)", "gated against what serves");
    assert!(v1.metrics["gate"]["pairs"].as_u64().unwrap() >= 50, "{}", v1.metrics);
    // The artifact is the trained model, and it learned the creator's lesson.
    let model = goviral_scoring::Model::from_bytes(&domain::registry::artifact(t.blobs.as_ref(), v1).await.unwrap()).unwrap();
    assert_eq!(model.header.training["outcome_pairs"], 36);
    let u = |text: &str| model.utility(&model.encode(text, &goviral_scoring::text::Signals::of(text)));
    assert!(u("Did you know this about running?") > u("Running notes"), "questions did better for this creator");

    let approve = json!({"override_gate": !v1.gate_passed, "note": "first retrained model"});
    let (status, body) = decide(&t, &ops.api_key, &format!("/api/v1/admin/models/{}/approve", v1.id), approve).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = decide(&t, &ops.api_key, &format!("/api/v1/admin/models/{}/promote", v1.id), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    assert_eq!(scored_by(&t, &ann.api_key, ann.user.id).await, ("headline@1".into(), "headline@1".into()));

    // Retrained again, it is gated against headline@1 now; promoted, then rolled back.
    let second = composition.retrain(data(), 7).await.unwrap();
    let v2 = &second.version;
    assert_eq!((v2.version, v2.metrics["serving"]["model"].as_str()), (2, Some("headline@1")));
    let approve = json!({"override_gate": !v2.gate_passed, "note": "second"});
    assert_eq!(decide(&t, &ops.api_key, &format!("/api/v1/admin/models/{}/approve", v2.id), approve).await.0, StatusCode::OK);
    assert_eq!(decide(&t, &ops.api_key, &format!("/api/v1/admin/models/{}/promote", v2.id), json!({})).await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    assert_eq!(scored_by(&t, &ann.api_key, ann.user.id).await.1, "headline@2");
    let (status, body) = decide(&t, &ops.api_key, "/api/v1/admin/models/rollback", json!({})).await;
    assert_eq!((status, body["label"].as_str()), (StatusCode::OK, Some("headline@1")));
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    assert_eq!(scored_by(&t, &ann.api_key, ann.user.id).await.1, "headline@1");
}

/// A registration the database cannot record leaves no artifact behind in the blob store.
async fn a_registration_that_cannot_be_recorded_leaves_no_artifact(backend: Backend) {
    use sqlx::Connection;
    let db = goviral_testkit::TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let blobs = goviral_local::blobs::FileBlobStore::new(dir.path());
    // The registry's table gone: the insert fails after the artifact was uploaded.
    let drop = "ALTER TABLE model_versions RENAME TO model_versions_elsewhere";
    if db.sqlite_path().is_some() {
        sqlx::query(drop).execute(&mut sqlx::SqliteConnection::connect(&db.url).await.unwrap()).await.unwrap();
    } else {
        sqlx::query(drop).execute(&mut sqlx::PgConnection::connect(&db.url).await.unwrap()).await.unwrap();
    }
    let failed = domain::registry::register(&db.store, &blobs, candidate(0.75, 0.7)).await;
    assert!(failed.is_err(), "{failed:?}");
    let left: Vec<_> =
        goviral_testkit::files_under(dir.path()).into_iter().filter(|p| p.extension().is_some_and(|x| x == "gvnm")).collect();
    assert!(left.is_empty(), "{left:?}");
}

contract!(
    register_approve_serve_roll_back,
    retrain_register_approve_serve_roll_back,
    a_registration_that_cannot_be_recorded_leaves_no_artifact
);
