//! Ports: what the domain needs from the outside world. Each has a local adapter and a
//! cloud adapter; contract tests run the same suite against every one.

use async_trait::async_trait;
use std::collections::BTreeMap;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Result;
use crate::model::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The relational store: users, keys, submissions, jobs, insights, webhooks, audit, model runs.
#[async_trait]
pub trait Store: Send + Sync {
    /// Cheap round trip proving the store answers and takes writes (a one-row upsert): a
    /// database that reads but cannot write is not healthy.
    async fn ping(&self) -> Result<()>;

    // users
    /// `Conflict` when the email is taken.
    async fn create_user(&self, user: &User) -> Result<()>;
    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>>;
    async fn user_by_email(&self, email: &str) -> Result<Option<User>>;
    /// Returns false when no such user.
    async fn set_user_active(&self, id: Uuid, active: bool, now: OffsetDateTime) -> Result<bool>;
    /// Replaces the secret that signs deliveries to the user's `notify_webhook`s; false when
    /// no such user.
    async fn set_webhook_secret(&self, id: Uuid, secret: &str, now: OffsetDateTime) -> Result<bool>;

    // api keys
    async fn insert_api_key(&self, key: &ApiKey) -> Result<()>;
    async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKey>>;
    async fn api_key(&self, id: Uuid) -> Result<Option<ApiKey>>;
    async fn api_keys_for_user(&self, user_id: Uuid) -> Result<Vec<ApiKey>>;
    /// Revokes a live key of this user; false when there is none.
    async fn revoke_api_key(&self, user_id: Uuid, key_id: Uuid, now: OffsetDateTime) -> Result<bool>;
    /// Atomically revokes `old_id` and inserts `new_key`; false (and nothing written) when
    /// `old_id` is not a live key of the user.
    async fn rotate_api_key(&self, user_id: Uuid, old_id: Uuid, new_key: &ApiKey, now: OffsetDateTime) -> Result<bool>;
    async fn touch_api_key(&self, key_id: Uuid, now: OffsetDateTime) -> Result<()>;

    // dashboard sessions
    async fn insert_session(&self, session: &SessionRecord) -> Result<()>;
    async fn session(&self, id: Uuid) -> Result<Option<SessionRecord>>;
    /// Ends a live session of this user; false when there is none.
    async fn revoke_session(&self, user_id: Uuid, id: Uuid, now: OffsetDateTime) -> Result<bool>;

    // submissions and jobs
    /// Writes both rows in one transaction: both exist afterwards, or neither.
    async fn create_submission_and_job(&self, submission: &Submission, job: &Job) -> Result<()>;
    /// As `create_submission_and_job`, with `charge` in the same transaction: the period's
    /// usage rises by its units (`QuotaExceeded` past its cap), prepaid credits fall
    /// (`InsufficientCredits` when short), and the ledger gets the charge entry.
    async fn admit_submission_and_job(&self, s: &Submission, j: &Job, charge: &crate::usage::Charge) -> Result<crate::usage::Admitted>;
    /// Admits a charge that has no job (a comparison): the same ledger entry, total and
    /// credits as a submission's, refused the same way.
    async fn admit_charge(&self, charge: &crate::usage::Charge) -> Result<crate::usage::Admitted>;
    /// An account's operator-set usage terms (the defaults when none were set).
    async fn usage_account(&self, user_id: Uuid) -> Result<crate::usage::UsageAccount>;
    /// Applies an operator's change to the account's terms as they are at that moment (one
    /// transaction, the row locked): the terms (before, after).
    async fn change_usage_account(
        &self,
        user_id: Uuid,
        change: &crate::usage::AccountChange,
        now: OffsetDateTime,
    ) -> Result<(crate::usage::UsageAccount, crate::usage::UsageAccount)>;
    /// Sets every field of the account's terms.
    async fn set_usage_account(&self, user_id: Uuid, account: &crate::usage::UsageAccount, now: OffsetDateTime) -> Result<()> {
        self.change_usage_account(user_id, &crate::usage::AccountChange::set_all(account), now).await.map(|_| ())
    }
    /// Credits back everything charged for the job (a reversal entry; usage and credits
    /// returned); false when nothing was charged or it was reversed already.
    async fn reverse_charge(&self, job_id: Uuid, reason: &str, now: OffsetDateTime) -> Result<bool>;
    /// Lowers a reserved charge to what the job turned out to cost (`units`): an adjustment
    /// entry, usage and credits returned; once per job. False when there was nothing to lower.
    async fn settle_charge(&self, job_id: Uuid, units: u64, now: OffsetDateTime) -> Result<bool>;
    /// The account's units used in `period` (its running total).
    async fn period_usage(&self, user_id: Uuid, period: &str) -> Result<u64>;
    /// The ledger summed per day (days since 1970-01-01 UTC) and kind, for days in
    /// `from_day..=to_day`, ascending.
    async fn usage_by_day(&self, user_id: Uuid, from_day: i64, to_day: i64) -> Result<Vec<crate::usage::UsageDay>>;
    /// The accounts that used the most in `period`, heaviest first: (user, units used).
    async fn heaviest_accounts(&self, period: &str, limit: u32) -> Result<Vec<(Uuid, u64)>>;
    async fn set_user_plan(&self, id: Uuid, plan: Plan, now: OffsetDateTime) -> Result<bool>;
    /// Checks every account's total in `period` against the ledger and sets a drifted one to
    /// the ledger's sum (only if it did not change meanwhile): (accounts checked, drifts).
    async fn reconcile_usage(&self, period: &str) -> Result<(u64, Vec<crate::usage::Drift>)>;
    /// Claims the `threshold` notice of (user, period) once, with a pending delivery to each of
    /// `targets`; false when it was claimed before.
    async fn claim_usage_notice(
        &self,
        user_id: Uuid,
        period: &str,
        threshold: u32,
        targets: &[String],
        now: OffsetDateTime,
    ) -> Result<bool>;
    /// Notice deliveries that are pending and due at `now`, at most `limit`.
    async fn due_usage_notices(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<crate::usage::UsageNotice>>;
    /// Records an attempt at a notice delivery (pending ones are tried again after a backoff).
    async fn record_usage_notice(
        &self,
        notice: &crate::usage::UsageNotice,
        status: DeliveryStatus,
        error: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<()>;
    /// The billing outbox's items due at `now` (see domain::billing), at most `limit`: ended
    /// jobs' charges not yet sent, and sent charges credited back since.
    async fn meter_outbox(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<crate::billing::MeterItem>>;
    /// Records how Stripe answered an item (sent, retry later, or refused for good).
    async fn record_meter_export(
        &self,
        item: &crate::billing::MeterItem,
        outcome: &crate::billing::MeterOutcome,
        now: OffsetDateTime,
    ) -> Result<()>;
    /// Appends a step to the job's live stream, numbered after the last; a step other than
    /// `progress` is kept once per job (a second one is dropped). The number, or None if dropped.
    async fn append_job_event(&self, job_id: Uuid, kind: JobEventKind, data: &Value, at: OffsetDateTime) -> Result<Option<u32>>;
    /// The job's stream after event `after`, oldest first, at most `limit`.
    async fn job_events(&self, job_id: Uuid, after: u32, limit: u32) -> Result<Vec<JobEvent>>;

    // outcomes
    /// Appends an observation of a job's post; false (nothing written) when the job already
    /// has `max` of them.
    async fn add_outcome(&self, outcome: &crate::outcomes::Outcome, max: u32) -> Result<bool>;
    /// A job's observations, newest first (by when they were observed).
    async fn outcomes(&self, job_id: Uuid, limit: u32) -> Result<Vec<crate::outcomes::Outcome>>;

    // Connected accounts (domain::accounts).
    /// Keeps an authorization under way; false (nothing written) when the user already has
    /// `max` unexpired ones. Expired ones are dropped on the way.
    async fn create_pending_grant(&self, grant: &crate::accounts::PendingGrant, max: u32, now: OffsetDateTime) -> Result<bool>;
    /// Removes and returns the unexpired authorization with this state hash (each is used once).
    async fn take_pending_grant(&self, state_hash: &str, now: OffsetDateTime) -> Result<Option<crate::accounts::PendingGrant>>;
    async fn account_by_external(
        &self,
        user_id: Uuid,
        platform: Platform,
        external_id: &str,
    ) -> Result<Option<crate::accounts::ConnectedAccount>>;
    async fn account(&self, id: Uuid) -> Result<Option<crate::accounts::ConnectedAccount>>;
    /// Inserts the account, or replaces the row with its id; false (nothing written) when a
    /// new account would pass the user's `max`.
    async fn save_account(&self, account: &crate::accounts::ConnectedAccount, max: u32) -> Result<bool>;
    async fn accounts_for_user(&self, user_id: Uuid) -> Result<Vec<crate::accounts::ConnectedAccount>>;
    /// Writes the account's tokens, scopes and `updated_at`.
    async fn update_account_tokens(&self, account: &crate::accounts::ConnectedAccount) -> Result<()>;
    async fn set_account_status(
        &self,
        id: Uuid,
        status: crate::accounts::AccountStatus,
        error: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<()>;
    /// Deletes the user's account (its tokens with it); false when there is none.
    async fn delete_account(&self, user_id: Uuid, id: Uuid) -> Result<bool>;
    /// Accounts whose token refreshes with itself and expires before `before`.
    async fn accounts_to_renew(&self, before: OffsetDateTime, limit: u32) -> Result<Vec<crate::accounts::ConnectedAccount>>;

    // Posts followed for outcomes (domain::collect).
    /// false (nothing written) when the job already follows this post or `max` posts.
    async fn create_tracked_post(&self, post: &crate::collect::TrackedPost, max: u32) -> Result<bool>;
    /// Claims up to `limit` posts whose check is due at `now`, holding them until `lease_until`.
    async fn claim_due_posts(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<crate::collect::TrackedPost>>;
    async fn update_tracked_post(
        &self,
        id: Uuid,
        next_check_at: Option<OffsetDateTime>,
        checks_done: u32,
        last_error: Option<&str>,
    ) -> Result<()>;
    async fn tracked_posts_for_job(&self, job_id: Uuid) -> Result<Vec<crate::collect::TrackedPost>>;
    /// The user's complete, unarchived jobs (other than `exclude`) with their latest
    /// observation that has views, on `platform` (any when None); newest first, at most `limit`.
    async fn past_results(
        &self,
        user_id: Uuid,
        platform: Option<Platform>,
        exclude: Uuid,
        limit: u32,
    ) -> Result<Vec<crate::baseline::PastResult>>;
    // The model registry (domain::registry).
    /// Inserts a version numbered after its name's last; the row as stored.
    async fn insert_model_version(&self, version: &crate::registry::ModelVersion) -> Result<crate::registry::ModelVersion>;
    /// Newest first.
    async fn model_versions(&self, limit: u32) -> Result<Vec<crate::registry::ModelVersion>>;
    async fn model_version(&self, id: Uuid) -> Result<Option<crate::registry::ModelVersion>>;
    async fn serving_model_version(&self, name: &str) -> Result<Option<crate::registry::ModelVersion>>;
    /// The most recent version that served before the serving one (retired since).
    async fn previous_serving_version(&self, name: &str) -> Result<Option<crate::registry::ModelVersion>>;
    /// Applies the decision if the version is in one of its `from` states; a version put in
    /// service retires the one serving, in the same transaction. False when it was not.
    async fn decide_model_version(&self, decision: &crate::registry::Decision) -> Result<bool>;
    /// Every complete, unarchived job with a caption and an observation with views (its
    /// latest), newest first, at most `limit`: retraining's outcomes.
    async fn training_observations(&self, limit: u32) -> Result<Vec<crate::outcomes::TrainingObservation>>;
    async fn job(&self, job_id: Uuid) -> Result<Option<Job>>;
    async fn submission(&self, submission_id: Uuid) -> Result<Option<Submission>>;
    async fn insights(&self, job_id: Uuid) -> Result<Vec<Insight>>;
    /// Moves a job (and its submission) to a new status; false when the job is not in `from`.
    async fn transition_job(&self, job_id: Uuid, from: &[JobStatus], to: JobStatus, now: OffsetDateTime) -> Result<bool>;
    /// Writes score, confidence, metrics, insights and the model run, and marks the job
    /// complete, in one transaction; idempotent (a second call for a complete job changes
    /// nothing and returns false).
    async fn complete_job(&self, job_id: Uuid, result: &JobResult, run: Option<&ModelRun>, now: OffsetDateTime) -> Result<bool>;
    /// Mean seconds from submission to completion over the last `sample` completed jobs.
    async fn recent_completion_secs(&self, sample: u32) -> Result<Option<f64>>;
    /// Marks the job failed with the reasons given; false when it already ended.
    async fn fail_job(
        &self,
        job_id: Uuid,
        errors: &serde_json::Value,
        moderation_flags: Option<&serde_json::Value>,
        now: OffsetDateTime,
    ) -> Result<bool>;
    /// Soft delete: status archived, archived_at set; false when not the user's job or gone.
    async fn archive_job(&self, user_id: Uuid, job_id: Uuid, now: OffsetDateTime) -> Result<bool>;
    /// Newest first, strictly after `cursor`; archived jobs excluded.
    async fn history(&self, user_id: Uuid, status: Option<JobStatus>, cursor: Option<Cursor>, limit: u32) -> Result<Vec<JobSummary>>;
    async fn admin_jobs(&self, filter: &AdminJobFilter) -> Result<Vec<Job>>;
    /// Counts per status over the same status/time filter (ignores limit and cursor).
    async fn job_totals(&self, filter: &AdminJobFilter) -> Result<BTreeMap<JobStatus, u64>>;
    /// Oldest first: queued jobs waiting for the pipeline (served by a partial index).
    async fn queued_jobs(&self, limit: u32) -> Result<Vec<Uuid>>;

    // uploads
    async fn create_upload(&self, upload: &Upload) -> Result<()>;
    async fn upload(&self, id: Uuid) -> Result<Option<Upload>>;
    /// Ends a pending upload as ready or rejected, with what arrived; false (and nothing
    /// written) when it is not pending, so a redelivered event changes nothing.
    async fn finish_upload(&self, id: Uuid, received: &ReceivedUpload, now: OffsetDateTime) -> Result<bool>;

    // webhooks
    /// `Conflict` when the user already subscribed this URL, or already has `max_per_user`
    /// subscriptions; the count and the insert are atomic under concurrent callers.
    async fn create_webhook(&self, sub: &WebhookSubscription, max_per_user: usize) -> Result<()>;
    async fn webhooks_for_user(&self, user_id: Uuid) -> Result<Vec<WebhookSubscription>>;
    async fn webhook(&self, id: Uuid) -> Result<Option<WebhookSubscription>>;
    async fn delete_webhook(&self, user_id: Uuid, id: Uuid) -> Result<bool>;

    // webhook deliveries
    /// The delivery of `event` for `job_id` to `target_url`, created pending if new.
    async fn webhook_delivery(&self, job_id: Uuid, target_url: &str, event: WebhookEvent) -> Result<WebhookDelivery>;
    /// Counts one attempt and sets the status and last error.
    async fn record_delivery_attempt(&self, id: Uuid, status: DeliveryStatus, error: Option<&str>, now: OffsetDateTime) -> Result<()>;
    /// Deliveries that were given up on, newest first (the dead-letter list admins see).
    async fn dead_deliveries(&self, limit: u32) -> Result<Vec<WebhookDelivery>>;

    // append-only logs
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()>;
    async fn audit_for_actor(&self, actor: &str, limit: u32) -> Result<Vec<AuditEntry>>;
    async fn append_model_run(&self, run: &ModelRun) -> Result<()>;
    async fn model_runs(&self, job_id: Uuid) -> Result<Vec<ModelRun>>;
}

/// What intake found when an upload's object arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedUpload {
    pub status: UploadStatus,
    pub received_bytes: u64,
    pub rejection: Option<String>,
    /// Checksum and key of the immutable copy (a ready upload has both).
    pub sha256: Option<String>,
    pub content_key: Option<String>,
}

/// What an idempotency key remembers: the request it came with and the job it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub user_id: Uuid,
    pub key: String,
    pub request_hash: String,
    pub job_id: Uuid,
    pub expires_at_us: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The key was free and is now ours.
    Reserved,
    /// The key was already taken by this record.
    Existing(IdempotencyRecord),
}

/// Hot counters: rate limits, usage and idempotency keys (SQLite locally, DynamoDB on AWS).
#[async_trait]
pub trait Counters: Send + Sync {
    /// Adds one to the counter `key` and returns the new value. The counter lives until
    /// `expires_at_us`; a counter past that starts again at one.
    async fn increment(&self, key: &str, expires_at_us: i64, now_us: i64) -> Result<u64>;
    /// The counter's value now: 0 when it is missing or expired.
    async fn get(&self, key: &str, now_us: i64) -> Result<u64>;
    /// Takes the key if free (or expired); otherwise returns who holds it.
    async fn reserve_idempotency(&self, record: &IdempotencyRecord, now_us: i64) -> Result<Reservation>;
    /// Frees a key whose request failed (or was abandoned), so the client can retry with it;
    /// only while it still holds `job_id`, so a caller never frees another's reservation.
    async fn release_idempotency(&self, user_id: Uuid, key: &str, job_id: Uuid) -> Result<()>;
    /// Deletes what has expired; returns how many. (DynamoDB's TTL does this by itself.)
    async fn purge_expired(&self, now_us: i64) -> Result<u64>;
}

/// An account's running total for one period, as a `UsageTotals` keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodTotal {
    pub user_id: Uuid,
    pub used: i64,
    /// When it last changed (microseconds since the epoch): reconciliation leaves a total that
    /// changed within `usage::QUIET` alone, since an admission may be between its two writes.
    pub changed_at_us: i64,
}

/// How a `UsageTotals::take` went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Added; the account's total is now `used`.
    Taken { used: u64 },
    /// The cap would be passed: nothing was added.
    Refused { used: u64 },
    /// This job was charged before: nothing was added again.
    Already { used: u64 },
}

/// The per-period usage totals admission is checked against, where they live outside the
/// relational store (DynamoDB on AWS; the embedded default keeps them in the store, in the
/// admission's own transaction). The ledger stays the truth; every change names the job and
/// ledger entry it is for, so a retried change is applied once.
#[async_trait]
pub trait UsageTotals: Send + Sync {
    /// Adds the charge's units to the account's total for its period, unless that would pass
    /// `cap` (one conditional write: concurrent takes never pass it together).
    async fn take(&self, charge: &crate::usage::Charge, cap: Option<u64>) -> Result<Take>;
    /// Adds `units` (negative: given back) for the job's ledger `entry`, once per entry.
    async fn adjust(&self, user_id: Uuid, period: &str, job_id: Uuid, entry: &str, units: i64, at: OffsetDateTime) -> Result<()>;
    /// The account's total in `period` (0 when it has none).
    async fn used(&self, user_id: Uuid, period: &str) -> Result<u64>;
    /// Every account's total in `period`.
    async fn period_totals(&self, period: &str) -> Result<Vec<PeriodTotal>>;
    /// Sets a total to `value`, only if it is still `seen` (None: only if it does not exist);
    /// false when it changed meanwhile.
    async fn repair(&self, user_id: Uuid, period: &str, seen: Option<&PeriodTotal>, value: i64, at: OffsetDateTime) -> Result<bool>;
}

/// A request a client makes straight to the blob store, signed so the store accepts it
/// without our credentials: the method, URL and headers must be sent exactly as given.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedRequest {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub expires_at: OffsetDateTime,
}

/// Signs upload and download URLs for blobs (S3 presigning on AWS; HMAC-signed URLs served
/// by the local server on the embedded default).
#[async_trait]
pub trait UrlSigner: Send + Sync {
    /// A PUT of exactly `bytes` bytes of `media_type` to `key`.
    async fn sign_put(&self, key: &str, media_type: &str, bytes: u64, expires_in: std::time::Duration) -> Result<SignedRequest>;
    async fn sign_get(&self, key: &str, expires_in: std::time::Duration) -> Result<SignedRequest>;
}

/// Hands a freshly queued job to the analysis pipeline.
#[async_trait]
pub trait Pipeline: Send + Sync {
    async fn enqueue(&self, job_id: Uuid) -> Result<()>;
    /// Expected seconds from submission to result, from what the pipeline has measured.
    async fn estimated_completion_secs(&self) -> u32;
}

/// Expected seconds from submission to result: the mean submit-to-complete time of the last
/// 100 completed jobs, rounded up, refreshed at most every 5 s so the submit path does not
/// query it each time. Shared by every `Pipeline` adapter.
pub struct CompletionEstimate {
    store: std::sync::Arc<dyn Store>,
    cached: std::sync::Mutex<Option<(std::time::Instant, u32)>>,
}

impl CompletionEstimate {
    /// Before anything has been measured.
    pub const DEFAULT_SECS: u32 = 2;
    const TTL: std::time::Duration = std::time::Duration::from_secs(5);
    const SAMPLE: u32 = 100;

    pub fn new(store: std::sync::Arc<dyn Store>) -> Self {
        CompletionEstimate { store, cached: std::sync::Mutex::new(None) }
    }

    pub async fn secs(&self) -> u32 {
        if let Some((at, secs)) = *self.cached.lock().unwrap_or_else(|p| p.into_inner()) {
            if at.elapsed() < Self::TTL {
                return secs;
            }
        }
        let secs = match self.store.recent_completion_secs(Self::SAMPLE).await {
            Ok(Some(mean)) => (mean.ceil() as u32).max(1),
            Ok(None) => Self::DEFAULT_SECS,
            Err(e) => {
                tracing::warn!(error = %e, "estimating completion time failed");
                Self::DEFAULT_SECS
            }
        };
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some((std::time::Instant::now(), secs));
        secs
    }
}

/// One pipeline execution as the local runner keeps it: the state machine's current state and
/// state document, durable so a restarted server resumes where it stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineRun {
    pub job_id: Uuid,
    pub state: String,
    pub data: serde_json::Value,
    /// Retries already spent on the current state.
    pub attempt: u32,
    pub next_run_at_us: i64,
}

/// How many runs one user may have under way at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunShares {
    /// While other users have runs due or under way.
    pub per_user: u32,
    /// While no one else does (the runner keeps the rest of its slots free for whoever comes).
    pub alone: u32,
}

/// The local runner's durable queue of executions (SQLite on the embedded default).
#[async_trait]
pub trait RunQueue: Send + Sync {
    /// Starts an execution at `state` unless one exists for the job; true when started.
    async fn start_run(&self, run: &PipelineRun, now_us: i64) -> Result<bool>;
    /// Claims up to `limit` due, unfinished runs, leasing them until `lease_until_us` so a
    /// crashed runner's work becomes due again when the lease ends. Users take turns, and
    /// while more than one user has runs due or under way none has more than
    /// `shares.per_user` leased at once; a user alone may have `shares.alone`. One user's
    /// burst never holds up another user's job.
    async fn claim_runs(&self, now_us: i64, lease_until_us: i64, limit: u32, shares: RunShares) -> Result<Vec<PipelineRun>>;
    /// Saves progress (state, data, attempt, when due) and sets the lease: keep it to carry
    /// on at once, 0 to hand the run back to the queue.
    async fn save_run(&self, run: &PipelineRun, lease_until_us: i64, now_us: i64) -> Result<()>;
    /// Starts a run at `state` for every queued job that has none (oldest first, up to
    /// `limit`); returns how many were started.
    async fn start_runs_for_queued(&self, state: &str, now_us: i64, limit: u32) -> Result<u64>;
    /// Frees every lease (a restarted single runner owns nothing yet).
    async fn release_leases(&self) -> Result<()>;
    async fn finish_run(&self, job_id: Uuid, outcome: &str, now_us: i64) -> Result<()>;
    /// When the next unfinished run is due, if any.
    async fn next_due_us(&self) -> Result<Option<i64>>;
}

// ------------------------------------------------------------------ ports the pipeline stages use

/// Measures a video (or audio) file: the `metrics.media` document. `Unavailable` where this
/// deployment has no media tools; `Validation` for a file that is not usable media.
#[async_trait]
pub trait MediaAnalyzer: Send + Sync {
    async fn analyze(&self, file: &std::path::Path) -> Result<Value>;
    /// Still frames of `file` at `times_s` as JPEG files in `dir` (thumbnails for the
    /// dashboard), in order; a time past the end gives no frame.
    async fn frames(&self, _file: &std::path::Path, _times_s: &[f64], _dir: &std::path::Path) -> Result<Vec<(f64, std::path::PathBuf)>> {
        Err(crate::Error::Unavailable("this analyzer takes no frames".into()))
    }
}

/// A file downloaded from a `source_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedMedia {
    pub bytes: u64,
    pub sha256: String,
    /// Decided by the file's first bytes (`domain::media::sniff`).
    pub media_type: String,
}

/// Downloads a video from a URL under the SSRF policy (`domain::net`), into a local file.
/// `Validation` when what the URL gives is not a usable video (a web page, a 404, too big, a
/// private address), with a reason for the user; `Unavailable` when trying later may help.
#[async_trait]
pub trait MediaFetcher: Send + Sync {
    async fn fetch(&self, url: &str, dest: &std::path::Path) -> Result<FetchedMedia>;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModerationVerdict {
    pub flagged: bool,
    /// Category → score 0–1.
    pub categories: BTreeMap<String, f64>,
    /// Human-readable reasons for a flag.
    pub reasons: Vec<String>,
    pub model: String,
}

/// A still of a video, for a moderator that looks at pictures.
#[derive(Debug, Clone, PartialEq)]
pub struct Still {
    /// When it is, seconds from the start.
    pub t_s: f64,
    pub jpeg: Vec<u8>,
}

/// Checks content before any inference. `Err(Unavailable)` when the service is down: the
/// pipeline then fails closed.
#[async_trait]
pub trait Moderator: Send + Sync {
    async fn moderate(&self, text: &str) -> crate::Result<ModerationVerdict>;

    /// Whether `moderate_video` looks at the stills (else the pipeline does not read them).
    fn sees_pictures(&self) -> bool {
        false
    }

    /// What a video says and shows: its text (speech, on-screen text) and stills. A
    /// moderator that reads text only checks the text.
    async fn moderate_video(&self, text: &str, _stills: &[Still]) -> crate::Result<ModerationVerdict> {
        self.moderate(text).await
    }
}

/// A blob's size and SHA-256 (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobDigest {
    pub bytes: u64,
    pub sha256: String,
}

/// Blobs: uploads, features, transcripts (S3 on AWS, files locally).
#[async_trait]
pub trait BlobStore: Send + Sync {
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> crate::Result<()>;
    async fn get(&self, key: &str) -> crate::Result<Option<Vec<u8>>>;
    /// Copies `from` to `to` inside the store (S3: server-side); false when `from` is missing.
    async fn copy(&self, from: &str, to: &str) -> crate::Result<bool>;
    /// Removes the blob; a missing one is not an error.
    async fn delete(&self, key: &str) -> crate::Result<()>;
    /// Size and checksum, read in chunks so a large blob is never whole in memory.
    async fn digest(&self, key: &str) -> crate::Result<Option<BlobDigest>>;
    /// Whether the blob is there. The default reads it whole through `digest`: stores that
    /// can ask cheaply (a file's metadata, S3's HEAD) do so instead.
    async fn exists(&self, key: &str) -> crate::Result<bool> {
        Ok(self.digest(key).await?.is_some())
    }
    /// Copies the blob to a local file (for tools that read files, like ffmpeg); false when
    /// it is missing. The default reads it whole: stores that hold large blobs stream instead.
    async fn fetch_to(&self, key: &str, dest: &std::path::Path) -> crate::Result<bool> {
        let Some(bytes) = self.get(key).await? else { return Ok(false) };
        tokio::fs::write(dest, bytes).await.map_err(|e| crate::Error::Unavailable(format!("writing {}: {e}", dest.display())))?;
        Ok(true)
    }
    /// Stores a local file under `key`. The default reads it whole: stores that take large
    /// files stream it instead.
    async fn put_file(&self, key: &str, file: &std::path::Path, content_type: &str) -> crate::Result<()> {
        let bytes = tokio::fs::read(file).await.map_err(|e| crate::Error::Unavailable(format!("reading {}: {e}", file.display())))?;
        self.put(key, bytes, content_type).await
    }
    /// Writes exactly `bytes` bytes read from `body` to `key`. Nothing is stored unless all of
    /// them arrived (a short or long body is a validation error); readers never see part of it.
    /// The default buffers (bounded by `bytes`): right for stores that take large uploads
    /// directly from clients (S3's presigned PUT) and so never stream through here.
    async fn put_stream(
        &self,
        key: &str,
        body: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
        bytes: u64,
        content_type: &str,
    ) -> crate::Result<BlobDigest> {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::new();
        let read = body
            .take(bytes.saturating_add(1))
            .read_to_end(&mut buf)
            .await
            .map_err(|e| crate::Error::validation("body", format!("the body could not be read: {e}")))?;
        check_length(read as u64, bytes)?;
        let digest = BlobDigest { bytes: read as u64, sha256: crate::auth::sha256_hex(&buf) };
        self.put(key, buf, content_type).await?;
        Ok(digest)
    }
}

/// A streamed body must be exactly the declared size.
pub fn check_length(arrived: u64, declared: u64) -> crate::Result<()> {
    match arrived.cmp(&declared) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Greater => {
            Err(crate::Error::validation("body", format!("the body is longer than the {declared} bytes declared")))
        }
        std::cmp::Ordering::Less => Err(crate::Error::validation("body", format!("{arrived} bytes arrived, {declared} were declared"))),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreRequest {
    pub text: String,
    pub platform: Option<Platform>,
    pub content_type: ContentType,
    /// The scorer's own features of `text`, as extraction stored them (`Scorer::features`).
    pub features: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreOutput {
    pub score: f64,
    pub confidence: f64,
    pub insights: Vec<Insight>,
    /// Sub-scores, drivers and model metadata; shown with `expand=metrics`.
    pub metrics: Value,
    pub model_name: String,
    /// The registered version of the on-device model that scored (see `ModelRun`).
    pub model_version: Option<String>,
    pub token_usage: Option<Value>,
    pub prompt_hash: Option<String>,
}

#[async_trait]
pub trait Scorer: Send + Sync {
    /// What the scorer reads in a text: computed once, at extraction, stored in the features
    /// document, and handed back to `score` by inference.
    fn features(&self, text: &str, platform: Option<Platform>) -> Value;
    async fn score(&self, request: &ScoreRequest) -> crate::Result<ScoreOutput>;
}

#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    Delivered {
        status: u16,
    },
    /// The receiver failed; `retryable` when a later attempt may succeed (5xx, 429, timeouts).
    Failed {
        retryable: bool,
        reason: String,
    },
    /// The target is not allowed (SSRF rules); never retried.
    Refused {
        reason: String,
    },
}

impl DeliveryOutcome {
    /// What an attempt (the `attempt`-th, counting from 1) makes of a delivery: delivered,
    /// dead (refused, not retryable, or the last of `max_attempts`), or pending a retry; with
    /// the error to record.
    pub fn next_status(&self, attempt: u32, max_attempts: u32) -> (DeliveryStatus, Option<String>) {
        match self {
            DeliveryOutcome::Delivered { .. } => (DeliveryStatus::Delivered, None),
            DeliveryOutcome::Refused { reason } => (DeliveryStatus::Dead, Some(format!("refused: {reason}"))),
            DeliveryOutcome::Failed { retryable: false, reason } => (DeliveryStatus::Dead, Some(reason.clone())),
            DeliveryOutcome::Failed { reason, .. } if attempt >= max_attempts => {
                (DeliveryStatus::Dead, Some(format!("gave up after {attempt} attempts: {reason}")))
            }
            DeliveryOutcome::Failed { reason, .. } => (DeliveryStatus::Pending, Some(reason.clone())),
        }
    }
}

/// The headers of a signed webhook delivery: the JSON body's type, who signs it
/// (`X-GVN-Webhook-Id`), the event, the delivery id every attempt repeats, and the signature
/// of `body` with `secret` at the current time.
pub fn signed_delivery_headers(
    signing_id: &str,
    event: WebhookEvent,
    delivery_id: Uuid,
    secret: &str,
    body: &[u8],
) -> Vec<(String, String)> {
    vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("x-gvn-webhook-id".to_string(), signing_id.to_string()),
        ("x-gvn-event".to_string(), event.as_str().to_string()),
        ("x-gvn-delivery".to_string(), delivery_id.to_string()),
        ("x-gvn-signature".to_string(), crate::auth::sign_webhook(secret, OffsetDateTime::now_utc().unix_timestamp(), body)),
    ]
}

/// Sends one signed webhook POST.
#[async_trait]
pub trait WebhookSender: Send + Sync {
    async fn post(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> DeliveryOutcome;
}

/// One variant's place in a comparison (as the API answers it, too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RankedVariant {
    /// 1 is the strongest.
    pub rank: u32,
    /// Its position in the request (0-based).
    pub index: u32,
    pub text: String,
    /// The variant's score 0–100 (as an analysis would give it).
    pub score: f64,
    /// Calibrated probability that it beats the variant ranked just below (None for the last).
    pub p_beats_next: Option<f64>,
    /// Why it leads the variant ranked just below it (empty for the last).
    pub reasons: Vec<String>,
}

/// Variants ranked by the scorer, with calibrated pairwise probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranking {
    pub ranking: Vec<RankedVariant>,
    /// `pairwise[i][j]`: calibrated probability that variant i (request order) beats variant j.
    pub pairwise: Vec<Vec<f64>>,
    /// Probability that the top variant beats the runner-up.
    pub confidence: f64,
    /// The model that ranked them.
    pub model: String,
}

/// Ranks variants of one piece of content. Pure computation (milliseconds), so the API
/// answers synchronously.
pub trait Ranker: Send + Sync {
    fn rank(&self, variants: &[String], platform: Option<Platform>) -> Ranking;
}
