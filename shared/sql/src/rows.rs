//! Row shapes as both backends return them (text ids, µs times, JSON as text) and their
//! conversion to domain entities. A row that does not convert is a corrupt store: Internal.

use domain::model::*;
use domain::{Error, Result};
use time::OffsetDateTime;
use uuid::Uuid;

fn corrupt(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::Internal(format!("corrupt {what} row: {detail}"))
}

pub(crate) fn uuid(s: &str) -> Result<Uuid> {
    s.parse().map_err(|e| corrupt("id", e))
}

fn opt_uuid(s: Option<String>) -> Result<Option<Uuid>> {
    s.as_deref().map(uuid).transpose()
}

fn time(us: i64) -> OffsetDateTime {
    from_micros(us)
}

fn opt_time(us: Option<i64>) -> Option<OffsetDateTime> {
    us.map(from_micros)
}

fn json(s: Option<String>) -> Result<Option<serde_json::Value>> {
    s.map(|s| serde_json::from_str(&s).map_err(|e| corrupt("json", e))).transpose()
}

fn parse<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T> {
    s.parse().map_err(|e| corrupt("enum", e))
}

/// Scores are numeric(5,2) and confidences numeric(3,2) in PostgreSQL; round the same way
/// before writing so both stores hold the same value.
pub(crate) fn two_decimals(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub(crate) const USER_COLS: &str = "id::text AS id, email, hashed_secret, plan, is_active, gv_join(rbac_roles) AS roles, webhook_secret, gv_us(created_at) AS created_at, gv_us(updated_at) AS updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: String,
    email: String,
    hashed_secret: String,
    plan: String,
    is_active: bool,
    roles: String,
    webhook_secret: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = Error;
    fn try_from(r: UserRow) -> Result<User> {
        Ok(User {
            id: uuid(&r.id)?,
            email: r.email,
            hashed_secret: r.hashed_secret,
            plan: parse(&r.plan)?,
            is_active: r.is_active,
            roles: split_values(&r.roles).map_err(|e| corrupt("user", e))?,
            webhook_secret: r.webhook_secret,
            created_at: time(r.created_at),
            updated_at: time(r.updated_at),
        })
    }
}

pub(crate) const KEY_COLS: &str = "id::text AS id, user_id::text AS user_id, prefix, hashed_key, gv_us(created_at) AS created_at, gv_us(revoked_at) AS revoked_at, gv_us(last_used_at) AS last_used_at, rotated_from::text AS rotated_from";

#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    id: String,
    user_id: String,
    prefix: String,
    hashed_key: String,
    created_at: i64,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
    rotated_from: Option<String>,
}

impl TryFrom<KeyRow> for ApiKey {
    type Error = Error;
    fn try_from(r: KeyRow) -> Result<ApiKey> {
        Ok(ApiKey {
            id: uuid(&r.id)?,
            user_id: uuid(&r.user_id)?,
            prefix: r.prefix,
            hashed_key: r.hashed_key,
            created_at: time(r.created_at),
            revoked_at: opt_time(r.revoked_at),
            last_used_at: opt_time(r.last_used_at),
            rotated_from: opt_uuid(r.rotated_from)?,
        })
    }
}

pub(crate) const SESSION_COLS: &str = "id::text AS id, user_id::text AS user_id, key_id::text AS key_id, gv_us(created_at) AS created_at, gv_us(expires_at) AS expires_at, gv_us(revoked_at) AS revoked_at";

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id: String,
    user_id: String,
    key_id: String,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<SessionRow> for SessionRecord {
    type Error = Error;
    fn try_from(r: SessionRow) -> Result<SessionRecord> {
        Ok(SessionRecord {
            id: uuid(&r.id)?,
            user_id: uuid(&r.user_id)?,
            key_id: uuid(&r.key_id)?,
            created_at: time(r.created_at),
            expires_at: time(r.expires_at),
            revoked_at: opt_time(r.revoked_at),
        })
    }
}

pub(crate) const SUBMISSION_COLS: &str = "id::text AS id, user_id::text AS user_id, content_type, source_url, upload_id::text AS upload_id, storage_key, caption, platform_hint, notify_webhook, status, gv_us(created_at) AS created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct SubmissionRow {
    id: String,
    user_id: String,
    content_type: String,
    source_url: Option<String>,
    upload_id: Option<String>,
    storage_key: Option<String>,
    caption: Option<String>,
    platform_hint: Option<String>,
    notify_webhook: Option<String>,
    status: String,
    created_at: i64,
}

impl TryFrom<SubmissionRow> for Submission {
    type Error = Error;
    fn try_from(r: SubmissionRow) -> Result<Submission> {
        Ok(Submission {
            id: uuid(&r.id)?,
            user_id: uuid(&r.user_id)?,
            content_type: parse(&r.content_type)?,
            source_url: r.source_url,
            upload_id: opt_uuid(r.upload_id)?,
            storage_key: r.storage_key,
            caption: r.caption,
            platform_hint: r.platform_hint.as_deref().map(parse).transpose()?,
            notify_webhook: r.notify_webhook,
            status: parse(&r.status)?,
            created_at: time(r.created_at),
        })
    }
}

pub(crate) const JOB_COLS: &str = "id::text AS id, submission_id::text AS submission_id, user_id::text AS user_id, status, score::float8 AS score, confidence::float8 AS confidence, errors::text AS errors, metrics::text AS metrics, moderation_flags::text AS moderation_flags, gv_us(created_at) AS created_at, gv_us(updated_at) AS updated_at, gv_us(completed_at) AS completed_at, gv_us(archived_at) AS archived_at";

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    id: String,
    submission_id: String,
    user_id: String,
    status: String,
    score: Option<f64>,
    confidence: Option<f64>,
    errors: Option<String>,
    metrics: Option<String>,
    moderation_flags: Option<String>,
    created_at: i64,
    updated_at: i64,
    completed_at: Option<i64>,
    archived_at: Option<i64>,
}

impl TryFrom<JobRow> for Job {
    type Error = Error;
    fn try_from(r: JobRow) -> Result<Job> {
        Ok(Job {
            id: uuid(&r.id)?,
            submission_id: uuid(&r.submission_id)?,
            user_id: uuid(&r.user_id)?,
            status: parse(&r.status)?,
            score: r.score,
            confidence: r.confidence,
            errors: json(r.errors)?,
            metrics: json(r.metrics)?,
            moderation_flags: json(r.moderation_flags)?,
            created_at: time(r.created_at),
            updated_at: time(r.updated_at),
            completed_at: opt_time(r.completed_at),
            archived_at: opt_time(r.archived_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SummaryRow {
    id: String,
    score: Option<f64>,
    status: String,
    created_at: i64,
}

impl TryFrom<SummaryRow> for JobSummary {
    type Error = Error;
    fn try_from(r: SummaryRow) -> Result<JobSummary> {
        Ok(JobSummary { job_id: uuid(&r.id)?, score: r.score, status: parse(&r.status)?, created_at: time(r.created_at) })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct InsightRow {
    category: String,
    message: String,
    recommendations: String,
    weight: f64,
}

impl TryFrom<InsightRow> for Insight {
    type Error = Error;
    fn try_from(r: InsightRow) -> Result<Insight> {
        Ok(Insight {
            category: parse(&r.category)?,
            message: r.message,
            recommendations: serde_json::from_str(&r.recommendations).map_err(|e| corrupt("insight", e))?,
            weight: r.weight,
        })
    }
}

pub(crate) const WEBHOOK_COLS: &str =
    "id::text AS id, user_id::text AS user_id, target_url, secret, gv_join(events) AS events, active, gv_us(created_at) AS created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct WebhookRow {
    id: String,
    user_id: String,
    target_url: String,
    secret: String,
    events: String,
    active: bool,
    created_at: i64,
}

impl TryFrom<WebhookRow> for WebhookSubscription {
    type Error = Error;
    fn try_from(r: WebhookRow) -> Result<WebhookSubscription> {
        Ok(WebhookSubscription {
            id: uuid(&r.id)?,
            user_id: uuid(&r.user_id)?,
            target_url: r.target_url,
            secret: r.secret,
            events: split_values(&r.events).map_err(|e| corrupt("webhook", e))?,
            active: r.active,
            created_at: time(r.created_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: String,
    actor: String,
    action: String,
    payload: String,
    ip_address: Option<String>,
    created_at: i64,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = Error;
    fn try_from(r: AuditRow) -> Result<AuditEntry> {
        Ok(AuditEntry {
            id: uuid(&r.id)?,
            actor: r.actor,
            action: r.action,
            payload: serde_json::from_str(&r.payload).map_err(|e| corrupt("audit", e))?,
            ip_address: r.ip_address.as_deref().map(|s| s.parse().map_err(|e| corrupt("audit ip", e))).transpose()?,
            created_at: time(r.created_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ModelRunRow {
    id: String,
    job_id: String,
    model_name: String,
    model_version: Option<String>,
    latency_ms: i64,
    token_usage: Option<String>,
    prompt_hash: Option<String>,
    created_at: i64,
}

impl TryFrom<ModelRunRow> for ModelRun {
    type Error = Error;
    fn try_from(r: ModelRunRow) -> Result<ModelRun> {
        Ok(ModelRun {
            id: uuid(&r.id)?,
            job_id: uuid(&r.job_id)?,
            model_name: r.model_name,
            model_version: r.model_version,
            latency_ms: r.latency_ms,
            token_usage: json(r.token_usage)?,
            prompt_hash: r.prompt_hash,
            created_at: time(r.created_at),
        })
    }
}

pub(crate) fn convert<R, T: TryFrom<R, Error = Error>>(rows: Vec<R>) -> Result<Vec<T>> {
    rows.into_iter().map(T::try_from).collect()
}

pub(crate) const DELIVERY_COLS: &str = "id::text AS id, job_id::text AS job_id, target_url, event, status, attempts::bigint AS attempts, last_error, gv_us(created_at) AS created_at, gv_us(updated_at) AS updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    id: String,
    job_id: String,
    target_url: String,
    event: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<DeliveryRow> for WebhookDelivery {
    type Error = Error;
    fn try_from(r: DeliveryRow) -> Result<WebhookDelivery> {
        Ok(WebhookDelivery {
            id: uuid(&r.id)?,
            job_id: uuid(&r.job_id)?,
            target_url: r.target_url,
            event: parse(&r.event)?,
            status: parse(&r.status)?,
            attempts: r.attempts as u32,
            last_error: r.last_error,
            created_at: time(r.created_at),
            updated_at: time(r.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RunRow {
    job_id: String,
    state: String,
    data: String,
    attempt: i64,
    next_run_at_us: i64,
}

impl TryFrom<RunRow> for domain::ports::PipelineRun {
    type Error = Error;
    fn try_from(r: RunRow) -> Result<domain::ports::PipelineRun> {
        Ok(domain::ports::PipelineRun {
            job_id: uuid(&r.job_id)?,
            state: r.state,
            data: serde_json::from_str(&r.data).map_err(|e| corrupt("run", e))?,
            attempt: r.attempt as u32,
            next_run_at_us: r.next_run_at_us,
        })
    }
}

pub(crate) const UPLOAD_COLS: &str = "id::text AS id, user_id::text AS user_id, media_type, declared_bytes, filename, storage_key, status, \
     received_bytes, rejection, gv_us(created_at) AS created_at, gv_us(url_expires_at) AS url_expires_at, gv_us(received_at) AS received_at, \
     sha256, content_key";

#[derive(sqlx::FromRow)]
pub(crate) struct UploadRow {
    id: String,
    user_id: String,
    media_type: String,
    declared_bytes: i64,
    filename: Option<String>,
    storage_key: String,
    status: String,
    received_bytes: Option<i64>,
    rejection: Option<String>,
    created_at: i64,
    url_expires_at: i64,
    received_at: Option<i64>,
    sha256: Option<String>,
    content_key: Option<String>,
}

impl TryFrom<UploadRow> for Upload {
    type Error = Error;
    fn try_from(r: UploadRow) -> Result<Upload> {
        let bytes = |n: i64| u64::try_from(n).map_err(|e| corrupt("upload", e));
        Ok(Upload {
            id: uuid(&r.id)?,
            user_id: uuid(&r.user_id)?,
            media_type: r.media_type,
            declared_bytes: bytes(r.declared_bytes)?,
            filename: r.filename,
            storage_key: r.storage_key,
            status: parse(&r.status)?,
            received_bytes: r.received_bytes.map(bytes).transpose()?,
            rejection: r.rejection,
            created_at: time(r.created_at),
            url_expires_at: time(r.url_expires_at),
            received_at: opt_time(r.received_at),
            sha256: r.sha256,
            content_key: r.content_key,
        })
    }
}
