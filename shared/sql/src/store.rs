//! `Store` over SQL. Every method body is compiled for both backends by `on_pool!`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use domain::model::*;
use domain::ports::{ReceivedUpload, Store};
use domain::{Error, Result};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::rows::*;
use crate::{SqlStore, db_error};

fn us(t: OffsetDateTime) -> i64 {
    to_micros(t)
}

fn json_text(v: &serde_json::Value) -> String {
    v.to_string()
}

/// `$first, $first+1, …` for a list of `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// What a submission's status becomes when its job moves to `job`.
fn submission_status(job: JobStatus) -> Option<SubmissionStatus> {
    match job {
        JobStatus::Queued => Some(SubmissionStatus::Queued),
        JobStatus::Processing => Some(SubmissionStatus::Processing),
        JobStatus::Complete => Some(SubmissionStatus::Complete),
        JobStatus::Failed => Some(SubmissionStatus::Failed),
        JobStatus::Archived => None,
    }
}

const SET_SUBMISSION_STATUS: &str = "UPDATE content_submissions SET status = $2, updated_at = gv_ts($3) WHERE id = (SELECT submission_id FROM analysis_jobs WHERE id = $1::uuid)";

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<()> {
        let probe = "INSERT INTO counters (key, value, expires_at_us) VALUES ('gv:health', 1, $1) \
                     ON CONFLICT (key) DO UPDATE SET expires_at_us = excluded.expires_at_us";
        let until = to_micros(now()) + 3_600_000_000;
        on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(probe)).bind(until).execute(pool).await.map_err(db_error)?;
        });
        Ok(())
    }

    async fn create_user(&self, u: &User) -> Result<()> {
        let q = "INSERT INTO users (id, email, hashed_secret, plan, is_active, rbac_roles, webhook_secret, created_at, updated_at) \
                 VALUES ($1::uuid, $2, $3, $4, $5, gv_list($6), $9, gv_ts($7), gv_ts($8))";
        let result = on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q))
                .bind(u.id.to_string())
                .bind(&u.email)
                .bind(&u.hashed_secret)
                .bind(u.plan.as_str())
                .bind(u.is_active)
                .bind(join_values(&u.roles, Role::as_str))
                .bind(us(u.created_at))
                .bind(us(u.updated_at))
                .bind(&u.webhook_secret)
                .execute(pool)
                .await
                .map(|_| ())
        });
        match result.map_err(db_error) {
            Err(Error::Conflict(_)) => Err(Error::Conflict(format!("a user with email {} already exists", u.email))),
            other => other,
        }
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>> {
        let q = format!("SELECT {USER_COLS} FROM users WHERE id = $1::uuid AND archived_at IS NULL");
        let row: Option<UserRow> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(&q)).bind(id.to_string()).fetch_optional(pool).await.map_err(db_error)?
        });
        row.map(User::try_from).transpose()
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let q = format!("SELECT {USER_COLS} FROM users WHERE email = $1 AND archived_at IS NULL");
        let row: Option<UserRow> =
            on_pool!(self, read, |pool, sql| sqlx::query_as(&sql(&q)).bind(email).fetch_optional(pool).await.map_err(db_error)?);
        row.map(User::try_from).transpose()
    }

    async fn set_user_active(&self, id: Uuid, active: bool, now: OffsetDateTime) -> Result<bool> {
        let q = "UPDATE users SET is_active = $2, updated_at = gv_ts($3) WHERE id = $1::uuid";
        let done = on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q)).bind(id.to_string()).bind(active).bind(us(now)).execute(pool).await.map_err(db_error)?.rows_affected()
        });
        Ok(done == 1)
    }

    async fn set_webhook_secret(&self, id: Uuid, secret: &str, now: OffsetDateTime) -> Result<bool> {
        let q = "UPDATE users SET webhook_secret = $2, updated_at = gv_ts($3) WHERE id = $1::uuid AND archived_at IS NULL";
        let done = on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q)).bind(id.to_string()).bind(secret).bind(us(now)).execute(pool).await.map_err(db_error)?.rows_affected()
        });
        Ok(done == 1)
    }

    async fn insert_api_key(&self, k: &ApiKey) -> Result<()> {
        let q = "INSERT INTO api_keys (id, user_id, prefix, hashed_key, created_at, revoked_at, last_used_at, rotated_from) \
                 VALUES ($1::uuid, $2::uuid, $3, $4, gv_ts($5), gv_ts($6), gv_ts($7), $8::uuid)";
        on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q))
                .bind(k.id.to_string())
                .bind(k.user_id.to_string())
                .bind(&k.prefix)
                .bind(&k.hashed_key)
                .bind(us(k.created_at))
                .bind(k.revoked_at.map(us))
                .bind(k.last_used_at.map(us))
                .bind(k.rotated_from.map(|u| u.to_string()))
                .execute(pool)
                .await
                .map_err(db_error)?;
        });
        Ok(())
    }

    async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKey>> {
        let q = format!("SELECT {KEY_COLS} FROM api_keys WHERE prefix = $1");
        let row: Option<KeyRow> =
            on_pool!(self, read, |pool, sql| sqlx::query_as(&sql(&q)).bind(prefix).fetch_optional(pool).await.map_err(db_error)?);
        row.map(ApiKey::try_from).transpose()
    }

    async fn api_key(&self, id: Uuid) -> Result<Option<ApiKey>> {
        let q = format!("SELECT {KEY_COLS} FROM api_keys WHERE id = $1::uuid");
        let row: Option<KeyRow> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(&q)).bind(id.to_string()).fetch_optional(pool).await.map_err(db_error)?
        });
        row.map(ApiKey::try_from).transpose()
    }

    async fn api_keys_for_user(&self, user_id: Uuid) -> Result<Vec<ApiKey>> {
        let q = format!("SELECT {KEY_COLS} FROM api_keys WHERE user_id = $1::uuid ORDER BY created_at, id");
        let rows: Vec<KeyRow> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(&q)).bind(user_id.to_string()).fetch_all(pool).await.map_err(db_error)?
        });
        convert(rows)
    }

    async fn insert_session(&self, session: &SessionRecord) -> Result<()> {
        let q = "INSERT INTO sessions (id, user_id, key_id, created_at, expires_at, revoked_at) \
                 VALUES ($1::uuid, $2::uuid, $3::uuid, gv_ts($4), gv_ts($5), gv_ts($6))";
        on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q))
                .bind(session.id.to_string())
                .bind(session.user_id.to_string())
                .bind(session.key_id.to_string())
                .bind(us(session.created_at))
                .bind(us(session.expires_at))
                .bind(session.revoked_at.map(us))
                .execute(pool)
                .await
                .map_err(db_error)?;
        });
        Ok(())
    }

    async fn session(&self, id: Uuid) -> Result<Option<SessionRecord>> {
        let q = format!("SELECT {SESSION_COLS} FROM sessions WHERE id = $1::uuid");
        let row: Option<SessionRow> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(&q)).bind(id.to_string()).fetch_optional(pool).await.map_err(db_error)?
        });
        row.map(SessionRecord::try_from).transpose()
    }

    async fn revoke_session(&self, user_id: Uuid, id: Uuid, now: OffsetDateTime) -> Result<bool> {
        let q = "UPDATE sessions SET revoked_at = gv_ts($3) WHERE id = $1::uuid AND user_id = $2::uuid AND revoked_at IS NULL";
        let done = on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q))
                .bind(id.to_string())
                .bind(user_id.to_string())
                .bind(us(now))
                .execute(pool)
                .await
                .map_err(db_error)?
                .rows_affected()
        });
        Ok(done == 1)
    }

    async fn revoke_api_key(&self, user_id: Uuid, key_id: Uuid, now: OffsetDateTime) -> Result<bool> {
        let q = "UPDATE api_keys SET revoked_at = gv_ts($3) WHERE id = $1::uuid AND user_id = $2::uuid AND revoked_at IS NULL";
        let done = on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q))
                .bind(key_id.to_string())
                .bind(user_id.to_string())
                .bind(us(now))
                .execute(pool)
                .await
                .map_err(db_error)?
                .rows_affected()
        });
        Ok(done == 1)
    }

    async fn rotate_api_key(&self, user_id: Uuid, old_id: Uuid, new_key: &ApiKey, now: OffsetDateTime) -> Result<bool> {
        let revoke = "UPDATE api_keys SET revoked_at = gv_ts($3) WHERE id = $1::uuid AND user_id = $2::uuid AND revoked_at IS NULL";
        let insert = "INSERT INTO api_keys (id, user_id, prefix, hashed_key, created_at, rotated_from) \
                      VALUES ($1::uuid, $2::uuid, $3, $4, gv_ts($5), $6::uuid)";
        on_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin().await.map_err(db_error)?;
            let revoked = sqlx::query(&sql(revoke))
                .bind(old_id.to_string())
                .bind(user_id.to_string())
                .bind(us(now))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected();
            if revoked != 1 {
                return Ok(false); // dropping tx rolls back
            }
            sqlx::query(&sql(insert))
                .bind(new_key.id.to_string())
                .bind(user_id.to_string())
                .bind(&new_key.prefix)
                .bind(&new_key.hashed_key)
                .bind(us(new_key.created_at))
                .bind(old_id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
        });
        Ok(true)
    }

    async fn touch_api_key(&self, key_id: Uuid, now: OffsetDateTime) -> Result<()> {
        let q = "UPDATE api_keys SET last_used_at = gv_ts($2) WHERE id = $1::uuid";
        on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q)).bind(key_id.to_string()).bind(us(now)).execute(pool).await.map_err(db_error)?;
        });
        Ok(())
    }

    async fn create_submission_and_job(&self, s: &Submission, j: &Job) -> Result<()> {
        self.write_admission(Some((s, j)), None).await.map(|_| ())
    }

    async fn admit_submission_and_job(&self, s: &Submission, j: &Job, charge: &domain::usage::Charge) -> Result<domain::usage::Admitted> {
        self.admit(Some((s, j)), charge).await
    }

    async fn admit_charge(&self, charge: &domain::usage::Charge) -> Result<domain::usage::Admitted> {
        self.admit(None, charge).await
    }

    async fn usage_account(&self, user_id: Uuid) -> Result<domain::usage::UsageAccount> {
        self.read_usage_account(user_id).await
    }

    async fn change_usage_account(
        &self,
        user_id: Uuid,
        change: &domain::usage::AccountChange,
        now: OffsetDateTime,
    ) -> Result<(domain::usage::UsageAccount, domain::usage::UsageAccount)> {
        self.write_account_change(user_id, change, now).await
    }

    async fn reverse_charge(&self, job_id: Uuid, reason: &str, now: OffsetDateTime) -> Result<bool> {
        self.reverse(job_id, reason, now).await
    }

    async fn settle_charge(&self, job_id: Uuid, units: u64, now: OffsetDateTime) -> Result<bool> {
        self.settle(job_id, units, now).await
    }

    async fn period_usage(&self, user_id: Uuid, period: &str) -> Result<u64> {
        self.period_total(user_id, period).await
    }

    async fn usage_by_day(&self, user_id: Uuid, from_day: i64, to_day: i64) -> Result<Vec<domain::usage::UsageDay>> {
        self.read_usage_by_day(user_id, from_day, to_day).await
    }

    async fn heaviest_accounts(&self, period: &str, limit: u32) -> Result<Vec<(Uuid, u64)>> {
        self.heaviest(period, limit).await
    }

    async fn reconcile_usage(&self, period: &str) -> Result<(u64, Vec<domain::usage::Drift>)> {
        self.reconcile(period).await
    }

    async fn claim_usage_notice(
        &self,
        user_id: Uuid,
        period: &str,
        threshold: u32,
        targets: &[String],
        now: OffsetDateTime,
    ) -> Result<bool> {
        self.claim_notice(user_id, period, threshold, targets, now).await
    }

    async fn due_usage_notices(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<domain::usage::UsageNotice>> {
        self.read_due_notices(now, limit).await
    }

    async fn record_usage_notice(
        &self,
        notice: &domain::usage::UsageNotice,
        status: DeliveryStatus,
        error: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<()> {
        self.write_notice_attempt(notice, status, error, now).await
    }

    async fn meter_outbox(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<domain::billing::MeterItem>> {
        self.read_meter_outbox(now, limit).await
    }

    async fn record_meter_export(
        &self,
        item: &domain::billing::MeterItem,
        outcome: &domain::billing::MeterOutcome,
        now: OffsetDateTime,
    ) -> Result<()> {
        self.write_meter_export(item, outcome, now).await
    }

    async fn set_user_plan(&self, id: Uuid, plan: Plan, now: OffsetDateTime) -> Result<bool> {
        let q = "UPDATE users SET plan = $2, updated_at = gv_ts($3) WHERE id = $1::uuid";
        let done = on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q))
                .bind(id.to_string())
                .bind(plan.as_str())
                .bind(us(now))
                .execute(pool)
                .await
                .map_err(db_error)?
                .rows_affected()
        });
        Ok(done == 1)
    }

    async fn append_job_event(&self, job_id: Uuid, kind: JobEventKind, data: &Value, at: OffsetDateTime) -> Result<Option<u32>> {
        self.write_job_event(job_id, kind, data, at).await
    }

    async fn job_events(&self, job_id: Uuid, after: u32, limit: u32) -> Result<Vec<JobEvent>> {
        self.read_job_events(job_id, after, limit).await
    }

    async fn add_outcome(&self, outcome: &domain::outcomes::Outcome, max: u32) -> Result<bool> {
        self.write_outcome(outcome, max).await
    }

    async fn outcomes(&self, job_id: Uuid, limit: u32) -> Result<Vec<domain::outcomes::Outcome>> {
        self.read_outcomes(job_id, limit).await
    }

    async fn create_pending_grant(&self, grant: &domain::accounts::PendingGrant, max: u32, now: OffsetDateTime) -> Result<bool> {
        self.write_pending_grant(grant, max, now).await
    }

    async fn take_pending_grant(&self, state_hash: &str, now: OffsetDateTime) -> Result<Option<domain::accounts::PendingGrant>> {
        self.remove_pending_grant(state_hash, now).await
    }

    async fn account_by_external(
        &self,
        user_id: Uuid,
        platform: Platform,
        external_id: &str,
    ) -> Result<Option<domain::accounts::ConnectedAccount>> {
        self.read_account_by_external(user_id, platform, external_id).await
    }

    async fn account(&self, id: Uuid) -> Result<Option<domain::accounts::ConnectedAccount>> {
        self.read_account(id).await
    }

    async fn save_account(&self, account: &domain::accounts::ConnectedAccount, max: u32) -> Result<bool> {
        self.write_account(account, max).await
    }

    async fn accounts_for_user(&self, user_id: Uuid) -> Result<Vec<domain::accounts::ConnectedAccount>> {
        self.read_accounts_for_user(user_id).await
    }

    async fn update_account_tokens(&self, account: &domain::accounts::ConnectedAccount) -> Result<()> {
        self.write_account_tokens(account).await
    }

    async fn set_account_status(
        &self,
        id: Uuid,
        status: domain::accounts::AccountStatus,
        error: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<()> {
        self.write_account_status(id, status, error, now).await
    }

    async fn delete_account(&self, user_id: Uuid, id: Uuid) -> Result<bool> {
        self.remove_account(user_id, id).await
    }

    async fn accounts_to_renew(&self, before: OffsetDateTime, limit: u32) -> Result<Vec<domain::accounts::ConnectedAccount>> {
        self.read_accounts_to_renew(before, limit).await
    }

    async fn create_tracked_post(&self, post: &domain::collect::TrackedPost, max: u32) -> Result<bool> {
        self.write_tracked_post(post, max).await
    }

    async fn claim_due_posts(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<domain::collect::TrackedPost>> {
        self.claim_posts(now, lease_until, limit).await
    }

    async fn update_tracked_post(
        &self,
        id: Uuid,
        next_check_at: Option<OffsetDateTime>,
        checks_done: u32,
        last_error: Option<&str>,
    ) -> Result<()> {
        self.write_post_check(id, next_check_at, checks_done, last_error).await
    }

    async fn tracked_posts_for_job(&self, job_id: Uuid) -> Result<Vec<domain::collect::TrackedPost>> {
        self.read_tracked_posts(job_id).await
    }

    async fn past_results(
        &self,
        user_id: Uuid,
        platform: Option<Platform>,
        exclude: Uuid,
        limit: u32,
    ) -> Result<Vec<domain::baseline::PastResult>> {
        self.read_past_results(user_id, platform, exclude, limit).await
    }

    async fn insert_model_version(&self, version: &domain::registry::ModelVersion) -> Result<domain::registry::ModelVersion> {
        self.write_model_version(version).await
    }

    async fn model_versions(&self, limit: u32) -> Result<Vec<domain::registry::ModelVersion>> {
        self.read_model_versions(limit).await
    }

    async fn model_version(&self, id: Uuid) -> Result<Option<domain::registry::ModelVersion>> {
        self.read_model_version(id).await
    }

    async fn serving_model_version(&self, name: &str) -> Result<Option<domain::registry::ModelVersion>> {
        self.read_serving_version(name).await
    }

    async fn previous_serving_version(&self, name: &str) -> Result<Option<domain::registry::ModelVersion>> {
        self.read_previous_serving(name).await
    }

    async fn decide_model_version(&self, decision: &domain::registry::Decision) -> Result<bool> {
        self.write_decision(decision).await
    }

    async fn training_observations(&self, limit: u32) -> Result<Vec<domain::outcomes::TrainingObservation>> {
        self.read_training_observations(limit).await
    }

    async fn job(&self, job_id: Uuid) -> Result<Option<Job>> {
        let q = format!("SELECT {JOB_COLS} FROM analysis_jobs WHERE id = $1::uuid");
        let row: Option<JobRow> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(&q)).bind(job_id.to_string()).fetch_optional(pool).await.map_err(db_error)?
        });
        row.map(Job::try_from).transpose()
    }

    async fn submission(&self, submission_id: Uuid) -> Result<Option<Submission>> {
        let q = format!("SELECT {SUBMISSION_COLS} FROM content_submissions WHERE id = $1::uuid");
        let row: Option<SubmissionRow> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(&q)).bind(submission_id.to_string()).fetch_optional(pool).await.map_err(db_error)?
        });
        row.map(Submission::try_from).transpose()
    }

    async fn insights(&self, job_id: Uuid) -> Result<Vec<Insight>> {
        // Fixed category order, the order the product presents them in.
        let q = "SELECT category, message, recommendations::text AS recommendations, weight::float8 AS weight FROM insights \
                 WHERE job_id = $1::uuid ORDER BY CASE category WHEN 'hook' THEN 1 WHEN 'pacing' THEN 2 WHEN 'emotion' THEN 3 \
                 WHEN 'storytelling' THEN 4 ELSE 5 END";
        let rows: Vec<InsightRow> =
            on_pool!(self, read, |pool, sql| sqlx::query_as(&sql(q)).bind(job_id.to_string()).fetch_all(pool).await.map_err(db_error)?);
        convert(rows)
    }

    async fn transition_job(&self, job_id: Uuid, from: &[JobStatus], to: JobStatus, now: OffsetDateTime) -> Result<bool> {
        if from.is_empty() {
            return Ok(false);
        }
        let q = format!(
            "UPDATE analysis_jobs SET status = $2, updated_at = gv_ts($3) WHERE id = $1::uuid AND status IN ({})",
            placeholders(4, from.len())
        );
        on_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin().await.map_err(db_error)?;
            let q = sql(&q);
            let mut update = sqlx::query(&q).bind(job_id.to_string()).bind(to.as_str()).bind(us(now));
            for status in from {
                update = update.bind(status.as_str());
            }
            if update.execute(&mut *tx).await.map_err(db_error)?.rows_affected() != 1 {
                return Ok(false);
            }
            if let Some(sub_status) = submission_status(to) {
                sqlx::query(&sql(SET_SUBMISSION_STATUS))
                    .bind(job_id.to_string())
                    .bind(sub_status.as_str())
                    .bind(us(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            tx.commit().await.map_err(db_error)?;
        });
        Ok(true)
    }

    async fn complete_job(&self, job_id: Uuid, r: &JobResult, run: Option<&ModelRun>, now: OffsetDateTime) -> Result<bool> {
        let update = "UPDATE analysis_jobs SET status = 'complete', score = $2::numeric, confidence = $3::numeric, metrics = $4::jsonb, \
                      completed_at = gv_ts($5), updated_at = gv_ts($5) WHERE id = $1::uuid AND status IN ('queued', 'processing')";
        let insert_head = "INSERT INTO insights (id, job_id, category, message, recommendations, weight, created_at) VALUES";
        on_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin().await.map_err(db_error)?;
            let updated = sqlx::query(&sql(update))
                .bind(job_id.to_string())
                .bind(two_decimals(r.score))
                .bind(two_decimals(r.confidence))
                .bind(json_text(&r.metrics))
                .bind(us(now))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected();
            if updated != 1 {
                return Ok(false);
            }
            if !r.insights.is_empty() {
                // One statement for all of them: the writer is the bottleneck on SQLite.
                let rows: Vec<String> = (0..r.insights.len())
                    .map(|i| {
                        let p = 1 + i * 7;
                        format!(
                            "(${}::uuid, ${}::uuid, ${}, ${}, ${}::jsonb, ${}::numeric, gv_ts(${}))",
                            p,
                            p + 1,
                            p + 2,
                            p + 3,
                            p + 4,
                            p + 5,
                            p + 6
                        )
                    })
                    .collect();
                let q = sql(&format!("{insert_head} {} ON CONFLICT (job_id, category) DO NOTHING", rows.join(", ")));
                let mut query = sqlx::query(&q);
                for i in &r.insights {
                    let recommendations = serde_json::to_string(&i.recommendations).map_err(|e| Error::Internal(e.to_string()))?;
                    query = query
                        .bind(Uuid::now_v7().to_string())
                        .bind(job_id.to_string())
                        .bind(i.category.as_str())
                        .bind(i.message.clone())
                        .bind(recommendations)
                        .bind(two_decimals(i.weight))
                        .bind(us(now));
                }
                query.execute(&mut *tx).await.map_err(db_error)?;
            }
            if let Some(run) = run {
                insert_model_run(&mut tx, run, &sql).await?;
            }
            sqlx::query(&sql(SET_SUBMISSION_STATUS))
                .bind(job_id.to_string())
                .bind(SubmissionStatus::Complete.as_str())
                .bind(us(now))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
        });
        Ok(true)
    }

    async fn fail_job(
        &self,
        job_id: Uuid,
        errors: &serde_json::Value,
        flags: Option<&serde_json::Value>,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let update = "UPDATE analysis_jobs SET status = 'failed', errors = $2::jsonb, moderation_flags = $3::jsonb, \
                      completed_at = gv_ts($4), updated_at = gv_ts($4) WHERE id = $1::uuid AND status IN ('queued', 'processing')";
        on_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin().await.map_err(db_error)?;
            let updated = sqlx::query(&sql(update))
                .bind(job_id.to_string())
                .bind(json_text(errors))
                .bind(flags.map(json_text))
                .bind(us(now))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected();
            if updated != 1 {
                return Ok(false);
            }
            sqlx::query(&sql(SET_SUBMISSION_STATUS))
                .bind(job_id.to_string())
                .bind(SubmissionStatus::Failed.as_str())
                .bind(us(now))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
        });
        Ok(true)
    }

    async fn archive_job(&self, user_id: Uuid, job_id: Uuid, now: OffsetDateTime) -> Result<bool> {
        let q = "UPDATE analysis_jobs SET status = 'archived', archived_at = gv_ts($3), updated_at = gv_ts($3) \
                 WHERE id = $1::uuid AND user_id = $2::uuid AND archived_at IS NULL";
        let done = on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q))
                .bind(job_id.to_string())
                .bind(user_id.to_string())
                .bind(us(now))
                .execute(pool)
                .await
                .map_err(db_error)?
                .rows_affected()
        });
        Ok(done == 1)
    }

    async fn history(&self, user_id: Uuid, status: Option<JobStatus>, cursor: Option<Cursor>, limit: u32) -> Result<Vec<JobSummary>> {
        let q = "SELECT id::text AS id, score::float8 AS score, status, gv_us(created_at) AS created_at FROM analysis_jobs \
                 WHERE user_id = $1::uuid AND archived_at IS NULL AND ($2::text IS NULL OR status = $2::text) \
                 AND ($3::bigint IS NULL OR (created_at, id) < (gv_ts($3::bigint), $4::uuid)) \
                 ORDER BY created_at DESC, id DESC LIMIT $5";
        let rows: Vec<SummaryRow> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(q))
                .bind(user_id.to_string())
                .bind(status.map(JobStatus::as_str))
                .bind(cursor.map(|c| c.created_at_us))
                .bind(cursor.map(|c| c.id.to_string()))
                .bind(limit as i64)
                .fetch_all(pool)
                .await
                .map_err(db_error)?
        });
        convert(rows)
    }

    async fn admin_jobs(&self, f: &AdminJobFilter) -> Result<Vec<Job>> {
        let q = format!(
            "SELECT {JOB_COLS} FROM analysis_jobs WHERE {ADMIN_FILTER} \
             AND ($4::bigint IS NULL OR (created_at, id) < (gv_ts($4::bigint), $5::uuid)) ORDER BY created_at DESC, id DESC LIMIT $6"
        );
        let rows: Vec<JobRow> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(&q))
                .bind(f.status.map(JobStatus::as_str))
                .bind(f.from.map(us))
                .bind(f.to.map(us))
                .bind(f.cursor.map(|c| c.created_at_us))
                .bind(f.cursor.map(|c| c.id.to_string()))
                .bind(f.limit as i64)
                .fetch_all(pool)
                .await
                .map_err(db_error)?
        });
        convert(rows)
    }

    async fn job_totals(&self, f: &AdminJobFilter) -> Result<BTreeMap<JobStatus, u64>> {
        let q = format!("SELECT status, count(*) AS n FROM analysis_jobs WHERE {ADMIN_FILTER} GROUP BY status");
        let rows: Vec<(String, i64)> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(&q))
                .bind(f.status.map(JobStatus::as_str))
                .bind(f.from.map(us))
                .bind(f.to.map(us))
                .fetch_all(pool)
                .await
                .map_err(db_error)?
        });
        let mut totals: BTreeMap<JobStatus, u64> = JobStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for (status, n) in rows {
            let status = status.parse().map_err(|e: String| Error::Internal(e))?;
            totals.insert(status, n as u64);
        }
        Ok(totals)
    }

    async fn queued_jobs(&self, limit: u32) -> Result<Vec<Uuid>> {
        let q = "SELECT id::text FROM analysis_jobs WHERE status = 'queued' ORDER BY created_at LIMIT $1";
        let ids: Vec<String> =
            on_pool!(self, read, |pool, sql| sqlx::query_scalar(&sql(q)).bind(limit as i64).fetch_all(pool).await.map_err(db_error)?);
        ids.iter().map(|s| uuid(s)).collect()
    }

    async fn create_upload(&self, u: &Upload) -> Result<()> {
        let q = "INSERT INTO uploads (id, user_id, media_type, declared_bytes, filename, storage_key, status, created_at, url_expires_at) \
                 VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7, gv_ts($8), gv_ts($9))";
        let declared = i64::try_from(u.declared_bytes).map_err(|_| Error::validation("size_bytes", "too large"))?;
        on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q))
                .bind(u.id.to_string())
                .bind(u.user_id.to_string())
                .bind(&u.media_type)
                .bind(declared)
                .bind(&u.filename)
                .bind(&u.storage_key)
                .bind(u.status.as_str())
                .bind(us(u.created_at))
                .bind(us(u.url_expires_at))
                .execute(pool)
                .await
                .map_err(db_error)?;
        });
        Ok(())
    }

    async fn upload(&self, id: Uuid) -> Result<Option<Upload>> {
        let q = format!("SELECT {UPLOAD_COLS} FROM uploads WHERE id = $1::uuid");
        let row: Option<UploadRow> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(&q)).bind(id.to_string()).fetch_optional(pool).await.map_err(db_error)?
        });
        row.map(Upload::try_from).transpose()
    }

    async fn finish_upload(&self, id: Uuid, r: &ReceivedUpload, now: OffsetDateTime) -> Result<bool> {
        let q = "UPDATE uploads SET status = $2, received_bytes = $3, rejection = $4, received_at = gv_ts($5), sha256 = $6, content_key = $7 \
                 WHERE id = $1::uuid AND status = 'pending'";
        let received = i64::try_from(r.received_bytes).unwrap_or(i64::MAX);
        let done = on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q))
                .bind(id.to_string())
                .bind(r.status.as_str())
                .bind(received)
                .bind(r.rejection.as_deref())
                .bind(us(now))
                .bind(r.sha256.as_deref())
                .bind(r.content_key.as_deref())
                .execute(pool)
                .await
                .map_err(db_error)?
                .rows_affected()
        });
        Ok(done == 1)
    }

    async fn create_webhook(&self, w: &WebhookSubscription, max_per_user: usize) -> Result<()> {
        // The count and the insert are one decision: the user's row is locked on PostgreSQL
        // (SQLite's single writer already serialises the transaction).
        let lock = if self.is_postgres() {
            "SELECT id FROM users WHERE id = $1::uuid FOR UPDATE"
        } else {
            "SELECT id FROM users WHERE id = $1::uuid"
        };
        let count = "SELECT COUNT(*) FROM webhook_subscriptions WHERE user_id = $1::uuid";
        let insert = "INSERT INTO webhook_subscriptions (id, user_id, target_url, secret, events, active, created_at, updated_at) \
                      VALUES ($1::uuid, $2::uuid, $3, $4, gv_list($5), $6, gv_ts($7), gv_ts($7))";
        let user = w.user_id.to_string();
        let result: std::result::Result<bool, sqlx::Error> = on_pool!(self, write, |pool, sql| {
            async {
                let mut tx = pool.begin().await?;
                sqlx::query(&sql(lock)).bind(&user).fetch_optional(&mut *tx).await?;
                let existing: i64 = sqlx::query_scalar(&sql(count)).bind(&user).fetch_one(&mut *tx).await?;
                if existing as usize >= max_per_user {
                    return Ok(false);
                }
                sqlx::query(&sql(insert))
                    .bind(w.id.to_string())
                    .bind(&user)
                    .bind(&w.target_url)
                    .bind(&w.secret)
                    .bind(join_values(&w.events, WebhookEvent::as_str))
                    .bind(w.active)
                    .bind(us(w.created_at))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(true)
            }
            .await
        });
        match result.map_err(db_error) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::Conflict(format!("at most {max_per_user} webhook subscriptions per user"))),
            Err(Error::Conflict(_)) => Err(Error::Conflict(format!("you already have a subscription for {}", w.target_url))),
            Err(e) => Err(e),
        }
    }

    async fn webhooks_for_user(&self, user_id: Uuid) -> Result<Vec<WebhookSubscription>> {
        let q = format!("SELECT {WEBHOOK_COLS} FROM webhook_subscriptions WHERE user_id = $1::uuid ORDER BY created_at, id");
        let rows: Vec<WebhookRow> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(&q)).bind(user_id.to_string()).fetch_all(pool).await.map_err(db_error)?
        });
        convert(rows)
    }

    async fn webhook(&self, id: Uuid) -> Result<Option<WebhookSubscription>> {
        let q = format!("SELECT {WEBHOOK_COLS} FROM webhook_subscriptions WHERE id = $1::uuid");
        let row: Option<WebhookRow> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(&q)).bind(id.to_string()).fetch_optional(pool).await.map_err(db_error)?
        });
        row.map(WebhookSubscription::try_from).transpose()
    }

    async fn delete_webhook(&self, user_id: Uuid, id: Uuid) -> Result<bool> {
        let q = "DELETE FROM webhook_subscriptions WHERE id = $1::uuid AND user_id = $2::uuid";
        let done = on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q)).bind(id.to_string()).bind(user_id.to_string()).execute(pool).await.map_err(db_error)?.rows_affected()
        });
        Ok(done == 1)
    }

    async fn append_audit(&self, e: &AuditEntry) -> Result<()> {
        let q = "INSERT INTO audit_logs (id, actor, action, payload, ip_address, created_at) VALUES ($1::uuid, $2, $3, $4::jsonb, $5::inet, gv_ts($6))";
        on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q))
                .bind(e.id.to_string())
                .bind(&e.actor)
                .bind(&e.action)
                .bind(json_text(&e.payload))
                .bind(e.ip_address.map(|ip| ip.to_string()))
                .bind(us(e.created_at))
                .execute(pool)
                .await
                .map_err(db_error)?;
        });
        Ok(())
    }

    async fn audit_for_actor(&self, actor: &str, limit: u32) -> Result<Vec<AuditEntry>> {
        let q = "SELECT id::text AS id, actor, action, payload::text AS payload, host(ip_address) AS ip_address, gv_us(created_at) AS created_at \
                 FROM audit_logs WHERE actor = $1 ORDER BY created_at DESC, id DESC LIMIT $2";
        let rows: Vec<AuditRow> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(q)).bind(actor).bind(limit as i64).fetch_all(pool).await.map_err(db_error)?
        });
        convert(rows)
    }

    async fn append_model_run(&self, r: &ModelRun) -> Result<()> {
        on_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin().await.map_err(db_error)?;
            insert_model_run(&mut tx, r, &sql).await?;
            tx.commit().await.map_err(db_error)?;
        });
        Ok(())
    }

    async fn recent_completion_secs(&self, sample: u32) -> Result<Option<f64>> {
        let q = "SELECT avg(gv_us(completed_at) - gv_us(created_at))::float8 FROM (SELECT completed_at, created_at FROM analysis_jobs \
                 WHERE status = 'complete' ORDER BY completed_at DESC LIMIT $1) recent";
        let mean_us: Option<f64> =
            on_pool!(self, read, |pool, sql| sqlx::query_scalar(&sql(q)).bind(sample as i64).fetch_one(pool).await.map_err(db_error)?);
        Ok(mean_us.map(|us| us / 1_000_000.0))
    }

    async fn webhook_delivery(&self, job_id: Uuid, target_url: &str, event: WebhookEvent) -> Result<WebhookDelivery> {
        let insert = "INSERT INTO webhook_deliveries (id, job_id, target_url, event, status, attempts, created_at, updated_at) \
                      VALUES ($1::uuid, $2::uuid, $3, $4, 'pending', 0, gv_ts($5), gv_ts($5)) ON CONFLICT (job_id, target_url, event) DO NOTHING";
        let select = format!("SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE job_id = $1::uuid AND target_url = $2 AND event = $3");
        let row: DeliveryRow = on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(insert))
                .bind(Uuid::now_v7().to_string())
                .bind(job_id.to_string())
                .bind(target_url)
                .bind(event.as_str())
                .bind(us(now()))
                .execute(pool)
                .await
                .map_err(db_error)?;
            sqlx::query_as(&sql(&select))
                .bind(job_id.to_string())
                .bind(target_url)
                .bind(event.as_str())
                .fetch_one(pool)
                .await
                .map_err(db_error)?
        });
        WebhookDelivery::try_from(row)
    }

    async fn record_delivery_attempt(&self, id: Uuid, status: DeliveryStatus, error: Option<&str>, now: OffsetDateTime) -> Result<()> {
        let q = "UPDATE webhook_deliveries SET attempts = attempts + 1, status = $2, last_error = $3, updated_at = gv_ts($4) WHERE id = $1::uuid";
        on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q))
                .bind(id.to_string())
                .bind(status.as_str())
                .bind(error)
                .bind(us(now))
                .execute(pool)
                .await
                .map_err(db_error)?;
        });
        Ok(())
    }

    async fn dead_deliveries(&self, limit: u32) -> Result<Vec<WebhookDelivery>> {
        let q = format!("SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE status = 'dead' ORDER BY updated_at DESC, id DESC LIMIT $1");
        let rows: Vec<DeliveryRow> =
            on_pool!(self, read, |pool, sql| sqlx::query_as(&sql(&q)).bind(limit as i64).fetch_all(pool).await.map_err(db_error)?);
        convert(rows)
    }

    async fn model_runs(&self, job_id: Uuid) -> Result<Vec<ModelRun>> {
        let q = "SELECT id::text AS id, job_id::text AS job_id, model_name, model_version, latency_ms, token_usage::text AS token_usage, prompt_hash, \
                 gv_us(created_at) AS created_at FROM model_runs WHERE job_id = $1::uuid ORDER BY created_at, id";
        let rows: Vec<ModelRunRow> =
            on_pool!(self, read, |pool, sql| sqlx::query_as(&sql(q)).bind(job_id.to_string()).fetch_all(pool).await.map_err(db_error)?);
        convert(rows)
    }
}

/// Both rows of a new submission, inside the caller's transaction (PostgreSQL: one per
/// submission; SQLite: one per group commit).
impl SqlStore {
    /// The submission and its job, with the charge where there is one, in one transaction
    /// (on SQLite, the group-commit writer's).
    /// A submission and its job, a charge, or both, in one transaction.
    pub(crate) async fn write_admission(
        &self,
        rows: Option<(&Submission, &Job)>,
        charge: Option<(&domain::usage::Charge, crate::usage::Total)>,
    ) -> Result<Option<domain::usage::Admitted>> {
        match &self.backend {
            crate::Backend::Sqlite { jobs, .. } => jobs.write(rows, charge).await,
            crate::Backend::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(db_error)?;
                if let Some((s, j)) = rows {
                    insert_submission_and_job(&mut tx, s, j, |q| q.to_string()).await?;
                }
                let admitted = match charge {
                    Some((c, total)) => Some(crate::usage::apply_charge(&mut tx, c, total, |q| q.to_string()).await?),
                    None => None,
                };
                tx.commit().await.map_err(db_error)?;
                Ok(admitted)
            }
        }
    }
}

pub(crate) async fn insert_submission_and_job<DB: sqlx::Database>(
    tx: &mut sqlx::Transaction<'_, DB>,
    s: &Submission,
    j: &Job,
    sql: impl Fn(&str) -> String,
) -> Result<()>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<String>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let insert_submission =
        sql("INSERT INTO content_submissions (id, user_id, content_type, source_url, upload_id, storage_key, caption, \
                                 platform_hint, notify_webhook, status, created_at, updated_at) \
                                 VALUES ($1::uuid, $2::uuid, $3, $4, $5::uuid, $6, $7, $8, $9, $10, gv_ts($11), gv_ts($11))");
    let insert_job = sql("INSERT INTO analysis_jobs (id, submission_id, user_id, status, created_at, updated_at) \
                          VALUES ($1::uuid, $2::uuid, $3::uuid, $4, gv_ts($5), gv_ts($6))");
    sqlx::query(&insert_submission)
        .bind(s.id.to_string())
        .bind(s.user_id.to_string())
        .bind(s.content_type.as_str().to_string())
        .bind(s.source_url.clone())
        .bind(s.upload_id.map(|u| u.to_string()))
        .bind(s.storage_key.clone())
        .bind(s.caption.clone())
        .bind(s.platform_hint.map(|p| p.as_str().to_string()))
        .bind(s.notify_webhook.clone())
        .bind(s.status.as_str().to_string())
        .bind(us(s.created_at))
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    sqlx::query(&insert_job)
        .bind(j.id.to_string())
        .bind(j.submission_id.to_string())
        .bind(j.user_id.to_string())
        .bind(j.status.as_str().to_string())
        .bind(us(j.created_at))
        .bind(us(j.updated_at))
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    // The job's live stream starts with it.
    sqlx::query(&sql(crate::events::QUEUED)).bind(j.id.to_string()).bind(us(j.created_at)).execute(&mut **tx).await.map_err(db_error)?;
    Ok(())
}

/// A model run, inside the caller's transaction.
async fn insert_model_run<DB: sqlx::Database>(tx: &mut sqlx::Transaction<'_, DB>, r: &ModelRun, sql: impl Fn(&str) -> String) -> Result<()>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<String>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let q = sql("INSERT INTO model_runs (id, job_id, model_name, latency_ms, token_usage, prompt_hash, created_at, model_version) \
                 VALUES ($1::uuid, $2::uuid, $3, $4, $5::jsonb, $6, gv_ts($7), $8)");
    sqlx::query(&q)
        .bind(r.id.to_string())
        .bind(r.job_id.to_string())
        .bind(r.model_name.clone())
        .bind(r.latency_ms)
        .bind(r.token_usage.as_ref().map(json_text))
        .bind(r.prompt_hash.clone())
        .bind(us(r.created_at))
        .bind(r.model_version.clone())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Status and time-range filter shared by the admin listing and its totals ($1–$3); `to` is inclusive.
const ADMIN_FILTER: &str = "($1::text IS NULL OR status = $1::text) AND ($2::bigint IS NULL OR created_at >= gv_ts($2::bigint)) \
                            AND ($3::bigint IS NULL OR created_at <= gv_ts($3::bigint))";
