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
    let t = TestApp::spawn(backend).await;
    let stages = Stages::serving_registry(&t);
    let _pipeline = t.start_pipeline(&stages);
    let ops = t.user("ops@example.com", Plan::Enterprise, true).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let wait_ttl = || tokio::time::sleep(std::time::Duration::from_millis(120));

    // Nothing registered: the built-in model serves, and says so.
    let built_in = "headline-v2 (built in)".to_string();
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
}

contract!(register_approve_serve_roll_back);
