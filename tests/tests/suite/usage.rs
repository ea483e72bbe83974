//! Metering against SQLite and PostgreSQL: admission at the edge of an allowance is exact
//! under concurrency, prepaid credits run out with 402, a failure of ours is credited back
//! exactly once and a completed job never is; and over HTTP, the headers and errors a
//! client sees, and a replayed request that is not charged twice.

use std::sync::Arc;

use domain::Error;
use domain::model::*;
use domain::ports::Store;
use domain::usage::{Charge, Period, UsageAccount};
use goviral_testkit::{Backend, TestApp, TestDb};
use http::StatusCode;
use serde_json::json;
use uuid::Uuid;

contract!(
    with_dynamodb:
    admission_at_the_edge_of_an_allowance_is_exact,
    prepaid_credits_run_out_with_insufficient_credits,
    a_top_up_never_undoes_a_debit_made_meanwhile,
    our_failures_are_credited_back_once_and_completed_jobs_never,
    a_measured_video_settles_its_reservation_once,
    quota_over_http_headers_errors_and_replays,
    the_usage_api_reports_the_ledger_and_operators_set_terms,
    the_quota_job_repairs_a_drifted_total_from_the_ledger,
    usage_reaches_stripe_exactly_once,
    threshold_notices_are_sent_once_per_period_and_retried,
    comparisons_are_metered_like_analyses,
);

async fn owner(db: &TestDb, plan: Plan) -> User {
    let t = now();
    let u = User {
        id: Uuid::now_v7(),
        email: format!("{}@example.com", Uuid::now_v7().simple()),
        hashed_secret: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        plan,
        is_active: true,
        roles: vec![Role::User],
        webhook_secret: "whsec_test".into(),
        created_at: t,
        updated_at: t,
    };
    db.store.create_user(&u).await.unwrap();
    u
}

fn job_for(user_id: Uuid) -> (Submission, Job) {
    goviral_testkit::fixtures::text_job(user_id, now())
}

/// A 1-unit charge against `cap` (hard) or, without one, a 1,000-unit allowance billed past
/// it; the account's own terms (override, credits) are the store's to apply.
fn charge(user_id: Uuid, job_id: Uuid, cap: Option<u64>) -> Charge {
    let at = now();
    Charge {
        entry_id: Uuid::now_v7(),
        user_id,
        job_id,
        kind: UsageKind::Text,
        units: 1,
        period: Period::of(at),
        plan_allowance: cap.unwrap_or(1_000),
        hard_cap: cap.is_some(),
        at,
    }
}

/// 200 submissions at once for an account with 50 units left of a hard cap: exactly 50 are
/// admitted, each refusal says where the account stands, and nothing refused was written.
async fn admission_at_the_edge_of_an_allowance_is_exact(backend: Backend) {
    let db = TestDb::new(backend).await;
    let u = owner(&db, Plan::Free).await;
    let store: Arc<dyn Store> = Arc::new(db.store.clone());
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let (s, j) = job_for(u.id);
                let result = store.admit_submission_and_job(&s, &j, &charge(u.id, j.id, Some(50))).await;
                (j.id, result)
            })
        })
        .collect();
    let (mut admitted, mut refused) = (Vec::new(), 0);
    for t in tasks {
        let (job_id, result) = t.await.unwrap();
        match result {
            Ok(a) => {
                assert!(a.used <= 50, "{a:?}");
                admitted.push(job_id);
            }
            Err(Error::QuotaExceeded { allowance: 50, used: 50, required: 1, .. }) => {
                refused += 1;
                assert!(store.job(job_id).await.unwrap().is_none(), "a refused submission leaves no job");
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((admitted.len(), refused), (50, 150));
    assert_eq!(store.queued_jobs(500).await.unwrap().len(), 50);
    // A charge larger than the whole allowance (a video's reservation on a tiny allowance)
    // is refused on a fresh account too, and writes nothing.
    let v = owner(&db, Plan::Free).await;
    let (s, j) = job_for(v.id);
    let big = Charge { units: 3, ..charge(v.id, j.id, Some(2)) };
    match store.admit_submission_and_job(&s, &j, &big).await {
        Err(Error::QuotaExceeded { allowance: 2, used: 0, required: 3, .. }) => {}
        other => panic!("expected quota_exceeded, got {other:?}"),
    }
    assert_eq!(store.period_usage(v.id, &Period::of(now()).key).await.unwrap(), 0);
}

async fn prepaid_credits_run_out_with_insufficient_credits(backend: Backend) {
    let db = TestDb::new(backend).await;
    let u = owner(&db, Plan::Pro).await;
    let s = &db.store;
    s.set_usage_account(u.id, &UsageAccount { allowance_override: None, credits: Some(3), ..Default::default() }, now()).await.unwrap();
    for left in [2, 1, 0] {
        let (sub, j) = job_for(u.id);
        let a = s.admit_submission_and_job(&sub, &j, &charge(u.id, j.id, None)).await.unwrap();
        assert_eq!(a.credits, Some(left));
    }
    let (sub, j) = job_for(u.id);
    match s.admit_submission_and_job(&sub, &j, &charge(u.id, j.id, None)).await {
        Err(Error::InsufficientCredits { required: 1, balance: 0 }) => {}
        other => panic!("expected insufficient credits, got {other:?}"),
    }
    assert!(s.job(j.id).await.unwrap().is_none());
    assert_eq!(s.usage_account(u.id).await.unwrap().credits, Some(0));
    // The refused submission used nothing (with the totals in DynamoDB: taken, then given back).
    assert_eq!(s.period_usage(u.id, &Period::of(now()).key).await.unwrap(), 3);
}

/// 100 prepaid submissions and 10 operator top-ups of 5 at once: the balance ends at exactly
/// what was there, plus the top-ups, less the submissions.
async fn a_top_up_never_undoes_a_debit_made_meanwhile(backend: Backend) {
    let db = TestDb::new(backend).await;
    let u = owner(&db, Plan::Pro).await;
    let store: Arc<dyn Store> = Arc::new(db.store.clone());
    store.set_usage_account(u.id, &UsageAccount { credits: Some(1_000), ..Default::default() }, now()).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..110 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            if i % 11 == 0 {
                let top_up = domain::usage::AccountChange { add_credits: Some(5), ..Default::default() };
                store.change_usage_account(u.id, &top_up, now()).await.map(|_| ())
            } else {
                let (s, j) = job_for(u.id);
                store.admit_submission_and_job(&s, &j, &charge(u.id, j.id, None)).await.map(|_| ())
            }
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(store.usage_account(u.id).await.unwrap().credits, Some(1_000 + 50 - 100));
}

async fn our_failures_are_credited_back_once_and_completed_jobs_never(backend: Backend) {
    let db = TestDb::new(backend).await;
    let u = owner(&db, Plan::Pro).await;
    let s = &db.store;
    s.set_usage_account(u.id, &UsageAccount { allowance_override: Some(5), credits: Some(2), ..Default::default() }, now()).await.unwrap();
    let (sub, failed) = job_for(u.id);
    s.admit_submission_and_job(&sub, &failed, &charge(u.id, failed.id, Some(5))).await.unwrap();
    let (sub, done) = job_for(u.id);
    let a = s.admit_submission_and_job(&sub, &done, &charge(u.id, done.id, Some(5))).await.unwrap();
    assert_eq!((a.used, a.credits), (2, Some(0)));

    // Not failed yet: nothing to credit back.
    assert!(!s.reverse_charge(failed.id, "inference: Stage.Retryable", now()).await.unwrap());
    assert!(s.fail_job(failed.id, &json!([{"stage": "inference", "error": "Stage.Retryable"}]), None, now()).await.unwrap());
    assert!(s.reverse_charge(failed.id, "inference: Stage.Retryable", now()).await.unwrap());
    assert!(!s.reverse_charge(failed.id, "inference: Stage.Retryable", now()).await.unwrap(), "once only");
    assert_eq!(s.usage_account(u.id).await.unwrap().credits, Some(1), "the credit came back");
    // The unit came back too: the next admission sees 2 used, not 3.
    let (sub, next) = job_for(u.id);
    assert_eq!(s.admit_submission_and_job(&sub, &next, &charge(u.id, next.id, Some(5))).await.unwrap().used, 2);

    // A completed job is never credited back.
    let result = JobResult { score: 50.0, confidence: 0.5, insights: vec![], metrics: json!({}) };
    assert!(s.complete_job(done.id, &result, None, now()).await.unwrap());
    assert!(!s.reverse_charge(done.id, "pipeline: Pipeline.NotifyFailed", now()).await.unwrap());
    // Nor a job that was never charged.
    assert!(!s.reverse_charge(Uuid::now_v7(), "x", now()).await.unwrap());
}

/// A video reserves the longest video's minutes (3) and settles at what it measured (1):
/// the difference goes back to the period and to prepaid credits, once.
async fn a_measured_video_settles_its_reservation_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let u = owner(&db, Plan::Pro).await;
    let s = &db.store;
    s.set_usage_account(u.id, &UsageAccount { allowance_override: None, credits: Some(10), ..Default::default() }, now()).await.unwrap();
    let (mut sub, j) = job_for(u.id);
    sub.content_type = ContentType::Video;
    let reserve = Charge { units: 3, kind: UsageKind::Video, ..charge(u.id, j.id, None) };
    assert_eq!(s.admit_submission_and_job(&sub, &j, &reserve).await.unwrap().credits, Some(7));
    assert!(s.settle_charge(j.id, 1, now()).await.unwrap());
    assert!(!s.settle_charge(j.id, 1, now()).await.unwrap(), "once only");
    assert_eq!(s.usage_account(u.id).await.unwrap().credits, Some(9));
    // Never up: a reservation is the most a job costs.
    let (mut sub, k) = job_for(u.id);
    sub.content_type = ContentType::Video;
    s.admit_submission_and_job(&sub, &k, &Charge { units: 3, kind: UsageKind::Video, ..charge(u.id, k.id, None) }).await.unwrap();
    assert!(!s.settle_charge(k.id, 7, now()).await.unwrap());
    // A failed video is credited back what it still cost (1 unit), not the reservation.
    assert!(s.fail_job(j.id, &json!([]), None, now()).await.unwrap());
    assert!(s.reverse_charge(j.id, "extraction: States.Timeout", now()).await.unwrap());
    assert_eq!(s.usage_account(u.id).await.unwrap().credits, Some(7), "9 − 3 for the second video + 1 back");
    let (sub, next) = job_for(u.id);
    let a = s.admit_submission_and_job(&sub, &next, &charge(u.id, next.id, None)).await.unwrap();
    assert_eq!(a.used, 4, "3 for the second video + 1 now");
}

/// Over HTTP: every admitted submission carries both policies in the RateLimit fields; the
/// allowance spent is 429 `quota_exceeded` with the reset time; a replay with the same
/// Idempotency-Key is not charged again; credits spent are 402 `insufficient_credits`.
async fn quota_over_http_headers_errors_and_replays(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.user("ann@example.com", Plan::Free, false).await;
    t.app
        .store
        .set_usage_account(ann.user.id, &UsageAccount { allowance_override: Some(2), credits: None, ..Default::default() }, now())
        .await
        .unwrap();
    let body = json!({"content_type": "text", "caption": "Two units only", "user_id": ann.user.id});

    let first = t.post("/api/v1/analyze").api_key(&ann.api_key).header("idempotency-key", "once").json(&body).send().await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let policy = first.headers["ratelimit-policy"].to_str().unwrap().to_string();
    let state = first.headers["ratelimit"].to_str().unwrap().to_string();
    assert!(policy.contains("\"submissions\";q=") && policy.contains("\"monthly\";q=2;w="), "{policy}");
    assert!(state.contains("\"monthly\";r=1;t="), "{state}");
    // The same request again: the same job, no second charge.
    let replay = t.post("/api/v1/analyze").api_key(&ann.api_key).header("idempotency-key", "once").json(&body).send().await;
    assert_eq!(replay.body["job_id"], first.body["job_id"]);
    let second = t.post("/api/v1/analyze").api_key(&ann.api_key).json(&body).send().await;
    assert_eq!(second.status, StatusCode::CREATED, "the replay did not use the second unit: {:?}", second.body);
    assert!(second.headers["ratelimit"].to_str().unwrap().contains("\"monthly\";r=0;t="));

    let over = t.post("/api/v1/analyze").api_key(&ann.api_key).json(&body).send().await;
    assert_eq!((over.status, over.error_code()), (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"), "{:?}", over.body);
    let details = &over.body["error"]["details"];
    assert_eq!((details["allowance"].as_u64(), details["used"].as_u64(), details["remaining"].as_u64()), (Some(2), Some(2), Some(0)));
    let resets_at =
        time::OffsetDateTime::parse(details["resets_at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!(resets_at, Period::of(now()).resets_at);
    let retry_after: i64 = over.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((retry_after - (resets_at - now()).whole_seconds()).abs() <= 5, "Retry-After is the time to the reset: {retry_after}");
    assert!(over.headers["ratelimit"].to_str().unwrap().starts_with("\"monthly\";r=0;t="));

    // Prepaid: one credit left, then 402.
    let bo = t.user("bo@example.com", Plan::Pro, false).await;
    t.app
        .store
        .set_usage_account(bo.user.id, &UsageAccount { allowance_override: None, credits: Some(1), ..Default::default() }, now())
        .await
        .unwrap();
    let body = json!({"content_type": "text", "caption": "Prepaid", "user_id": bo.user.id});
    let paid = t.post("/api/v1/analyze").api_key(&bo.api_key).json(&body).send().await;
    assert_eq!(paid.status, StatusCode::CREATED);
    assert_eq!(paid.headers["x-credits-remaining"], "0");
    let broke = t.post("/api/v1/analyze").api_key(&bo.api_key).json(&body).send().await;
    assert_eq!((broke.status, broke.error_code()), (StatusCode::PAYMENT_REQUIRED, "insufficient_credits"), "{:?}", broke.body);
    assert_eq!(
        (broke.body["error"]["details"]["required"].as_u64(), broke.body["error"]["details"]["balance"].as_u64()),
        (Some(1), Some(0))
    );
}

/// The usage API over HTTP: where the account stands, its usage by day and month, the
/// operator's list of accounts near their allowance, and the operator's (audited) change of
/// an account's terms; none of it for another customer.
async fn the_usage_api_reports_the_ledger_and_operators_set_terms(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.user("ann@example.com", Plan::Free, false).await;
    let bo = t.user("bo@example.com", Plan::Pro, false).await;
    let ops = t.user("ops@example.com", Plan::Enterprise, true).await;
    for caption in ["one", "two", "three"] {
        let body = json!({"content_type": "text", "caption": caption, "user_id": ann.user.id});
        assert_eq!(t.post("/api/v1/analyze").api_key(&ann.api_key).json(&body).send().await.status, StatusCode::CREATED);
    }

    let current = t.get("/api/v1/usage/current").api_key(&ann.api_key).send().await;
    assert_eq!(current.status, StatusCode::OK, "{:?}", current.body);
    let c = &current.body;
    assert_eq!(
        (c["plan"].as_str(), c["allowance"].as_u64(), c["used"].as_u64(), c["remaining"].as_u64()),
        (Some("free"), Some(25), Some(3), Some(22))
    );
    assert_eq!(
        (c["hard_cap"].as_bool(), c["overage_units"].as_u64(), c["credits"].clone()),
        (Some(true), Some(0), serde_json::Value::Null)
    );
    assert_eq!(c["period"].as_str().unwrap(), Period::of(now()).key);

    let today = now().date();
    let days = t.get("/api/v1/usage").api_key(&ann.api_key).send().await;
    assert_eq!(days.status, StatusCode::OK, "{:?}", days.body);
    let b = &days.body["buckets"][0];
    assert_eq!(
        (b["kind"].as_str(), b["units"].as_i64(), b["analyses"].as_u64(), b["reversed"].as_u64()),
        (Some("text"), Some(3), Some(3), Some(0))
    );
    assert!(b["start"].as_str().unwrap().starts_with(&today.to_string()), "{b}");
    let months = t.get("/api/v1/usage?granularity=month&from=2026-01-01").api_key(&ann.api_key).send().await;
    assert_eq!(
        (months.body["granularity"].as_str(), months.body["buckets"].as_array().map(Vec::len)),
        (Some("month"), Some(1)),
        "{:?}",
        months.body
    );
    // Ranges are bounded and checked.
    let r = t.get("/api/v1/usage?from=2020-01-01&to=2026-12-01").api_key(&ann.api_key).send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    let r = t.get("/api/v1/usage?from=yesterday").api_key(&ann.api_key).send().await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = t.get("/api/v1/usage?granularity=week").api_key(&ann.api_key).send().await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Another customer's usage is not there for bo.
    let r = t.get(&format!("/api/v1/usage/current?user_id={}", ann.user.id)).api_key(&bo.api_key).send().await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Operators: ann is at 12% of 25, so not near; at an allowance of 3 she is at 100%.
    let near = t.get("/api/v1/admin/usage").api_key(&ops.api_key).send().await;
    assert_eq!(near.status, StatusCode::OK, "{:?}", near.body);
    assert!(near.body["accounts"].as_array().unwrap().is_empty(), "{:?}", near.body);
    let set = t
        .call(http::Method::PUT, &format!("/api/v1/admin/users/{}/usage", ann.user.id))
        .api_key(&ops.api_key)
        .json(&json!({"allowance_override": 3, "credits": 10}))
        .send()
        .await;
    assert_eq!(set.status, StatusCode::OK, "{:?}", set.body);
    assert_eq!(
        (set.body["allowance"].as_u64(), set.body["remaining"].as_u64(), set.body["credits"].as_u64()),
        (Some(3), Some(0), Some(10))
    );
    let near = t.get("/api/v1/admin/usage?share=1").api_key(&ops.api_key).send().await;
    assert_eq!(near.body["accounts"][0]["user_id"].as_str(), Some(ann.user.id.to_string().as_str()), "{:?}", near.body);
    let audit = t.app.store.audit_for_actor(&ops.user.id.to_string(), 10).await.unwrap();
    let entry = audit.iter().find(|a| a.action == "usage.terms").expect("audited");
    assert_eq!(
        (entry.payload["allowance_override"]["before"].clone(), entry.payload["allowance_override"]["after"].clone()),
        (serde_json::Value::Null, json!(3))
    );
    // null returns to the plan's allowance; a plan change is one field; unknown fields are refused.
    let set = t
        .call(http::Method::PUT, &format!("/api/v1/admin/users/{}/usage", ann.user.id))
        .api_key(&ops.api_key)
        .json(&json!({"allowance_override": null, "plan": "pro"}))
        .send()
        .await;
    assert_eq!(
        (set.body["plan"].as_str(), set.body["allowance"].as_u64(), set.body["credits"].as_u64()),
        (Some("pro"), Some(1_000), Some(10)),
        "{:?}",
        set.body
    );
    let r = t
        .call(http::Method::PUT, &format!("/api/v1/admin/users/{}/usage", ann.user.id))
        .api_key(&ops.api_key)
        .json(&json!({"credit": 5}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    // A top-up adds to the balance as it stands; it is whole units, at least one.
    let put_terms = |body: serde_json::Value| {
        t.call(http::Method::PUT, &format!("/api/v1/admin/users/{}/usage", ann.user.id)).api_key(&ops.api_key).json(&body).send()
    };
    let topped = put_terms(json!({"add_credits": 5})).await;
    assert_eq!((topped.status, topped.body["credits"].as_u64()), (StatusCode::OK, Some(15)), "{:?}", topped.body);
    for bad in [json!({"add_credits": 0}), json!({"add_credits": -2}), json!({"add_credits": 1.5}), json!({"add_credits": "5"})] {
        let r = put_terms(bad.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {:?}", r.body);
    }
    let nothing_added = put_terms(json!({"add_credits": null})).await;
    assert_eq!(nothing_added.body["credits"].as_u64(), Some(15), "{:?}", nothing_added.body);
    let reset_and_top = put_terms(json!({"credits": null, "add_credits": 2})).await;
    assert_eq!(reset_and_top.body["credits"].as_u64(), Some(2), "a set applies first, then the top-up: {:?}", reset_and_top.body);
    // Customers cannot do either.
    let r = t.get("/api/v1/admin/usage").api_key(&ann.api_key).send().await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = t
        .call(http::Method::PUT, &format!("/api/v1/admin/users/{}/usage", ann.user.id))
        .api_key(&ann.api_key)
        .json(&json!({"credits": 1000000}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// A total that drifted from the ledger (here set by hand) is found by the quota job's
/// reconciliation, reported and set back to the ledger's sum; a second run finds nothing.
async fn the_quota_job_repairs_a_drifted_total_from_the_ledger(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (ann, bo) = (owner(&db, Plan::Pro).await, owner(&db, Plan::Pro).await);
    for u in [&ann, &ann, &ann, &bo] {
        let (sub, j) = job_for(u.id);
        db.store.admit_submission_and_job(&sub, &j, &charge(u.id, j.id, None)).await.unwrap();
    }
    let period = Period::of(now()).key;
    let drift = "UPDATE usage_periods SET used = 10 WHERE user_id = $1 AND period = $2";
    match backend {
        Backend::Sqlite => {
            let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
            sqlx::query(drift).bind(ann.id.to_string()).bind(&period).execute(&mut c).await.unwrap();
        }
        Backend::Postgres => {
            let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
            let drift = "UPDATE usage_periods SET used = 10 WHERE user_id = $1::uuid AND period = $2";
            sqlx::query(drift).bind(ann.id.to_string()).bind(&period).execute(&mut c).await.unwrap();
        }
        // Drifted long enough ago for reconciliation to trust it (see usage::QUIET).
        Backend::PostgresDynamo => put_total(&db, ann.id, &period, 10, now() - time::Duration::minutes(10)).await,
    }
    assert_eq!(db.store.period_usage(ann.id, &period).await.unwrap(), 10);
    let report = domain::usage::reconcile(&db.store, now()).await.unwrap();
    assert!(report.accounts_checked >= 2, "{report:?}");
    assert_eq!(report.drifted.len(), 1, "{report:?}");
    let d = &report.drifted[0];
    assert_eq!((d.user_id, d.counter, d.ledger, d.repaired), (ann.id, 10, 3, true));
    assert_eq!(db.store.period_usage(ann.id, &period).await.unwrap(), 3);
    assert!(domain::usage::reconcile(&db.store, now()).await.unwrap().drifted.is_empty());
}

/// Sets an account's DynamoDB total by hand (PostgresDynamo only).
async fn put_total(db: &TestDb, user_id: Uuid, period: &str, used: i64, changed_at: time::OffsetDateTime) {
    use aws_sdk_dynamodb::types::AttributeValue::{N, S};
    let dynamo = aws_sdk_dynamodb::Client::new(&crate::aws::config().await);
    dynamo
        .put_item()
        .table_name(db.usage_table.as_deref().expect("a PostgresDynamo database"))
        .item("user_id", S(user_id.to_string()))
        .item("period", S(period.to_string()))
        .item("used", N(used.to_string()))
        .item("changed_at_us", N(to_micros(changed_at).to_string()))
        .send()
        .await
        .unwrap();
}

/// Sends to Stripe, then loses the answer (a crash between the send and its record).
struct LostAnswer(goviral_adapters::stripe::StripeMeters);

#[async_trait::async_trait]
impl domain::billing::MeterSink for LostAnswer {
    async fn send(&self, item: &domain::billing::MeterItem) -> domain::billing::MeterOutcome {
        let _ = self.0.send(item).await;
        domain::billing::MeterOutcome::Retry("connection reset before Stripe's answer".into())
    }
}

/// The billing outbox against a fake Stripe that enforces its documented rules: an ended
/// job's usage is sent once; a job credited back before export is not billed; a send whose
/// answer was lost is sent again and Stripe's duplicate refusal counts as delivered (one
/// meter event); 429s are retried; a job credited back after export is cancelled; an entry
/// older than Stripe's 35 days is refused once, not retried forever.
async fn usage_reaches_stripe_exactly_once(backend: Backend) {
    use domain::billing::{DrainReport, drain};
    let stripe = goviral_testkit::stripe::FakeStripe::start().await;
    let meters = || {
        goviral_adapters::stripe::StripeMeters::new(goviral_adapters::stripe::StripeSettings {
            base_url: stripe.base_url.clone(),
            api_key: goviral_testkit::stripe::API_KEY.into(),
            event_name: "goviral_units".into(),
            timeout: std::time::Duration::from_secs(5),
        })
    };
    let db = TestDb::new(backend).await;
    let s = &db.store;
    let u = owner(&db, Plan::Pro).await;
    let account = UsageAccount { stripe_customer_id: Some("cus_ann1".into()), ..Default::default() };
    s.set_usage_account(u.id, &account, now()).await.unwrap();
    let admit = |at: time::OffsetDateTime| {
        let (sub, j) = job_for(u.id);
        let c = Charge { at, period: Period::of(at), ..charge(u.id, j.id, None) };
        async move {
            s.admit_submission_and_job(&sub, &j, &c).await.unwrap();
            (j.id, c.entry_id)
        }
    };
    let done = JobResult { score: 50.0, confidence: 0.5, insights: vec![], metrics: json!({}) };
    let (complete, complete_id) = admit(now()).await;
    let (refunded, _) = admit(now()).await;
    let (running, running_id) = admit(now()).await;
    s.complete_job(complete, &done, None, now()).await.unwrap();
    s.fail_job(refunded, &json!([]), None, now()).await.unwrap();
    s.reverse_charge(refunded, "inference: Stage.Retryable", now()).await.unwrap();

    // Only the ended, still-charged job is billed; the running one waits for its end.
    let r = drain(s, &meters(), now()).await.unwrap();
    assert_eq!(r, DrainReport { sent: 1, ..Default::default() });
    let events = stripe.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].identifier.as_str(), events[0].customer_id.as_str(), events[0].value.as_str()),
        (complete_id.to_string().as_str(), "cus_ann1", "1")
    );
    assert_eq!(drain(s, &meters(), now()).await.unwrap(), DrainReport::default(), "nothing twice");

    // The answer is lost after Stripe took it: sent again later, refused as a duplicate, done.
    s.complete_job(running, &done, None, now()).await.unwrap();
    assert_eq!(drain(s, &LostAnswer(meters()), now()).await.unwrap().retrying, 1);
    assert_eq!(drain(s, &meters(), now()).await.unwrap(), DrainReport::default(), "not due before its backoff");
    let later = now() + time::Duration::hours(1);
    assert_eq!(drain(s, &meters(), later).await.unwrap().sent, 1);
    assert_eq!(stripe.events().iter().filter(|e| e.identifier == running_id.to_string()).count(), 1, "one meter event");

    // 429s: retried on the next drain.
    let (throttled, _) = admit(now()).await;
    s.complete_job(throttled, &done, None, now()).await.unwrap();
    stripe.fail_next([429]);
    assert_eq!(drain(s, &meters(), now()).await.unwrap().retrying, 1);
    assert_eq!(drain(s, &meters(), later).await.unwrap().sent, 1);

    // Credited back after it was billed: cancelled at Stripe.
    let (late_failure, late_id) = admit(now()).await;
    s.fail_job(late_failure, &json!([]), None, now()).await.unwrap();
    assert_eq!(drain(s, &meters(), now()).await.unwrap().sent, 1);
    s.reverse_charge(late_failure, "extraction: States.Timeout", now()).await.unwrap();
    assert_eq!(drain(s, &meters(), now()).await.unwrap(), DrainReport { cancelled: 1, ..Default::default() });
    assert_eq!(stripe.cancelled(), [late_id.to_string()]);

    // Older than Stripe takes: refused for good, reported, never sent again.
    let (old, _) = admit(now() - time::Duration::days(36)).await;
    s.complete_job(old, &done, None, now()).await.unwrap();
    assert_eq!(drain(s, &meters(), now()).await.unwrap().refused, 1);
    let before = stripe.requests();
    assert_eq!(drain(s, &meters(), later).await.unwrap(), DrainReport::default());
    assert_eq!(stripe.requests(), before);
}

/// `POST /api/v1/compare` is metered like an analysis: one unit under the same allowance,
/// RateLimit fields and credits; a replay under its Idempotency-Key answers the same ranking
/// without a second charge; a spent allowance refuses it with `quota_exceeded`; the usage API
/// shows comparisons as their own kind; and a comparison (which has no job) is billed to
/// Stripe at once, exactly once.
async fn comparisons_are_metered_like_analyses(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ann = t.user("ann@example.com", Plan::Free, false).await;
    t.app
        .store
        .set_usage_account(
            ann.user.id,
            &UsageAccount { allowance_override: Some(2), credits: None, stripe_customer_id: Some("cus_ann".into()) },
            now(),
        )
        .await
        .unwrap();
    let body = json!({"variants": ["Dad gives a speech", "Why 3 million people watched this dad's 2-minute speech", "A dad's wedding speech"], "platform_hint": "youtube"});

    let first = t.post("/api/v1/compare").api_key(&ann.api_key).header("idempotency-key", "cmp-1").json(&body).send().await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let ranking = first.body["ranking"].as_array().unwrap();
    assert_eq!(ranking.len(), 3);
    assert_eq!(ranking[0]["index"].as_u64(), Some(1), "the specific, curious headline wins: {:?}", first.body);
    assert_eq!(ranking.iter().map(|r| r["rank"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(ranking.windows(2).all(|w| w[0]["score"].as_f64() >= w[1]["score"].as_f64()), "{ranking:?}");
    assert!(ranking[0]["p_beats_next"].as_f64().unwrap() >= 0.5 && !ranking[0]["reasons"].as_array().unwrap().is_empty());
    assert!(ranking[2]["p_beats_next"].is_null() && ranking[2]["reasons"].as_array().unwrap().is_empty());
    let pairwise = first.body["pairwise"].as_array().unwrap();
    assert_eq!(pairwise.len(), 3);
    let p = |i: usize, j: usize| pairwise[i][j].as_f64().unwrap();
    assert!((p(1, 0) + p(0, 1) - 1.0).abs() < 0.002 && p(1, 0) > 0.5 && p(2, 2) == 0.5, "{pairwise:?}");
    assert_eq!(first.body["confidence"], ranking[0]["p_beats_next"]);
    assert_eq!((first.body["platform_hint"].as_str(), first.body["model"].as_str().map(|m| !m.is_empty())), (Some("youtube"), Some(true)));
    assert!(first.headers["ratelimit"].to_str().unwrap().contains("\"monthly\";r=1;t="), "{:?}", first.headers);

    // The same request again: the same ranking, no second unit; another body under the key: 409.
    let replay = t.post("/api/v1/compare").api_key(&ann.api_key).header("idempotency-key", "cmp-1").json(&body).send().await;
    assert_eq!((replay.status, replay.headers.get("idempotent-replayed").map(|v| v.to_str().unwrap())), (StatusCode::OK, Some("true")));
    assert_eq!((&replay.body["ranking"], &replay.body["comparison_id"]), (&first.body["ranking"], &first.body["comparison_id"]));
    let other = json!({"variants": ["one", "two"]});
    let clash = t.post("/api/v1/compare").api_key(&ann.api_key).header("idempotency-key", "cmp-1").json(&other).send().await;
    assert_eq!((clash.status, clash.error_code()), (StatusCode::CONFLICT, "conflict"), "{:?}", clash.body);

    // The second unit, then the cap: comparisons and analyses draw on one allowance.
    assert_eq!(t.post("/api/v1/compare").api_key(&ann.api_key).json(&other).send().await.status, StatusCode::OK);
    let over = t.post("/api/v1/compare").api_key(&ann.api_key).json(&other).send().await;
    assert_eq!((over.status, over.error_code()), (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"), "{:?}", over.body);
    let analysis = json!({"content_type": "text", "caption": "One more", "user_id": ann.user.id});
    assert_eq!(t.post("/api/v1/analyze").api_key(&ann.api_key).json(&analysis).send().await.error_code(), "quota_exceeded");

    let usage = t.get("/api/v1/usage").api_key(&ann.api_key).send().await;
    let b = &usage.body["buckets"][0];
    assert_eq!((b["kind"].as_str(), b["units"].as_i64(), b["analyses"].as_u64()), (Some("compare"), Some(2), Some(2)), "{:?}", usage.body);
    let current = t.get("/api/v1/usage/current").api_key(&ann.api_key).send().await;
    assert_eq!(current.body["used"].as_u64(), Some(2));

    // Billed at once (a comparison has no job to wait for), once.
    let stripe = goviral_testkit::stripe::FakeStripe::start().await;
    let meters = goviral_adapters::stripe::StripeMeters::new(goviral_adapters::stripe::StripeSettings {
        base_url: stripe.base_url.clone(),
        api_key: goviral_testkit::stripe::API_KEY.into(),
        event_name: "goviral_units".into(),
        timeout: std::time::Duration::from_secs(5),
    });
    assert_eq!(domain::billing::drain(&*t.app.store, &meters, now()).await.unwrap().sent, 2);
    assert_eq!(domain::billing::drain(&*t.app.store, &meters, now()).await.unwrap().sent, 0, "nothing twice");
    assert!(stripe.events().iter().all(|e| e.customer_id == "cus_ann" && e.value == "1"));
}

/// An account at 80% and then 100% of its allowance gets one signed `usage.threshold` notice
/// each, at every subscription that asked for them (and none elsewhere); a receiver that
/// fails gets the same delivery again after a backoff.
async fn threshold_notices_are_sent_once_per_period_and_retried(backend: Backend) {
    use domain::model::WebhookEvent;
    use domain::usage::{NoticeReport, notify_thresholds};
    let t = TestApp::spawn(backend).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let store = t.app.store.clone();
    store.set_usage_account(ann.user.id, &UsageAccount { allowance_override: Some(5), ..Default::default() }, now()).await.unwrap();
    let (listening, deaf) = (goviral_testkit::pipeline::Receiver::start().await, goviral_testkit::pipeline::Receiver::start().await);
    for (url, events) in [(&listening.url, vec![WebhookEvent::UsageThreshold]), (&deaf.url, vec![WebhookEvent::JobCompleted])] {
        let sub = WebhookSubscription {
            id: Uuid::now_v7(),
            user_id: ann.user.id,
            target_url: url.clone(),
            secret: "whsec_usage".into(),
            events,
            active: true,
            created_at: now(),
        };
        store.create_webhook(&sub, 20).await.unwrap();
    }
    let submit = || async {
        let body = json!({"content_type": "text", "caption": "Counting up", "user_id": ann.user.id});
        assert_eq!(t.post("/api/v1/analyze").api_key(&ann.api_key).json(&body).send().await.status, StatusCode::CREATED);
    };
    let webhooks = goviral_adapters::webhook::HttpWebhookSender::new(std::time::Duration::from_secs(2), true);
    let terms = t.config.settings.usage;
    for _ in 0..3 {
        submit().await;
    }
    assert_eq!(notify_thresholds(store.as_ref(), &webhooks, &terms, now()).await.unwrap(), NoticeReport::default(), "60%: nothing");
    submit().await;
    let r = notify_thresholds(store.as_ref(), &webhooks, &terms, now()).await.unwrap();
    assert_eq!(r, NoticeReport { crossed: 1, delivered: 1, ..Default::default() });
    let hits = listening.hits();
    let body: serde_json::Value = serde_json::from_slice(&hits[0].body).unwrap();
    assert_eq!(
        (body["event"].as_str(), body["threshold_percent"].as_u64(), body["used"].as_u64(), body["allowance"].as_u64()),
        (Some("usage.threshold"), Some(80), Some(4), Some(5)),
        "{body}"
    );
    let signature = hits[0].headers["x-gvn-signature"].to_str().unwrap();
    assert!(domain::auth::verify_webhook_signature("whsec_usage", signature, &hits[0].body, now().unix_timestamp()).is_ok());
    assert_eq!(notify_thresholds(store.as_ref(), &webhooks, &terms, now()).await.unwrap(), NoticeReport::default(), "once per period");

    // 100%, to a receiver that fails once: tried again after the backoff, same delivery id.
    submit().await;
    listening.fail_next(1, 500);
    assert_eq!(
        notify_thresholds(store.as_ref(), &webhooks, &terms, now()).await.unwrap(),
        NoticeReport { crossed: 1, retrying: 1, ..Default::default() }
    );
    let later = now() + time::Duration::hours(1);
    assert_eq!(notify_thresholds(store.as_ref(), &webhooks, &terms, later).await.unwrap().delivered, 1);
    let hits = listening.hits();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[1].headers["x-gvn-delivery"], hits[2].headers["x-gvn-delivery"]);
    assert!(deaf.hits().is_empty(), "a subscription to job events hears no usage notices");
}

/// The DynamoDB totals themselves: each change applies once per (job, entry), a refusal
/// writes nothing, and a repair only lands on the total it was computed from.
#[tokio::test]
async fn dynamodb_totals_apply_each_change_once() {
    use domain::ports::{Take, UsageTotals};
    let (totals, _) = crate::aws::usage_totals().await;
    let user = Uuid::now_v7();
    let at = now();
    let period = Period::of(at).key;
    let first = charge(user, Uuid::now_v7(), Some(2));
    assert_eq!(totals.take(&first, Some(2)).await.unwrap(), Take::Taken { used: 1 });
    assert_eq!(totals.take(&first, Some(2)).await.unwrap(), Take::Already { used: 1 }, "a replay is not charged again");
    assert_eq!(totals.take(&charge(user, Uuid::now_v7(), Some(2)), Some(2)).await.unwrap(), Take::Taken { used: 2 });
    let over = charge(user, Uuid::now_v7(), Some(2));
    assert_eq!(totals.take(&over, Some(2)).await.unwrap(), Take::Refused { used: 2 });
    // A refusal leaves no marker: the same job taken under a larger cap is charged.
    assert_eq!(totals.take(&over, Some(5)).await.unwrap(), Take::Taken { used: 3 });
    for _ in 0..2 {
        totals.adjust(user, &period, first.job_id, "reversal", -1, at).await.unwrap();
    }
    assert_eq!(totals.used(user, &period).await.unwrap(), 2, "a reversal applies once");
    let listed = totals.period_totals(&period).await.unwrap();
    let mine = *listed.iter().find(|t| t.user_id == user).expect("the account's total is listed");
    assert_eq!(mine.used, 2);
    assert!(totals.period_totals("1999-01").await.unwrap().iter().all(|t| t.user_id != user));
    let stale = domain::ports::PeriodTotal { used: 1, ..mine };
    assert!(!totals.repair(user, &period, Some(&stale), 7, at).await.unwrap(), "a total that moved is not overwritten");
    assert!(!totals.repair(user, &period, None, 7, at).await.unwrap(), "nor is an existing one taken for missing");
    assert!(totals.repair(user, &period, Some(&mine), 7, at).await.unwrap());
    assert_eq!(totals.used(user, &period).await.unwrap(), 7);
    let other = Uuid::now_v7();
    assert!(totals.repair(other, &period, None, 4, at).await.unwrap(), "a missing total is created");
    assert_eq!(totals.used(other, &period).await.unwrap(), 4);
}

/// With the totals in DynamoDB, a total that changed within `usage::QUIET` may belong to an
/// admission between its two writes: reconciliation leaves it for the next run. A total that
/// went missing is rebuilt from the ledger.
#[tokio::test]
async fn reconciliation_waits_for_a_quiet_dynamodb_total() {
    let db = TestDb::new(Backend::PostgresDynamo).await;
    let (ann, bo) = (owner(&db, Plan::Pro).await, owner(&db, Plan::Pro).await);
    for u in [&ann, &ann, &bo] {
        let (sub, j) = job_for(u.id);
        db.store.admit_submission_and_job(&sub, &j, &charge(u.id, j.id, None)).await.unwrap();
    }
    let period = Period::of(now()).key;
    put_total(&db, ann.id, &period, 9, now()).await;
    let report = domain::usage::reconcile(&db.store, now()).await.unwrap();
    assert!(report.drifted.is_empty(), "{report:?}");
    assert_eq!(db.store.period_usage(ann.id, &period).await.unwrap(), 9);
    put_total(&db, ann.id, &period, 9, now() - domain::usage::QUIET - time::Duration::seconds(1)).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&crate::aws::config().await);
    dynamo
        .delete_item()
        .table_name(db.usage_table.as_deref().unwrap())
        .key("user_id", aws_sdk_dynamodb::types::AttributeValue::S(bo.id.to_string()))
        .key("period", aws_sdk_dynamodb::types::AttributeValue::S(period.clone()))
        .send()
        .await
        .unwrap();
    let mut drifted = domain::usage::reconcile(&db.store, now()).await.unwrap().drifted;
    drifted.sort_by_key(|d| d.counter);
    let seen: Vec<_> = drifted.iter().map(|d| (d.user_id, d.counter, d.ledger, d.repaired)).collect();
    assert_eq!(seen, vec![(bo.id, 0, 1, true), (ann.id, 9, 2, true)]);
    assert_eq!((db.store.period_usage(ann.id, &period).await.unwrap(), db.store.period_usage(bo.id, &period).await.unwrap()), (2, 1));
}
