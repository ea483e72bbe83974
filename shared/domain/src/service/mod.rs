//! Use cases. Every edge (HTTP handler, CLI, stage) calls these and nothing below them.
//! The App and what every use case shares are here; the use cases themselves are split by
//! concern: credentials (users, tokens, keys), analysis (submissions, jobs, history), admin,
//! webhooks, and uploads (domain::uploads).

mod admin;
mod analysis;
mod compare;
mod credentials;
pub mod usage;
mod webhooks;

pub use analysis::validate_analyze;
pub use compare::{COMPARE_MAX_VARIANTS, COMPARE_MIN_VARIANTS, CompareInput, Compared, validate_compare};
pub use credentials::normalize_email;
pub use webhooks::{CompletionNotice, notify_signing_id};

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{self, AuthConfig};
use crate::error::{Error, FieldError, Result};
use crate::guard::{FailureThrottle, HashPool, Sliding};
use crate::model::*;
use crate::ports::{Counters, IdempotencyRecord, Pipeline, Reservation, Store, UrlSigner};

pub const CAPTION_MAX_CHARS: usize = 10_000;
pub const IDEMPOTENCY_KEY_MAX: usize = 255;
pub const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;
pub const HISTORY_DEFAULT_LIMIT: u32 = 20;
pub const HISTORY_MAX_LIMIT: u32 = 100;
pub const ADMIN_MAX_LIMIT: u32 = 500;
pub const WEBHOOKS_PER_USER_MAX: usize = 20;
/// The most events one job's live stream is read with (a stream holds about ten).
pub const JOB_EVENTS_MAX: u32 = 1_000;
const KEY_TOUCH_INTERVAL_SECS: i64 = 60;
const VERIFIED_KEY_CACHE_SECS: i64 = 300;
const VERIFIED_KEY_CACHE_MAX: usize = 10_000;
const LIVE_KEY_CACHE_SECS: i64 = 10;

/// Submissions allowed per minute, by plan.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    pub free_per_minute: u64,
    pub pro_per_minute: u64,
    pub enterprise_per_minute: u64,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits { free_per_minute: 60, pro_per_minute: 600, enterprise_per_minute: 6_000 }
    }
}

impl RateLimits {
    pub fn per_minute(&self, plan: Plan) -> u64 {
        match plan {
            Plan::Free => self.free_per_minute,
            Plan::Pro => self.pro_per_minute,
            Plan::Enterprise => self.enterprise_per_minute,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub auth: AuthConfig,
    pub rate_limits: RateLimits,
    /// What each plan includes per period, and what a submission costs.
    pub usage: crate::usage::UsageTerms,
    /// Local development only: webhook targets may be http:// on loopback.
    pub allow_loopback_webhooks: bool,
    /// Local development only: a video's `source_url` may be http:// on loopback.
    pub allow_loopback_media: bool,
    /// How often a quiet live stream sends a heartbeat comment.
    pub stream_heartbeat: std::time::Duration,
    /// How long one live stream stays open (the client then resumes with Last-Event-ID); under
    /// the function's timeout on AWS.
    pub stream_max: std::time::Duration,
    /// Where live streams are served when not beside the API (AWS: the streaming function's
    /// URL); None: the same origin.
    pub stream_base_url: Option<String>,
    /// Live streams one user, and one credential (API key or session), may hold open at once.
    pub streams_per_user: u32,
    pub streams_per_key: u32,
    /// The dashboard's session cookie is marked Secure (https only).
    pub secure_cookies: bool,
    /// Where the dashboard is served (`scheme://host[:port]` each), besides the API's own
    /// origin (behind CloudFront the API sees another Host): a browser's sign-in must come
    /// from one of these or from the API's own origin.
    pub dashboard_origins: Vec<String>,
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthMethod {
    /// A bearer token; `key_id` names the API key it was exchanged for (none for client
    /// credentials, and for the system's own work).
    Token {
        key_id: Option<Uuid>,
    },
    ApiKey {
        key_id: Uuid,
    },
    /// The dashboard's cookie session, opened with an API key.
    Session {
        session_id: Uuid,
        key_id: Uuid,
        csrf: String,
    },
    /// A stream token, minted with one of the others (whose key and session it names).
    Stream {
        key_id: Option<Uuid>,
        session_id: Option<Uuid>,
    },
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub method: AuthMethod,
}

impl Principal {
    /// The API key behind the credential, if any: revoking it ends the credential.
    pub fn key_id(&self) -> Option<Uuid> {
        match &self.method {
            AuthMethod::Token { key_id } | AuthMethod::Stream { key_id, .. } => *key_id,
            AuthMethod::ApiKey { key_id } | AuthMethod::Session { key_id, .. } => Some(*key_id),
        }
    }

    /// The dashboard session behind the credential, if any: ending it ends the credential.
    pub fn session_id(&self) -> Option<Uuid> {
        match &self.method {
            AuthMethod::Session { session_id, .. } => Some(*session_id),
            AuthMethod::Stream { session_id, .. } => *session_id,
            AuthMethod::Token { .. } | AuthMethod::ApiKey { .. } => None,
        }
    }

    pub(crate) fn actor(&self) -> String {
        self.user.id.to_string()
    }

    pub(crate) fn require_admin(&self) -> Result<()> {
        if self.user.is_admin() { Ok(()) } else { Err(Error::Forbidden("this route needs the admin role".into())) }
    }

    /// Users see only their own things; admins see everything. Anything else is "not found",
    /// so ids of other users' things cannot be probed.
    pub(crate) fn may_see(&self, owner: Uuid) -> bool {
        self.user.id == owner || self.user.is_admin()
    }
}

/// Where a request came from, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<IpAddr>,
}

pub enum Credentials {
    ClientSecret { client_id: String, client_secret: String },
    ApiKey(String),
}

/// A dashboard session: the token goes in an HttpOnly cookie, the CSRF token to the page.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub csrf_token: String,
    pub expires_at: OffsetDateTime,
    pub user: User,
}

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: u64,
}

/// What a client asks to have analysed; `validate_analyze` checks it. (Its wire shape is the
/// API's `AnalyzeRequest`; serialising it gives the idempotency key's request hash.)
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AnalyzeInput {
    pub content_type: ContentType,
    /// https URL of the content (video or post); a video's is a direct link to the file.
    pub source_url: Option<String>,
    /// An upload made earlier (video or post).
    pub upload_id: Option<Uuid>,
    /// The caption, post text or script; required for `text`. At most 10,000 characters.
    pub caption: Option<String>,
    pub platform_hint: Option<Platform>,
    /// Whose submission this is: your own user id (admins may submit for others).
    pub user_id: Uuid,
    /// https URL that receives a signed POST when the job ends.
    pub notify_webhook: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Submitted {
    pub job_id: Uuid,
    pub status: JobStatus,
    pub estimated_completion_sec: u32,
    /// True when an Idempotency-Key matched an earlier identical request.
    pub replayed: bool,
    /// The account's allowance after this submission's charge (None for a replay).
    pub quota: Option<QuotaStatus>,
}

/// Where an account stands in its period, right after a charge.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaStatus {
    pub allowance: u64,
    pub used: u64,
    /// Seconds until the period resets, and the period's length.
    pub reset_secs: u64,
    pub period_secs: u64,
    pub credits: Option<u64>,
}

impl QuotaStatus {
    pub fn remaining(&self) -> u64 {
        self.allowance.saturating_sub(self.used)
    }

    /// Where the account stands right after `charge` was admitted.
    fn after(admitted: &crate::usage::Admitted, charge: &crate::usage::Charge) -> QuotaStatus {
        QuotaStatus {
            allowance: admitted.allowance,
            used: admitted.used,
            reset_secs: charge.period.seconds_left(charge.at),
            period_secs: (charge.period.resets_at - charge.period.starts_at).whole_seconds().max(1) as u64,
            credits: admitted.credits,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RateStatus {
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until another request is allowed (0 while some remain).
    pub reset_secs: u64,
    pub window_secs: u64,
}

#[derive(Debug, Clone)]
pub struct JobView {
    pub job: Job,
    pub insights: Option<Vec<Insight>>,
}

#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub items: Vec<JobSummary>,
    pub next_cursor: Option<Cursor>,
}

#[derive(Debug, Clone)]
pub struct AdminJobsPage {
    pub items: Vec<Job>,
    pub totals: BTreeMap<JobStatus, u64>,
    pub next_cursor: Option<Cursor>,
}

#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub key: ApiKey,
    /// The key itself; shown once, never stored.
    pub plaintext: String,
}

#[derive(Debug, Clone)]
pub struct NewUserCredentials {
    pub user: User,
    pub client_secret: String,
    pub api_key: String,
}

pub struct App {
    pub store: Arc<dyn Store>,
    pub counters: Arc<dyn Counters>,
    /// Where submissions go; only what takes submissions has one.
    pub(crate) pipeline: Option<Arc<dyn Pipeline>>,
    pub settings: Settings,
    /// Signs upload and download URLs; only the functions that issue them have one.
    pub(crate) url_signer: Option<Arc<dyn UrlSigner>>,
    /// Ranks variants; only what serves comparisons has one.
    pub(crate) ranker: Option<Arc<dyn crate::ports::Ranker>>,
    /// Connects creators' platform accounts; only what serves them has it.
    pub(crate) platforms: Option<crate::accounts::Platforms>,
    /// This process's scorer, told when the serving model changes (domain::registry).
    pub(crate) model_serving: Option<Arc<dyn crate::registry::ModelServing>>,
    /// sha256(credential) → (key or user id, valid until µs): skips Argon2 on every request.
    /// The key row is still read each time, so revocation takes effect at once.
    verified: Mutex<HashMap<String, (Uuid, i64)>>,
    /// Key id → until when (µs) it is known not to be revoked: bearer tokens minted from a
    /// key end when the key does, at most this long after a revocation made elsewhere.
    live_keys: Mutex<HashMap<Uuid, i64>>,
    /// Every Argon2 hash and verification runs here, bounded.
    hashing: HashPool,
    /// Verifications under way, by credential digest: a client opening many connections at
    /// once with one new key waits on one hash, instead of filling the pool with copies.
    verifying: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<bool>>>>,
    throttle: FailureThrottle,
    decoy_hash: String,
    /// Live streams open in this process, per user and per credential.
    pub(crate) streams: Arc<crate::guard::Holdings>,
}

impl App {
    pub fn new(store: Arc<dyn Store>, counters: Arc<dyn Counters>, settings: Settings) -> Self {
        let decoy_hash = settings.auth.decoy_hash();
        App {
            store,
            counters,
            pipeline: None,
            settings,
            url_signer: None,
            ranker: None,
            platforms: None,
            model_serving: None,
            verified: Mutex::new(HashMap::new()),
            live_keys: Mutex::new(HashMap::new()),
            hashing: HashPool::for_this_machine(),
            verifying: Mutex::new(HashMap::new()),
            throttle: FailureThrottle::default(),
            decoy_hash,
            streams: Arc::new(crate::guard::Holdings::default()),
        }
    }

    /// Takes submissions, handing each job to `pipeline`.
    pub fn with_pipeline(mut self, pipeline: Arc<dyn Pipeline>) -> Self {
        self.pipeline = Some(pipeline);
        self
    }

    fn pipeline(&self) -> Result<&Arc<dyn Pipeline>> {
        self.pipeline.as_ref().ok_or_else(|| Error::Unavailable("this deployment does not take submissions".into()))
    }

    /// Connects platform accounts through these APIs.
    pub fn with_platforms(mut self, platforms: crate::accounts::Platforms) -> Self {
        self.platforms = Some(platforms);
        self
    }

    pub fn with_url_signer(mut self, signer: Arc<dyn UrlSigner>) -> Self {
        self.url_signer = Some(signer);
        self
    }

    /// Replaces the failed-authentication throttle (deployments and tests tune its limits).
    pub fn with_failure_throttle(mut self, throttle: FailureThrottle) -> Self {
        self.throttle = throttle;
        self
    }

    pub(crate) async fn audit(&self, actor: String, action: &str, payload: serde_json::Value, origin: &Origin) -> Result<()> {
        let entry = AuditEntry { id: Uuid::now_v7(), actor, action: action.into(), payload, ip_address: origin.ip, created_at: now() };
        self.store.append_audit(&entry).await
    }

    /// Argon2 is deliberately slow: it runs on the bounded hashing pool, off the async workers.
    async fn verify_hash(&self, phc: String, secret: String) -> Result<bool> {
        self.hashing.run(move || auth::verify_secret(&phc, &secret)).await
    }

    /// [`Self::verify_hash`] once per credential at a time: concurrent callers with the same
    /// `digest` share the one result.
    async fn verify_shared(&self, digest: &str, phc: String, secret: String) -> Result<bool> {
        let cell = self.verifying.lock().unwrap_or_else(|p| p.into_inner()).entry(digest.to_string()).or_default().clone();
        let result = cell.get_or_try_init(|| self.verify_hash(phc, secret)).await.copied();
        self.verifying.lock().unwrap_or_else(|p| p.into_inner()).remove(digest);
        result
    }

    async fn hash(&self, secret: String) -> Result<String> {
        let cfg = self.settings.auth.clone();
        self.hashing.run(move || cfg.hash_secret(&secret)).await?
    }

    fn cached(&self, digest: &str, id: Uuid) -> bool {
        let now_us = to_micros(now());
        self.verified.lock().unwrap_or_else(|p| p.into_inner()).get(digest).is_some_and(|(i, until)| *i == id && *until > now_us)
    }

    fn remember(&self, digest: String, id: Uuid) {
        let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= VERIFIED_KEY_CACHE_MAX {
            cache.clear();
        }
        cache.insert(digest, (id, to_micros(now()) + VERIFIED_KEY_CACHE_SECS * 1_000_000));
    }
}

pub(crate) fn check_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32> {
    match limit {
        None => Ok(default),
        Some(l) if (1..=max).contains(&l) => Ok(l),
        Some(_) => Err(Error::validation("limit", format!("must be between 1 and {max}"))),
    }
}
