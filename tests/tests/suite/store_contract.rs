//! The store contract: every port operation, run against SQLite and against PostgreSQL.
//! (The hot counters the store also serves have their own contract: counters_contract.)

use std::sync::Arc;

use domain::model::*;
use domain::ports::{ReceivedUpload, Store};
use goviral_testkit::{Backend, TestDb};
use serde_json::json;
use uuid::Uuid;

contract!(
    users_round_trip_and_emails_are_unique,
    api_keys_issue_rotate_revoke,
    submission_and_job_are_written_together,
    concurrent_submissions_fail_alone,
    job_lifecycle_complete_is_idempotent,
    job_failure_and_archive,
    history_pages_newest_first_and_stable_under_inserts,
    admin_filters_and_totals,
    webhooks_unique_per_user_and_url,
    webhook_limit_holds_under_concurrent_creation,
    key_by_id_and_webhook_secret_rotation,
    uploads_end_once,
    audit_and_model_runs_append,
    ping_answers,
    outcomes_append_newest_first_under_a_cap,
    sessions_end_once_and_only_for_their_user,
    runs_are_claimed_in_turns_and_capped_per_user,
);

async fn sessions_end_once_and_only_for_their_user(backend: Backend) {
    let (db, u) = seeded(backend).await;
    let s = &db.store;
    let k = key(u.id, "dddddddddddd");
    s.insert_api_key(&k).await.unwrap();
    let at = now();
    let session = SessionRecord {
        id: Uuid::now_v7(),
        user_id: u.id,
        key_id: k.id,
        created_at: at,
        expires_at: at + time::Duration::hours(12),
        revoked_at: None,
    };
    s.insert_session(&session).await.unwrap();
    assert_eq!(s.session(session.id).await.unwrap(), Some(session.clone()));
    assert_eq!(s.session(Uuid::now_v7()).await.unwrap(), None);
    assert!(!s.revoke_session(Uuid::now_v7(), session.id, now()).await.unwrap(), "another user cannot end it");
    let ended = now();
    assert!(s.revoke_session(u.id, session.id, ended).await.unwrap());
    assert!(!s.revoke_session(u.id, session.id, now()).await.unwrap(), "ended once");
    assert_eq!(s.session(session.id).await.unwrap().unwrap().revoked_at, Some(ended));
}

async fn runs_are_claimed_in_turns_and_capped_per_user(backend: Backend) {
    use domain::model::to_micros;
    use domain::ports::RunQueue;
    let (db, ann) = seeded(backend).await;
    let s = &db.store;
    let bo = user("bo@example.com");
    s.create_user(&bo).await.unwrap();
    let at = now();
    // Ann's burst of five, then one of Bo's.
    let mut anns = Vec::new();
    for i in 0..5 {
        anns.push(new_job(s, ann.id, at + time::Duration::milliseconds(i)).await.id);
    }
    let bos = new_job(s, bo.id, at + time::Duration::milliseconds(10)).await.id;
    let now_us = to_micros(now());
    assert_eq!(s.start_runs_for_queued("Moderate", now_us, 100).await.unwrap(), 6);
    let lease = now_us + 60_000_000;
    let ids = |runs: Vec<domain::ports::PipelineRun>| runs.into_iter().map(|r| r.job_id).collect::<Vec<_>>();
    // Turn one of each user first, then Ann's second; never more than two of Ann's at once.
    let shares = domain::ports::RunShares { per_user: 2, alone: 4 };
    let first = ids(s.claim_runs(now_us, lease, 3, shares).await.unwrap());
    assert_eq!(first.len(), 3);
    assert_eq!(first.iter().filter(|id| **id == bos).count(), 1, "Bo's job is among the first three: {first:?}");
    assert_eq!(first.iter().filter(|id| anns.contains(id)).count(), 2);
    assert!(s.claim_runs(now_us, lease, 10, shares).await.unwrap().is_empty(), "Ann holds her two while Bo's is under way");
    s.finish_run(first.iter().copied().find(|id| anns.contains(id)).unwrap(), "succeeded", now_us).await.unwrap();
    let next = ids(s.claim_runs(now_us, lease, 10, shares).await.unwrap());
    assert_eq!(next.len(), 1, "one of Ann's places came back: {next:?}");
    assert!(anns.contains(&next[0]));
    // Bo's job done, Ann is alone: she may have up to four under way, no more.
    s.finish_run(bos, "succeeded", now_us).await.unwrap();
    let alone = ids(s.claim_runs(now_us, lease, 10, shares).await.unwrap());
    assert_eq!(alone.len(), 2, "two more of Ann's, to four under way: {alone:?}");
    assert!(s.claim_runs(now_us, lease, 10, shares).await.unwrap().is_empty());
}

fn user(email: &str) -> User {
    let t = now();
    User {
        id: Uuid::now_v7(),
        email: email.into(),
        hashed_secret: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        plan: Plan::Pro,
        is_active: true,
        roles: vec![Role::User, Role::Admin],
        webhook_secret: "whsec_test".into(),
        created_at: t,
        updated_at: t,
    }
}

fn key(user_id: Uuid, prefix: &str) -> ApiKey {
    ApiKey {
        id: Uuid::now_v7(),
        user_id,
        prefix: prefix.into(),
        hashed_key: "hash".into(),
        created_at: now(),
        revoked_at: None,
        last_used_at: None,
        rotated_from: None,
    }
}

fn submission_and_job(user_id: Uuid, at: time::OffsetDateTime) -> (Submission, Job) {
    goviral_testkit::fixtures::text_job(user_id, at)
}

async fn seeded(backend: Backend) -> (TestDb, User) {
    let db = TestDb::new(backend).await;
    let u = user("owner@example.com");
    db.store.create_user(&u).await.unwrap();
    (db, u)
}

async fn new_job(store: &dyn Store, user_id: Uuid, at: time::OffsetDateTime) -> Job {
    let (s, j) = submission_and_job(user_id, at);
    store.create_submission_and_job(&s, &j).await.unwrap();
    j
}

async fn users_round_trip_and_emails_are_unique(backend: Backend) {
    let (db, u) = seeded(backend).await;
    let s = &db.store;
    assert_eq!(s.user_by_id(u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(s.user_by_email("owner@example.com").await.unwrap(), Some(u.clone()));
    assert_eq!(s.user_by_id(Uuid::now_v7()).await.unwrap(), None);
    let mut twin = user("owner@example.com");
    twin.roles = vec![Role::User];
    assert!(matches!(s.create_user(&twin).await, Err(domain::Error::Conflict(_))));
    assert!(s.set_user_active(u.id, false, now()).await.unwrap());
    assert!(!s.user_by_id(u.id).await.unwrap().unwrap().is_active);
    assert!(!s.set_user_active(Uuid::now_v7(), false, now()).await.unwrap());
}

async fn api_keys_issue_rotate_revoke(backend: Backend) {
    let (db, u) = seeded(backend).await;
    let s = &db.store;
    let k1 = key(u.id, "aaaaaaaaaaaa");
    s.insert_api_key(&k1).await.unwrap();
    assert_eq!(s.api_key_by_prefix("aaaaaaaaaaaa").await.unwrap(), Some(k1.clone()));
    assert!(matches!(s.insert_api_key(&key(u.id, "aaaaaaaaaaaa")).await, Err(domain::Error::Conflict(_))));

    let mut k2 = key(u.id, "bbbbbbbbbbbb");
    k2.rotated_from = Some(k1.id);
    assert!(s.rotate_api_key(u.id, k1.id, &k2, now()).await.unwrap());
    assert!(s.api_key_by_prefix("aaaaaaaaaaaa").await.unwrap().unwrap().revoked_at.is_some());
    assert_eq!(s.api_key_by_prefix("bbbbbbbbbbbb").await.unwrap().unwrap().rotated_from, Some(k1.id));
    // Rotating a revoked key writes nothing.
    let k3 = key(u.id, "cccccccccccc");
    assert!(!s.rotate_api_key(u.id, k1.id, &k3, now()).await.unwrap());
    assert_eq!(s.api_key_by_prefix("cccccccccccc").await.unwrap(), None);
    // Another user cannot revoke it.
    assert!(!s.revoke_api_key(Uuid::now_v7(), k2.id, now()).await.unwrap());
    let used = now();
    s.touch_api_key(k2.id, used).await.unwrap();
    assert_eq!(s.api_key_by_prefix("bbbbbbbbbbbb").await.unwrap().unwrap().last_used_at, Some(used));
    assert!(s.revoke_api_key(u.id, k2.id, now()).await.unwrap());
    assert!(!s.revoke_api_key(u.id, k2.id, now()).await.unwrap());
    assert_eq!(s.api_keys_for_user(u.id).await.unwrap().len(), 2);
}

async fn submission_and_job_are_written_together(backend: Backend) {
    let (db, u) = seeded(backend).await;
    let s = &db.store;
    let (sub, job) = submission_and_job(u.id, now());
    s.create_submission_and_job(&sub, &job).await.unwrap();
    assert_eq!(s.job(job.id).await.unwrap(), Some(job.clone()));
    assert_eq!(s.submission(sub.id).await.unwrap(), Some(sub.clone()));
    // A job that cannot be written takes its submission down with it.
    let (sub2, mut job2) = submission_and_job(u.id, now());
    job2.id = job.id; // duplicate primary key
    assert!(s.create_submission_and_job(&sub2, &job2).await.is_err());
    assert_eq!(s.submission(sub2.id).await.unwrap(), None);
    // A submission for an unknown user is refused.
    let (sub3, job3) = submission_and_job(Uuid::now_v7(), now());
    assert!(s.create_submission_and_job(&sub3, &job3).await.is_err());
    assert_eq!(s.queued_jobs(10).await.unwrap(), vec![job.id]);
}

/// Many submissions at once (SQLite writes them in shared transactions): a bad one fails
/// alone and every good one is written.
async fn concurrent_submissions_fail_alone(backend: Backend) {
    let (db, u) = seeded(backend).await;
    let store: Arc<dyn Store> = Arc::new(db.store.clone());
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            // Every tenth one names a user that does not exist.
            let owner = if i % 10 == 3 { Uuid::now_v7() } else { u.id };
            tokio::spawn(async move {
                let (s, j) = submission_and_job(owner, now());
                (owner, j.id, store.create_submission_and_job(&s, &j).await)
            })
        })
        .collect();
    let mut written = 0;
    for t in tasks {
        let (owner, job_id, result) = t.await.unwrap();
        assert_eq!(result.is_ok(), owner == u.id, "job {job_id}");
        assert_eq!(store.job(job_id).await.unwrap().is_some(), owner == u.id);
        written += usize::from(owner == u.id);
    }
    assert_eq!(written, 36);
    assert_eq!(store.queued_jobs(100).await.unwrap().len(), 36);
}

async fn job_lifecycle_complete_is_idempotent(backend: Backend) {
    let (db, u) = seeded(backend).await;
    let s = &db.store;
    let job = new_job(s, u.id, now()).await;
    assert!(s.transition_job(job.id, &[JobStatus::Queued], JobStatus::Processing, now()).await.unwrap());
    assert!(!s.transition_job(job.id, &[JobStatus::Queued], JobStatus::Processing, now()).await.unwrap());
    assert_eq!(s.submission(job.submission_id).await.unwrap().unwrap().status, SubmissionStatus::Processing);
    assert!(s.queued_jobs(10).await.unwrap().is_empty());
    let result = JobResult {
        score: 73.456,
        confidence: 0.817,
        insights: vec![
            Insight {
                category: InsightCategory::Hook,
                message: "Strong opener".into(),
                recommendations: vec!["Keep the number".into()],
                weight: 0.3,
            },
            Insight {
                category: InsightCategory::Cta,
                message: "No ask".into(),
                recommendations: vec!["Add a question".into(), "Pin a comment".into()],
                weight: 0.1,
            },
        ],
        metrics: json!({"model": "test", "features": {"words": 6}}),
    };
    let done_at = now();
    assert!(s.complete_job(job.id, &result, None, done_at).await.unwrap());
    // Redelivery changes nothing.
    assert!(!s.complete_job(job.id, &result, None, now()).await.unwrap());
    let stored = s.job(job.id).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Complete);
    assert_eq!(stored.score, Some(73.46));
    assert_eq!(stored.confidence, Some(0.82));
    assert_eq!(stored.completed_at, Some(done_at));
    assert_eq!(stored.metrics, Some(result.metrics.clone()));
    let insights = s.insights(job.id).await.unwrap();
    assert_eq!(insights, result.insights);
    assert_eq!(s.submission(job.submission_id).await.unwrap().unwrap().status, SubmissionStatus::Complete);
    assert!(!s.fail_job(job.id, &json!({"stage": "x"}), None, now()).await.unwrap());
}

async fn job_failure_and_archive(backend: Backend) {
    let (db, u) = seeded(backend).await;
    let s = &db.store;
    let job = new_job(s, u.id, now()).await;
    let errors = json!([{"stage": "moderation", "reason": "flagged"}]);
    let flags = json!({"violence": 0.93});
    assert!(s.fail_job(job.id, &errors, Some(&flags), now()).await.unwrap());
    let stored = s.job(job.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.errors, stored.moderation_flags), (JobStatus::Failed, Some(errors), Some(flags)));
    assert_eq!(s.submission(job.submission_id).await.unwrap().unwrap().status, SubmissionStatus::Failed);
    assert!(!s.archive_job(Uuid::now_v7(), job.id, now()).await.unwrap());
    assert!(s.archive_job(u.id, job.id, now()).await.unwrap());
    assert!(!s.archive_job(u.id, job.id, now()).await.unwrap());
    let archived = s.job(job.id).await.unwrap().unwrap();
    assert_eq!(archived.status, JobStatus::Archived);
    assert!(archived.archived_at.is_some());
    assert!(s.history(u.id, None, None, 10).await.unwrap().is_empty());
}

async fn history_pages_newest_first_and_stable_under_inserts(backend: Backend) {
    let (db, u) = seeded(backend).await;
    let s = &db.store;
    // In the past, so the job inserted "later" below really is the newest.
    let base = now() - time::Duration::seconds(1);
    let mut ids = Vec::new();
    for i in 0..7 {
        // Two jobs share each timestamp: the id breaks the tie.
        let at = base + time::Duration::milliseconds(i / 2);
        ids.push(new_job(s, u.id, at).await.id);
    }
    let page1 = s.history(u.id, None, None, 3).await.unwrap();
    assert_eq!(page1.iter().map(|j| j.job_id).collect::<Vec<_>>(), vec![ids[6], ids[5], ids[4]]);
    let last = page1.last().unwrap();
    let cursor = Cursor { created_at_us: to_micros(last.created_at), id: last.job_id };
    // New work arriving between page loads does not shift the next page.
    new_job(s, u.id, now()).await;
    let page2 = s.history(u.id, None, Some(cursor), 3).await.unwrap();
    assert_eq!(page2.iter().map(|j| j.job_id).collect::<Vec<_>>(), vec![ids[3], ids[2], ids[1]]);
    s.transition_job(ids[0], &[JobStatus::Queued], JobStatus::Processing, now()).await.unwrap();
    let processing = s.history(u.id, Some(JobStatus::Processing), None, 10).await.unwrap();
    assert_eq!(processing.iter().map(|j| j.job_id).collect::<Vec<_>>(), vec![ids[0]]);
    assert!(s.history(Uuid::now_v7(), None, None, 10).await.unwrap().is_empty());
}

async fn admin_filters_and_totals(backend: Backend) {
    let (db, u) = seeded(backend).await;
    let s = &db.store;
    let t0 = now() - time::Duration::hours(2);
    let old = new_job(s, u.id, t0).await;
    let a = new_job(s, u.id, t0 + time::Duration::hours(1)).await;
    let b = new_job(s, u.id, t0 + time::Duration::hours(1)).await;
    s.fail_job(a.id, &json!({}), None, now()).await.unwrap();
    let all = AdminJobFilter { limit: 10, ..Default::default() };
    assert_eq!(s.admin_jobs(&all).await.unwrap().len(), 3);
    let totals = s.job_totals(&all).await.unwrap();
    assert_eq!((totals[&JobStatus::Queued], totals[&JobStatus::Failed], totals[&JobStatus::Complete]), (2, 1, 0));
    let recent = AdminJobFilter { from: Some(t0 + time::Duration::minutes(30)), limit: 10, ..Default::default() };
    let ids: Vec<Uuid> = s.admin_jobs(&recent).await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(ids, vec![b.id, a.id]);
    let until = AdminJobFilter { to: Some(t0), limit: 10, ..Default::default() };
    assert_eq!(s.admin_jobs(&until).await.unwrap().iter().map(|j| j.id).collect::<Vec<_>>(), vec![old.id]);
    let failed = AdminJobFilter { status: Some(JobStatus::Failed), limit: 10, ..Default::default() };
    assert_eq!(s.admin_jobs(&failed).await.unwrap()[0].id, a.id);
    assert_eq!(s.job_totals(&failed).await.unwrap()[&JobStatus::Queued], 0);
    let page = AdminJobFilter { limit: 1, cursor: Some(Cursor { created_at_us: to_micros(b.created_at), id: b.id }), ..Default::default() };
    assert_eq!(s.admin_jobs(&page).await.unwrap()[0].id, a.id);
}

async fn webhooks_unique_per_user_and_url(backend: Backend) {
    let (db, u) = seeded(backend).await;
    let s = &db.store;
    let hook = WebhookSubscription {
        id: Uuid::now_v7(),
        user_id: u.id,
        target_url: "https://example.com/hooks".into(),
        secret: "whsec_x".into(),
        events: vec![WebhookEvent::JobCompleted, WebhookEvent::JobFailed],
        active: true,
        created_at: now(),
    };
    s.create_webhook(&hook, 20).await.unwrap();
    let twin = WebhookSubscription { id: Uuid::now_v7(), ..hook.clone() };
    assert!(matches!(s.create_webhook(&twin, 20).await, Err(domain::Error::Conflict(_))));
    assert_eq!(s.webhook(hook.id).await.unwrap(), Some(hook.clone()));
    assert_eq!(s.webhooks_for_user(u.id).await.unwrap(), vec![hook.clone()]);
    assert!(!s.delete_webhook(Uuid::now_v7(), hook.id).await.unwrap());
    assert!(s.delete_webhook(u.id, hook.id).await.unwrap());
    assert_eq!(s.webhook(hook.id).await.unwrap(), None);
}

/// 40 creations at once against a limit of 20 leave exactly 20 (the count and the insert
/// were separate steps once, and 26 survived).
async fn webhook_limit_holds_under_concurrent_creation(backend: Backend) {
    let (db, u) = seeded(backend).await;
    let store: Arc<dyn Store> = Arc::new(db.store.clone());
    let attempts = (0..40).map(|i| {
        let store = store.clone();
        let hook = WebhookSubscription {
            id: Uuid::now_v7(),
            user_id: u.id,
            target_url: format!("https://example.com/hooks/{i}"),
            secret: "whsec_x".into(),
            events: vec![WebhookEvent::JobCompleted],
            active: true,
            created_at: now(),
        };
        tokio::spawn(async move { store.create_webhook(&hook, 20).await })
    });
    let mut created = 0;
    for attempt in attempts.collect::<Vec<_>>() {
        match attempt.await.unwrap() {
            Ok(()) => created += 1,
            Err(domain::Error::Conflict(m)) => assert!(m.contains("at most 20"), "{m}"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(created, 20);
    assert_eq!(store.webhooks_for_user(u.id).await.unwrap().len(), 20);
}

async fn key_by_id_and_webhook_secret_rotation(backend: Backend) {
    let (db, u) = seeded(backend).await;
    let s = &db.store;
    let key = ApiKey {
        id: Uuid::now_v7(),
        user_id: u.id,
        prefix: "0123456789ab".into(),
        hashed_key: "$argon2id$x".into(),
        created_at: now(),
        revoked_at: None,
        last_used_at: None,
        rotated_from: None,
    };
    s.insert_api_key(&key).await.unwrap();
    assert_eq!(s.api_key(key.id).await.unwrap(), Some(key.clone()));
    assert_eq!(s.api_key(Uuid::now_v7()).await.unwrap(), None);
    assert!(s.set_webhook_secret(u.id, "whsec_new", now()).await.unwrap());
    assert_eq!(s.user_by_id(u.id).await.unwrap().unwrap().webhook_secret, "whsec_new");
    assert!(!s.set_webhook_secret(Uuid::now_v7(), "whsec_other", now()).await.unwrap());
}

async fn uploads_end_once(backend: Backend) {
    let (db, u) = seeded(backend).await;
    let s = &db.store;
    let id = Uuid::now_v7();
    let created = now();
    let upload = Upload {
        id,
        user_id: u.id,
        media_type: "video/mp4".into(),
        declared_bytes: 600 * 1024 * 1024,
        filename: Some("clip.mp4".into()),
        storage_key: domain::uploads::storage_key(u.id, id),
        status: UploadStatus::Pending,
        received_bytes: None,
        rejection: None,
        created_at: created,
        url_expires_at: created + time::Duration::hours(1),
        received_at: None,
        sha256: None,
        content_key: None,
    };
    s.create_upload(&upload).await.unwrap();
    assert_eq!(s.upload(id).await.unwrap(), Some(upload.clone()));
    assert_eq!(s.upload(Uuid::now_v7()).await.unwrap(), None);
    // Another upload at the same key is refused: a key names one upload.
    let twin = Upload { id: Uuid::now_v7(), ..upload.clone() };
    assert!(s.create_upload(&twin).await.is_err());

    let at = now();
    let rejected = ReceivedUpload {
        status: UploadStatus::Rejected,
        received_bytes: 12,
        rejection: Some("12 bytes arrived".into()),
        sha256: None,
        content_key: None,
    };
    assert!(s.finish_upload(id, &rejected, at).await.unwrap());
    // A redelivered report changes nothing.
    let ready = ReceivedUpload {
        status: UploadStatus::Ready,
        received_bytes: upload.declared_bytes,
        rejection: None,
        sha256: Some("ab".repeat(32)),
        content_key: Some(format!("content/{}/{id}", u.id)),
    };
    assert!(!s.finish_upload(id, &ready, now()).await.unwrap());
    let ended = s.upload(id).await.unwrap().unwrap();
    assert_eq!(
        ended,
        Upload {
            status: UploadStatus::Rejected,
            received_bytes: Some(12),
            rejection: Some("12 bytes arrived".into()),
            received_at: Some(at),
            ..upload.clone()
        }
    );
    assert!(!s.finish_upload(Uuid::now_v7(), &ready, now()).await.unwrap());
    // A ready upload keeps its checksum and the key of its immutable copy.
    let second = Upload { id: Uuid::now_v7(), storage_key: format!("uploads/{}/second", u.id), ..upload.clone() };
    s.create_upload(&second).await.unwrap();
    assert!(s.finish_upload(second.id, &ready, at).await.unwrap());
    let taken = s.upload(second.id).await.unwrap().unwrap();
    assert_eq!((taken.sha256, taken.content_key), (ready.sha256.clone(), ready.content_key.clone()));
}

async fn audit_and_model_runs_append(backend: Backend) {
    let (db, u) = seeded(backend).await;
    let s = &db.store;
    let entry = AuditEntry {
        id: Uuid::now_v7(),
        actor: u.id.to_string(),
        action: "api_key.issue".into(),
        payload: json!({"key_id": "k"}),
        ip_address: Some("203.0.113.7".parse().unwrap()),
        created_at: now(),
    };
    s.append_audit(&entry).await.unwrap();
    let v6 = AuditEntry { id: Uuid::now_v7(), ip_address: Some("2001:db8::1".parse().unwrap()), created_at: now(), ..entry.clone() };
    s.append_audit(&v6).await.unwrap();
    assert_eq!(s.audit_for_actor(&u.id.to_string(), 10).await.unwrap(), vec![v6, entry]);
    let job = new_job(s, u.id, now()).await;
    let run = ModelRun {
        id: Uuid::now_v7(),
        job_id: job.id,
        model_name: "gvn-text-v1".into(),
        model_version: Some("headline@7".into()),
        latency_ms: 12,
        token_usage: Some(json!({"prompt": 10, "completion": 5})),
        prompt_hash: Some("abc".into()),
        created_at: now(),
    };
    s.append_model_run(&run).await.unwrap();
    assert_eq!(s.model_runs(job.id).await.unwrap(), vec![run]);
}

async fn ping_answers(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store.ping().await.unwrap();
    // Migrating again is a no-op.
    db.store.migrate().await.unwrap();
}

/// PostgreSQL only: the logs are partitioned by month, and this month's rows land in this
/// month's partition, not in the default one.
#[tokio::test]
async fn postgres_logs_land_in_monthly_partitions() {
    use sqlx::Connection;
    let (db, u) = seeded(Backend::Postgres).await;
    let entry =
        AuditEntry { id: Uuid::now_v7(), actor: "a".into(), action: "x".into(), payload: json!({}), ip_address: None, created_at: now() };
    db.store.append_audit(&entry).await.unwrap();
    let job = new_job(&db.store, u.id, now()).await;
    let run = ModelRun {
        id: Uuid::now_v7(),
        job_id: job.id,
        model_name: "m".into(),
        model_version: None,
        latency_ms: 1,
        token_usage: None,
        prompt_hash: None,
        created_at: now(),
    };
    db.store.append_model_run(&run).await.unwrap();
    let month = format!("y{}m{:02}", now().year(), u8::from(now().month()));
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    for table in ["audit_logs", "model_runs"] {
        let partition: String =
            sqlx::query_scalar(&format!("SELECT tableoid::regclass::text FROM {table}")).fetch_one(&mut conn).await.unwrap();
        assert_eq!(partition, format!("{table}_{month}"));
        let partitions: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_inherits WHERE inhparent = $1::regclass")
            .bind(table)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(partitions, 4, "{table}: default + this month + two ahead");
    }
    let queued_index: Option<String> = sqlx::query_scalar("SELECT indexdef FROM pg_indexes WHERE indexname = 'analysis_jobs_queued'")
        .fetch_optional(&mut conn)
        .await
        .unwrap();
    assert!(queued_index.unwrap().contains("WHERE (status = 'queued'::text)"));
}

/// Observations of a post are appended (never overwritten), read newest first with every
/// field as written, and refused without writing once the job has its cap.
async fn outcomes_append_newest_first_under_a_cap(backend: Backend) {
    use domain::outcomes::{Outcome, OutcomeInput, OutcomeSource};
    let (db, u) = seeded(backend).await;
    let s = &db.store;
    let job = new_job(s, u.id, now()).await;
    let observed = |day: u8, views: u64| Outcome {
        id: Uuid::now_v7(),
        job_id: job.id,
        user_id: u.id,
        source: OutcomeSource::Api,
        input: OutcomeInput {
            platform: Some(Platform::Youtube),
            post_url: Some("https://youtu.be/abc".into()),
            observed_at: time::Date::from_calendar_date(2026, time::Month::November, day).unwrap().midnight().assume_utc(),
            views: Some(views),
            likes: Some(3),
            comments: None,
            shares: Some(0),
            followers: Some(1_000_000_000_000),
        },
        created_at: now(),
    };
    let (first, later) = (observed(2, 100), observed(9, 2_500));
    assert!(s.add_outcome(&first, 3).await.unwrap());
    assert!(s.add_outcome(&later, 3).await.unwrap());
    let read = s.outcomes(job.id, 10).await.unwrap();
    assert_eq!(read.iter().map(|o| o.id).collect::<Vec<_>>(), [later.id, first.id], "newest first");
    assert_eq!(read[1].input, first.input, "every field as written");
    assert_eq!((read[1].user_id, read[1].source), (u.id, OutcomeSource::Api));
    assert!(s.add_outcome(&observed(10, 3_000), 3).await.unwrap());
    assert!(!s.add_outcome(&observed(11, 4_000), 3).await.unwrap(), "the cap refuses");
    assert_eq!(s.outcomes(job.id, 10).await.unwrap().len(), 3, "and wrote nothing");
    assert_eq!(s.outcomes(job.id, 1).await.unwrap().len(), 1, "the limit holds");
}
