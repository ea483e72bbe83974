//! Authentication and authorisation through the real HTTP stack.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::model::Plan;
use goviral_testkit::{Backend, TestApp, test_settings};
use http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn token_from_client_credentials_and_from_api_key() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Free, false).await;
    let r = t.post("/api/v1/auth/token").json(&json!({"client_id": ann.user.id, "client_secret": ann.client_secret})).send().await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["token_type"], "bearer");
    assert_eq!(r.body["expires_in"], 600);
    let token = r.body["access_token"].as_str().unwrap();
    assert_eq!(t.get("/api/v1/insights/templates").bearer(token).send().await.status, StatusCode::OK);

    let r = t.post("/api/v1/auth/token").json(&json!({"api_key": ann.api_key})).send().await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(t.get("/api/v1/insights/templates").bearer(r.body["access_token"].as_str().unwrap()).send().await.status, StatusCode::OK);
}

#[tokio::test]
async fn token_exchange_rejects_bad_credentials() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Free, false).await;
    let cases = [
        (json!({"client_id": ann.user.id, "client_secret": "wrong"}), StatusCode::UNAUTHORIZED, "unauthorized"),
        (json!({"client_id": uuid::Uuid::now_v7(), "client_secret": ann.client_secret}), StatusCode::UNAUTHORIZED, "unauthorized"),
        (json!({"client_id": "not-a-uuid", "client_secret": "x"}), StatusCode::UNAUTHORIZED, "unauthorized"),
        (json!({"api_key": "gvk_000000000000_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}), StatusCode::UNAUTHORIZED, "unauthorized"),
        (json!({"api_key": "garbage"}), StatusCode::UNAUTHORIZED, "unauthorized"),
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (
            json!({"client_id": ann.user.id, "client_secret": "x", "api_key": ann.api_key}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (json!({"client_id": ann.user.id}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (json!({"username": "ann"}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
    ];
    for (body, status, code) in cases {
        let r = t.post("/api/v1/auth/token").json(&body).send().await;
        assert_eq!((r.status, r.error_code()), (status, code), "{body}");
    }
    let r = t.post("/api/v1/auth/token").raw("application/json", "{not json").send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::BAD_REQUEST, "malformed_json"));
}

#[tokio::test]
async fn revoked_keys_and_inactive_users_are_forbidden() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Free, false).await;
    // Works, then is revoked through the API (which also proves the cache does not outlive revocation).
    assert_eq!(t.get("/api/v1/keys").api_key(&ann.api_key).send().await.status, StatusCode::OK);
    let key_id = t.get("/api/v1/keys").api_key(&ann.api_key).send().await.body["items"][0]["id"].as_str().unwrap().to_string();
    let token = t.token(&ann).await;
    assert_eq!(t.delete(&format!("/api/v1/keys/{key_id}")).bearer(&token).send().await.status, StatusCode::NO_CONTENT);
    let r = t.get("/api/v1/keys").api_key(&ann.api_key).send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::FORBIDDEN, "forbidden"));
    let r = t.post("/api/v1/auth/token").json(&json!({"api_key": ann.api_key})).send().await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    t.app.set_user_active(ann.user.id, false, "test").await.unwrap();
    let r = t.post("/api/v1/auth/token").json(&json!({"client_id": ann.user.id, "client_secret": ann.client_secret})).send().await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A token issued before deactivation stops working too.
    assert_eq!(t.get("/api/v1/keys").bearer(&token).send().await.status, StatusCode::FORBIDDEN);
}

/// The dashboard's session: an API key is exchanged for an HttpOnly SameSite=Strict cookie
/// and a CSRF token. The cookie authenticates reads; anything that changes state also needs
/// the CSRF token (which another site cannot read). The session ends with its key, is not a
/// bearer token, and signing out clears it.
#[tokio::test]
async fn a_dashboard_session_is_a_cookie_guarded_by_a_csrf_token() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let r = t.post("/api/v1/auth/session").json(&json!({"api_key": ann.api_key})).send().await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let set_cookie = r.header("set-cookie").unwrap().to_string();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict") && set_cookie.contains("Path=/"), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "served over http here");
    assert!(!set_cookie.contains(&ann.api_key) && !r.body.to_string().contains(&ann.api_key), "the key is never echoed");
    assert_eq!((r.body["email"].as_str(), r.body["plan"].as_str()), (Some("ann@example.com"), Some("pro")));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let csrf = r.body["csrf_token"].as_str().unwrap().to_string();
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let session = cookie.trim_start_matches("gv_session=").to_string();

    // Reads with the cookie alone; a reloaded page gets its CSRF token back.
    let me = t.get("/api/v1/auth/session").header("cookie", &format!("theme=dark; {cookie}")).send().await;
    assert_eq!((me.status, me.body["csrf_token"].as_str()), (StatusCode::OK, Some(csrf.as_str())), "{:?}", me.body);
    assert_eq!(t.get("/api/v1/keys").header("cookie", &cookie).send().await.status, StatusCode::OK);
    // Changes need the token: missing or wrong is 403, right is allowed.
    let compare = json!({"variants": ["a headline", "another headline"]});
    let r = t.post("/api/v1/compare").header("cookie", &cookie).json(&compare).send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::FORBIDDEN, "forbidden"), "{:?}", r.body);
    let r = t.post("/api/v1/compare").header("cookie", &cookie).header("x-csrf-token", "guess").json(&compare).send().await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = t.post("/api/v1/compare").header("cookie", &cookie).header("x-csrf-token", &csrf).json(&compare).send().await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // A session is not a bearer token, and a bearer token is not a session.
    assert_eq!(t.get("/api/v1/keys").bearer(&session).send().await.status, StatusCode::UNAUTHORIZED);
    let token = t.token(&ann).await;
    assert_eq!(t.get("/api/v1/keys").header("cookie", &format!("gv_session={token}")).send().await.status, StatusCode::UNAUTHORIZED);
    // Wrong keys are refused like everywhere else, in the standard body.
    let r = t.post("/api/v1/auth/session").json(&json!({"api_key": "gvn_nope"})).send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let r = t.post("/api/v1/auth/session").json(&json!({"key": ann.api_key})).send().await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // The session ends with its key.
    let key_id = t.get("/api/v1/keys").api_key(&ann.api_key).send().await.body["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(t.delete(&format!("/api/v1/keys/{key_id}")).bearer(&token).send().await.status, StatusCode::NO_CONTENT);
    assert_eq!(t.get("/api/v1/auth/session").header("cookie", &cookie).send().await.status, StatusCode::UNAUTHORIZED);
    // Signing out clears the cookie.
    let out = t.delete("/api/v1/auth/session").send().await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(out.header("set-cookie").unwrap().starts_with("gv_session=; ") && out.header("set-cookie").unwrap().contains("Max-Age=0"));
}

fn forge(header: serde_json::Value, claims: serde_json::Value, signature: &str) -> String {
    format!("{}.{}.{signature}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
}

#[tokio::test]
async fn bad_tokens_are_unauthorized() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Free, false).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let settings = test_settings(Default::default());
    let expired = settings.auth.issue_token(ann.user.id, None, now - 3_600).unwrap();
    let mut other = settings.auth.clone();
    other.jwt_secret = b"some-other-secret-some-other-secret!".to_vec();
    let wrong_signature = other.issue_token(ann.user.id, None, now).unwrap();
    let claims = json!({"sub": ann.user.id, "iss": "goviralnow", "aud": "goviralnow-api", "iat": now, "exp": now + 600});
    let alg_none = forge(json!({"alg": "none", "typ": "JWT"}), claims.clone(), "");
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&settings.auth.jwt_secret),
    )
    .unwrap();
    let unknown_user = settings.auth.issue_token(uuid::Uuid::now_v7(), None, now).unwrap();
    for (name, token) in [
        ("expired", expired.as_str()),
        ("wrong signature", &wrong_signature),
        ("alg none", &alg_none),
        ("other algorithm", &hs512),
        ("unknown user", &unknown_user),
        ("garbage", "abc.def.ghi"),
    ] {
        let r = t.get("/api/v1/insights/templates").bearer(token).send().await;
        assert_eq!((r.status, r.error_code()), (StatusCode::UNAUTHORIZED, "unauthorized"), "{name}");
        assert!(r.header("www-authenticate").is_some(), "{name}");
    }
    let r = t.get("/api/v1/insights/templates").header("authorization", "Basic YTpi").send().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = t.get("/api/v1/insights/templates").send().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = t.get("/api/v1/insights/templates").api_key("gvk_nope").send().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn users_see_only_their_own_jobs_and_history() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Free, false).await;
    let bob = t.user("bob@example.com", Plan::Free, false).await;
    let admin = t.user("root@example.com", Plan::Free, true).await;
    let r = t
        .post("/api/v1/analyze")
        .api_key(&ann.api_key)
        .json(&json!({"content_type": "text", "caption": "hi", "user_id": ann.user.id}))
        .send()
        .await;
    let job = r.body["job_id"].as_str().unwrap().to_string();

    let r = t.get(&format!("/api/v1/analyze/{job}")).api_key(&bob.api_key).send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = t.get(&format!("/api/v1/users/{}/history", ann.user.id)).api_key(&bob.api_key).send().await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(t.delete(&format!("/api/v1/analyze/{job}")).api_key(&bob.api_key).send().await.status, StatusCode::NOT_FOUND);
    // Submitting for someone else is refused for users, allowed for admins.
    let r = t
        .post("/api/v1/analyze")
        .api_key(&bob.api_key)
        .json(&json!({"content_type": "text", "caption": "x", "user_id": ann.user.id}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(t.get(&format!("/api/v1/analyze/{job}")).api_key(&admin.api_key).send().await.status, StatusCode::OK);
    assert_eq!(t.get(&format!("/api/v1/users/{}/history", ann.user.id)).api_key(&admin.api_key).send().await.status, StatusCode::OK);
    // Admin routes are for admins.
    let r = t.get("/api/v1/admin/jobs").api_key(&ann.api_key).send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::FORBIDDEN, "forbidden"));
}
