//! Templates, admin, webhooks, keys, the completion hook, health, OpenAPI and the shared
//! HTTP behaviour (request ids, unknown routes), through the real HTTP stack.

use domain::auth::sign_webhook;
use domain::model::Plan;
use goviral_api::Endpoint;
use goviral_testkit::{Backend, TestApp};
use http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn templates_list_the_five_categories() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Free, false).await;
    let r = t.get("/api/v1/insights/templates").api_key(&ann.api_key).send().await;
    assert_eq!(r.status, StatusCode::OK);
    let ids: Vec<&str> = r.body["categories"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["hook", "pacing", "emotion", "storytelling", "cta"]);
    assert_eq!(r.body["categories"][0]["label"], "Hook");
}

#[tokio::test]
async fn admin_jobs_filter_total_and_audit() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let admin = t.user("root@example.com", Plan::Free, true).await;
    let ann = t.user("ann@example.com", Plan::Free, false).await;
    for _ in 0..3 {
        t.post("/api/v1/analyze")
            .api_key(&ann.api_key)
            .json(&json!({"content_type": "text", "caption": "x", "user_id": ann.user.id}))
            .send()
            .await;
    }
    let r = t.get("/api/v1/admin/jobs?limit=2").api_key(&admin.api_key).send().await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["items"][0]["user_id"], ann.user.id.to_string());
    assert_eq!(r.body["totals"], json!({"queued": 3, "processing": 0, "complete": 0, "failed": 0, "archived": 0}));
    let next = r.body["next_cursor"].as_str().unwrap();
    let r = t.get(&format!("/api/v1/admin/jobs?limit=2&cursor={next}")).api_key(&admin.api_key).send().await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = t.get("/api/v1/admin/jobs?status=complete").api_key(&admin.api_key).send().await;
    assert_eq!((r.body["items"].as_array().unwrap().len(), &r.body["totals"]["queued"]), (0, &json!(0)));
    let future = "2999-01-01T00:00:00Z";
    let r = t.get(&format!("/api/v1/admin/jobs?from={future}")).api_key(&admin.api_key).send().await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 0);
    for (query, field) in [
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
        ("limit=501", "limit"),
    ] {
        let r = t.get(&format!("/api/v1/admin/jobs?{query}")).api_key(&admin.api_key).send().await;
        assert_eq!((r.status, r.error_fields()), (StatusCode::UNPROCESSABLE_ENTITY, vec![field.to_string()]), "{query}");
    }
    let audit = t.app.store.audit_for_actor(&admin.user.id.to_string(), 50).await.unwrap();
    assert_eq!(audit.iter().filter(|a| a.action == "admin.jobs.list").count(), 4);
    // The successful listing recorded where it came from.
    assert!(audit.iter().all(|a| a.ip_address.is_none() || a.ip_address.unwrap().is_loopback()));
}

#[tokio::test]
async fn webhook_subscriptions_create_list_delete() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Free, false).await;
    let bob = t.user("bob@example.com", Plan::Free, false).await;
    let r = t.post("/api/v1/webhooks").api_key(&ann.api_key).json(&json!({"target_url": "https://hooks.example.com/gvn"})).send().await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(r.body["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(r.body["events"], json!(["job.completed", "job.failed"]));
    let list = t.get("/api/v1/webhooks").api_key(&ann.api_key).send().await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert!(list.body["items"][0].get("secret").is_none(), "secrets are shown once");
    assert!(t.get("/api/v1/webhooks").api_key(&bob.api_key).send().await.body["items"].as_array().unwrap().is_empty());
    let dup = t
        .post("/api/v1/webhooks")
        .api_key(&ann.api_key)
        .json(&json!({"target_url": "https://hooks.example.com/gvn", "events": ["job.failed"]}))
        .send()
        .await;
    assert_eq!((dup.status, dup.error_code()), (StatusCode::CONFLICT, "conflict"));
    for (body, field) in [
        (json!({"target_url": "http://hooks.example.com"}), "target_url"),
        (json!({"target_url": "https://x.example.com", "events": []}), "events"),
        (json!({"target_url": "https://x.example.com", "events": ["job.exploded"]}), "events[0]"),
        (json!({"events": ["job.failed"]}), "body"),
    ] {
        let r = t.post("/api/v1/webhooks").api_key(&ann.api_key).json(&body).send().await;
        assert_eq!((r.status, r.error_fields()), (StatusCode::UNPROCESSABLE_ENTITY, vec![field.to_string()]), "{body}");
    }
    assert_eq!(t.delete(&format!("/api/v1/webhooks/{id}")).api_key(&bob.api_key).send().await.status, StatusCode::NOT_FOUND);
    assert_eq!(t.delete(&format!("/api/v1/webhooks/{id}")).api_key(&ann.api_key).send().await.status, StatusCode::NO_CONTENT);
    assert_eq!(t.delete(&format!("/api/v1/webhooks/{id}")).api_key(&ann.api_key).send().await.status, StatusCode::NOT_FOUND);
    let actions: Vec<String> =
        t.app.store.audit_for_actor(&ann.user.id.to_string(), 10).await.unwrap().into_iter().map(|a| a.action).collect();
    assert!(actions.contains(&"webhook.create".to_string()) && actions.contains(&"webhook.delete".to_string()));
}

#[tokio::test]
async fn completion_hook_verifies_signatures() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Free, false).await;
    let r = t.post("/api/v1/webhooks").api_key(&ann.api_key).json(&json!({"target_url": "https://hooks.example.com/gvn"})).send().await;
    let (id, secret) = (r.body["id"].as_str().unwrap().to_string(), r.body["secret"].as_str().unwrap().to_string());
    let body =
        json!({"job_id": uuid::Uuid::now_v7(), "status": "complete", "score": 77.5, "timestamp": "2026-11-24T12:00:00Z"}).to_string();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let hook = |sig: String, id: &str, body: &str| {
        t.post("/api/v1/hooks/completion")
            .header("x-gvn-webhook-id", id)
            .header("x-gvn-signature", &sig)
            .raw("application/json", body.to_string())
            .send()
    };
    assert_eq!(hook(sign_webhook(&secret, now, body.as_bytes()), &id, &body).await.status, StatusCode::NO_CONTENT);
    let rejected = [
        ("wrong secret", sign_webhook("whsec_other", now, body.as_bytes()), id.clone(), body.clone()),
        ("stale timestamp", sign_webhook(&secret, now - 301, body.as_bytes()), id.clone(), body.clone()),
        ("future timestamp", sign_webhook(&secret, now + 305, body.as_bytes()), id.clone(), body.clone()),
        ("tampered body", sign_webhook(&secret, now, body.as_bytes()), id.clone(), body.replace("77.5", "99.5")),
        ("unknown subscription", sign_webhook(&secret, now, body.as_bytes()), uuid::Uuid::now_v7().to_string(), body.clone()),
        ("malformed header", "v1=abc".to_string(), id.clone(), body.clone()),
        ("malformed id", sign_webhook(&secret, now, body.as_bytes()), "x".into(), body.clone()),
    ];
    for (name, sig, sub, payload) in rejected {
        let r = hook(sig, &sub, &payload).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::UNAUTHORIZED, "unauthorized"), "{name}");
    }
    let r = t.post("/api/v1/hooks/completion").raw("application/json", body.clone()).send().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Correctly signed but not a completion notice: 422.
    let odd = r#"{"hello":"world"}"#;
    let r = hook(sign_webhook(&secret, now, odd.as_bytes()), &id, odd).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let audit = t.app.store.audit_for_actor(&ann.user.id.to_string(), 10).await.unwrap();
    assert_eq!(audit.iter().filter(|a| a.action == "webhook.completion_received").count(), 1);
}

#[tokio::test]
async fn api_keys_issue_rotate_revoke_with_audit() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Free, false).await;
    let token = t.token(&ann).await;
    let issued = t.post("/api/v1/keys").bearer(&token).send().await;
    assert_eq!(issued.status, StatusCode::CREATED);
    let (key_id, key) = (issued.body["id"].as_str().unwrap().to_string(), issued.body["api_key"].as_str().unwrap().to_string());
    assert_eq!(t.get("/api/v1/keys").api_key(&key).send().await.status, StatusCode::OK);
    let list = t.get("/api/v1/keys").bearer(&token).send().await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
    assert!(list.body["items"].as_array().unwrap().iter().all(|k| k.get("api_key").is_none()));

    let rotated = t.post(&format!("/api/v1/keys/{key_id}/rotate")).bearer(&token).send().await;
    assert_eq!(rotated.status, StatusCode::CREATED);
    assert_eq!(rotated.body["rotated_from"], key_id);
    let new_key = rotated.body["api_key"].as_str().unwrap();
    assert_eq!(t.get("/api/v1/keys").api_key(&key).send().await.status, StatusCode::FORBIDDEN);
    assert_eq!(t.get("/api/v1/keys").api_key(new_key).send().await.status, StatusCode::OK);
    assert_eq!(t.post(&format!("/api/v1/keys/{key_id}/rotate")).bearer(&token).send().await.status, StatusCode::NOT_FOUND);
    assert_eq!(t.delete(&format!("/api/v1/keys/{}", uuid::Uuid::now_v7())).bearer(&token).send().await.status, StatusCode::NOT_FOUND);

    let actions: Vec<String> =
        t.app.store.audit_for_actor(&ann.user.id.to_string(), 10).await.unwrap().into_iter().map(|a| a.action).collect();
    assert_eq!(actions, ["api_key.rotate", "api_key.issue"]);
    let cli: Vec<String> = t.app.store.audit_for_actor("test", 10).await.unwrap().into_iter().map(|a| a.action).collect();
    assert_eq!(cli, ["api_key.issue", "user.create"]);
}

#[tokio::test]
async fn health_openapi_request_ids_and_unknown_routes() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let r = t.get("/healthz").send().await;
    assert_eq!((r.status, &r.body), (StatusCode::OK, &json!({"status": "ok", "store": "ok"})));
    let r = t.get("/healthz").header("x-request-id", "client-chosen-42").send().await;
    assert_eq!(r.header("x-request-id"), Some("client-chosen-42"));
    let r = t.get("/healthz").header("x-request-id", "bad id with spaces").send().await;
    assert_ne!(r.header("x-request-id"), Some("bad id with spaces"));
    let r = t.get("/api/v1/nothing").send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = t.call(http::Method::PUT, "/api/v1/analyze").send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));

    let doc = t.get("/api/v1/openapi.json").send().await.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    let mut mounted: Vec<(String, String)> =
        Endpoint::ALL.iter().flat_map(|e| e.routes()).map(|(m, p)| (m.to_string(), p.to_string())).collect();
    documented.sort();
    mounted.sort();
    assert_eq!(documented, mounted, "the OpenAPI document and the mounted routes differ");
    // Every documented route is really mounted: none answers "no route".
    for (method, path) in &mounted {
        let concrete = path
            .replace("{job_id}", &uuid::Uuid::nil().to_string())
            .replace("{user_id}", &uuid::Uuid::nil().to_string())
            .replace("{webhook_id}", &uuid::Uuid::nil().to_string())
            .replace("{key_id}", &uuid::Uuid::nil().to_string());
        let r = t.call(method.parse().unwrap(), &concrete).send().await;
        assert!(
            !(r.status == StatusCode::NOT_FOUND && r.body["error"]["message"].as_str().unwrap_or_default().starts_with("no route")),
            "{method} {path} not mounted"
        );
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
    }
    let analyze = &doc["paths"]["/api/v1/analyze"]["post"];
    assert!(analyze["responses"]["201"].is_object() && analyze["responses"]["429"].is_object());
    assert!(doc["components"]["schemas"]["AnalyzeRequest"]["properties"]["content_type"].is_object());
}

/// The whole story on both stores: what SQLite does, PostgreSQL does through the same handlers.
async fn story(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.user("ann@example.com", Plan::Pro, true).await;
    let token = t.token(&ann).await;
    let r = t
        .post("/api/v1/analyze")
        .bearer(&token)
        .header("idempotency-key", "s-1")
        .json(&json!({"content_type": "text", "caption": "story", "user_id": ann.user.id}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let job = r.body["job_id"].as_str().unwrap().to_string();
    let again = t
        .post("/api/v1/analyze")
        .bearer(&token)
        .header("idempotency-key", "s-1")
        .json(&json!({"content_type": "text", "caption": "story", "user_id": ann.user.id}))
        .send()
        .await;
    assert_eq!(again.body["job_id"], job.as_str());
    assert_eq!(t.get(&format!("/api/v1/analyze/{job}")).bearer(&token).send().await.body["status"], "queued");
    let h = t.get(&format!("/api/v1/users/{}/history", ann.user.id)).bearer(&token).send().await;
    assert_eq!(h.body["items"].as_array().unwrap().len(), 1);
    let a = t.get("/api/v1/admin/jobs").bearer(&token).send().await;
    assert_eq!(a.body["totals"]["queued"], 1);
    assert_eq!(
        t.post("/api/v1/webhooks").bearer(&token).json(&json!({"target_url": "https://h.example.com"})).send().await.status,
        StatusCode::CREATED
    );
    assert_eq!(t.get("/healthz").send().await.status, StatusCode::OK);
}

#[tokio::test]
async fn story_on_sqlite() {
    story(Backend::Sqlite).await;
}

#[tokio::test]
async fn story_on_postgres() {
    story(Backend::Postgres).await;
}
