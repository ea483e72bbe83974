//! Use cases. Every edge (HTTP handler, CLI, stage) calls these and nothing below them.

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
    /// Local development only: webhook targets may be http:// on loopback.
    pub allow_loopback_webhooks: bool,
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthMethod {
    Token,
    ApiKey { key_id: Uuid },
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub method: AuthMethod,
}

impl Principal {
    fn actor(&self) -> String {
        self.user.id.to_string()
    }

    fn require_admin(&self) -> Result<()> {
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

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: u64,
}

/// What a client asks to have analysed (`POST /api/v1/analyze`); `validate_analyze` checks it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AnalyzeRequest)]
pub struct AnalyzeInput {
    pub content_type: ContentType,
    /// https URL of the content (video or post).
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
    pub pipeline: Arc<dyn Pipeline>,
    pub settings: Settings,
    /// Signs upload and download URLs; only the functions that issue them have one.
    pub(crate) url_signer: Option<Arc<dyn UrlSigner>>,
    /// sha256(credential) → (key or user id, valid until µs): skips Argon2 on every request.
    /// The key row is still read each time, so revocation takes effect at once.
    verified: Mutex<HashMap<String, (Uuid, i64)>>,
    /// Key id → until when (µs) it is known not to be revoked: bearer tokens minted from a
    /// key end when the key does, at most this long after a revocation made elsewhere.
    live_keys: Mutex<HashMap<Uuid, i64>>,
    /// Every Argon2 hash and verification runs here, bounded.
    hashing: HashPool,
    throttle: FailureThrottle,
    decoy_hash: String,
}

/// Where a credential check came from, for the failure throttle.
fn origin_ip(origin: &Origin) -> Option<IpAddr> {
    origin.ip
}

impl App {
    pub fn new(store: Arc<dyn Store>, counters: Arc<dyn Counters>, pipeline: Arc<dyn Pipeline>, settings: Settings) -> Self {
        let decoy_hash = settings.auth.decoy_hash();
        App {
            store,
            counters,
            pipeline,
            settings,
            url_signer: None,
            verified: Mutex::new(HashMap::new()),
            live_keys: Mutex::new(HashMap::new()),
            hashing: HashPool::for_this_machine(),
            throttle: FailureThrottle::default(),
            decoy_hash,
        }
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

    async fn audit(&self, actor: String, action: &str, payload: serde_json::Value, origin: &Origin) -> Result<()> {
        let entry = AuditEntry { id: Uuid::now_v7(), actor, action: action.into(), payload, ip_address: origin.ip, created_at: now() };
        self.store.append_audit(&entry).await
    }

    /// Argon2 is deliberately slow: it runs on the bounded hashing pool, off the async workers.
    async fn verify_hash(&self, phc: String, secret: String) -> Result<bool> {
        self.hashing.run(move || auth::verify_secret(&phc, &secret)).await
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

    // ---------------------------------------------------------------- users and credentials

    /// Operator action (CLI): a new user with a client secret and a first API key.
    pub async fn create_user(&self, email: &str, plan: Plan, roles: Vec<Role>, actor: &str) -> Result<NewUserCredentials> {
        let email = normalize_email(email)?;
        let client_secret = auth::random_token(32);
        let at = now();
        let user = User {
            id: Uuid::now_v7(),
            email,
            hashed_secret: self.hash(client_secret.clone()).await?,
            plan,
            is_active: true,
            roles: if roles.is_empty() { vec![Role::User] } else { roles },
            webhook_secret: new_webhook_secret(),
            created_at: at,
            updated_at: at,
        };
        self.store.create_user(&user).await?;
        let origin = Origin::default();
        let payload = serde_json::json!({"user_id": user.id, "email": user.email, "plan": plan, "roles": user.roles});
        self.audit(actor.into(), "user.create", payload, &origin).await?;
        let issued = self.new_key(user.id, None).await?;
        self.store.insert_api_key(&issued.key).await?;
        self.audit(actor.into(), "api_key.issue", key_payload(&issued.key), &origin).await?;
        Ok(NewUserCredentials { user, client_secret, api_key: issued.plaintext })
    }

    pub async fn set_user_active(&self, user_id: Uuid, active: bool, actor: &str) -> Result<()> {
        if !self.store.set_user_active(user_id, active, now()).await? {
            return Err(Error::NotFound("user"));
        }
        let action = if active { "user.activate" } else { "user.deactivate" };
        self.audit(actor.into(), action, serde_json::json!({"user_id": user_id}), &Origin::default()).await
    }

    /// Client credentials or an API key for a bearer token. A token minted from a key names
    /// the key, and ends when the key is revoked or rotated.
    pub async fn exchange_token(&self, credentials: Credentials, origin: &Origin) -> Result<IssuedToken> {
        let (user, key_id) = match credentials {
            Credentials::ClientSecret { client_id, client_secret } => {
                let ip = origin_ip(origin);
                let credential = format!("client:{client_id}");
                self.throttle.check(ip, &credential)?;
                let user = match client_id.parse::<Uuid>() {
                    Ok(id) => self.store.user_by_id(id).await?,
                    Err(_) => None,
                };
                let digest = auth::sha256_hex(format!("client\0{client_id}\0{client_secret}").as_bytes());
                let matches = match &user {
                    Some(u) if self.cached(&digest, u.id) => true,
                    Some(u) => self.verify_hash(u.hashed_secret.clone(), client_secret).await?,
                    // The decoy makes an unknown client id cost what a wrong secret does, so
                    // user ids cannot be probed by timing; the throttle bounds how often.
                    None => {
                        self.verify_hash(self.decoy_hash.clone(), client_secret).await?;
                        false
                    }
                };
                match user {
                    Some(user) if matches => {
                        self.remember(digest, user.id);
                        (user, None)
                    }
                    _ => {
                        self.throttle.record_failure(ip, &credential);
                        return Err(Error::Unauthorized("invalid client credentials".into()));
                    }
                }
            }
            Credentials::ApiKey(key) => {
                let principal = self.authenticate_api_key(&key, origin).await?;
                let key_id = match principal.method {
                    AuthMethod::ApiKey { key_id } => Some(key_id),
                    AuthMethod::Token => None,
                };
                (principal.user, key_id)
            }
        };
        if !user.is_active {
            return Err(Error::Forbidden("the account is inactive".into()));
        }
        let access_token = self.settings.auth.issue_token(user.id, key_id, OffsetDateTime::now_utc().unix_timestamp())?;
        Ok(IssuedToken { access_token, expires_in: self.settings.auth.token_ttl_secs })
    }

    pub async fn authenticate_bearer(&self, token: &str) -> Result<Principal> {
        let subject = self.settings.auth.verify_token(token)?;
        let user = self.store.user_by_id(subject.user_id).await?.ok_or_else(|| Error::Unauthorized("token invalid".into()))?;
        if !user.is_active {
            return Err(Error::Forbidden("the account is inactive".into()));
        }
        if let Some(key_id) = subject.key_id {
            self.check_key_live(key_id, user.id).await?;
        }
        Ok(Principal { user, method: AuthMethod::Token })
    }

    /// A token minted from a key is as good as the key: refused once it is revoked.
    async fn check_key_live(&self, key_id: Uuid, user_id: Uuid) -> Result<()> {
        let now_us = to_micros(now());
        let known_live = self.live_keys.lock().unwrap_or_else(|p| p.into_inner()).get(&key_id).is_some_and(|until| *until > now_us);
        if known_live {
            return Ok(());
        }
        match self.store.api_key(key_id).await? {
            Some(k) if k.user_id == user_id && k.revoked_at.is_none() => {
                let mut live = self.live_keys.lock().unwrap_or_else(|p| p.into_inner());
                if live.len() >= VERIFIED_KEY_CACHE_MAX {
                    live.clear();
                }
                live.insert(key_id, now_us + LIVE_KEY_CACHE_SECS * 1_000_000);
                Ok(())
            }
            Some(k) if k.user_id == user_id => Err(Error::Unauthorized("the API key this token came from has been revoked".into())),
            _ => Err(Error::Unauthorized("token invalid".into())),
        }
    }

    fn forget_key(&self, key_id: Uuid) {
        self.live_keys.lock().unwrap_or_else(|p| p.into_inner()).remove(&key_id);
    }

    pub async fn authenticate_api_key(&self, key: &str, origin: &Origin) -> Result<Principal> {
        let invalid = || Error::Unauthorized("invalid API key".into());
        let prefix = auth::api_key_prefix(key).ok_or_else(invalid)?;
        let ip = origin_ip(origin);
        let credential = format!("key:{prefix}");
        let digest = auth::sha256_hex(key.as_bytes());
        let record = self.store.api_key_by_prefix(prefix).await?;
        // A key already verified costs no hashing and is never throttled.
        let cached = record.as_ref().is_some_and(|r| self.cached(&digest, r.id));
        if !cached {
            self.throttle.check(ip, &credential)?;
            // An unknown prefix is refused without a decoy hash: it tells the caller only that
            // a random 48-bit prefix is not in use, which says nothing about any real key.
            let verified = match &record {
                Some(r) => self.verify_hash(r.hashed_key.clone(), key.to_string()).await?,
                None => false,
            };
            if !verified {
                self.throttle.record_failure(ip, &credential);
                return Err(invalid());
            }
        }
        let record = record.ok_or_else(invalid)?;
        if !cached {
            self.remember(digest, record.id);
        }
        if record.revoked_at.is_some() {
            return Err(Error::Forbidden("the API key has been revoked".into()));
        }
        let user = self.store.user_by_id(record.user_id).await?.ok_or_else(invalid)?;
        if !user.is_active {
            return Err(Error::Forbidden("the account is inactive".into()));
        }
        let now_us = to_micros(now());
        let stale = record.last_used_at.is_none_or(|t| to_micros(t) < now_us - KEY_TOUCH_INTERVAL_SECS * 1_000_000);
        if stale {
            self.store.touch_api_key(record.id, from_micros(now_us)).await?;
        }
        Ok(Principal { user, method: AuthMethod::ApiKey { key_id: record.id } })
    }

    async fn new_key(&self, user_id: Uuid, rotated_from: Option<Uuid>) -> Result<IssuedKey> {
        let (plaintext, prefix) = auth::new_api_key();
        let key = ApiKey {
            id: Uuid::now_v7(),
            user_id,
            prefix,
            hashed_key: self.hash(plaintext.clone()).await?,
            created_at: now(),
            revoked_at: None,
            last_used_at: None,
            rotated_from,
        };
        Ok(IssuedKey { key, plaintext })
    }

    pub async fn issue_api_key(&self, principal: &Principal, origin: &Origin) -> Result<IssuedKey> {
        let issued = self.new_key(principal.user.id, None).await?;
        self.store.insert_api_key(&issued.key).await?;
        self.audit(principal.actor(), "api_key.issue", key_payload(&issued.key), origin).await?;
        Ok(issued)
    }

    pub async fn list_api_keys(&self, principal: &Principal) -> Result<Vec<ApiKey>> {
        self.store.api_keys_for_user(principal.user.id).await
    }

    pub async fn rotate_api_key(&self, principal: &Principal, key_id: Uuid, origin: &Origin) -> Result<IssuedKey> {
        let issued = self.new_key(principal.user.id, Some(key_id)).await?;
        if !self.store.rotate_api_key(principal.user.id, key_id, &issued.key, now()).await? {
            return Err(Error::NotFound("api key"));
        }
        self.forget_key(key_id);
        self.audit(principal.actor(), "api_key.rotate", key_payload(&issued.key), origin).await?;
        Ok(issued)
    }

    pub async fn revoke_api_key(&self, principal: &Principal, key_id: Uuid, origin: &Origin) -> Result<()> {
        if !self.store.revoke_api_key(principal.user.id, key_id, now()).await? {
            return Err(Error::NotFound("api key"));
        }
        self.forget_key(key_id);
        self.audit(principal.actor(), "api_key.revoke", serde_json::json!({"key_id": key_id}), origin).await
    }

    // ---------------------------------------------------------------- analysis

    /// Counts one request against the caller's plan limit over a sliding minute. A refused
    /// request is not counted (it is refused before anything is written), so waiting out
    /// `Retry-After` is always enough.
    pub async fn take_rate_limit(&self, principal: &Principal) -> Result<RateStatus> {
        const WINDOW: i64 = 60;
        let limit = self.settings.rate_limits.per_minute(principal.user.plan);
        let now_us = to_micros(now());
        let window = now_us.div_euclid(WINDOW * 1_000_000);
        let elapsed = (now_us - window * WINDOW * 1_000_000) as f64 / 1e6;
        let key = |w: i64| format!("rate:{}:{w}", principal.user.id);
        let previous = self.counters.get(&key(window - 1), now_us).await?;
        let refused = |sliding: Sliding| Error::RateLimited {
            policy: "submissions",
            limit,
            window_secs: WINDOW as u64,
            retry_after_secs: sliding.wait_secs(limit),
        };
        let before = Sliding { previous, current: self.counters.get(&key(window), now_us).await?, elapsed, len: WINDOW as f64 };
        if before.count() + 1.0 > limit as f64 {
            return Err(refused(before));
        }
        // Each window's counter lives through the next one, where it is the previous.
        let current = self.counters.increment(&key(window), (window + 2) * WINDOW * 1_000_000, now_us).await?;
        let sliding = Sliding { current, ..before };
        let used = sliding.count();
        if used > limit as f64 {
            // Concurrent requests took the last places between the read and the write.
            return Err(refused(sliding));
        }
        let remaining = (limit as f64 - used).floor().max(0.0) as u64;
        let reset_secs = if remaining > 0 { 0 } else { sliding.wait_secs(limit) };
        Ok(RateStatus { limit, remaining, reset_secs, window_secs: WINDOW as u64 })
    }

    pub async fn submit(
        &self,
        principal: &Principal,
        input: AnalyzeInput,
        idempotency_key: Option<&str>,
    ) -> Result<(Submitted, Option<RateStatus>)> {
        validate_analyze(&input, self.settings.allow_loopback_webhooks)?;
        if !principal.may_see(input.user_id) {
            return Err(Error::Forbidden("you may only submit content for your own user_id".into()));
        }
        let owner = if input.user_id == principal.user.id {
            principal.user.clone()
        } else {
            self.store.user_by_id(input.user_id).await?.ok_or(Error::NotFound("user"))?
        };
        let job_id = Uuid::now_v7();
        let reserved_key = match idempotency_key {
            None => None,
            Some(key) => {
                validate_idempotency_key(key)?;
                let request_hash = auth::sha256_hex(&serde_json::to_vec(&input).map_err(|e| Error::Internal(e.to_string()))?);
                let now_us = to_micros(now());
                let record = IdempotencyRecord {
                    user_id: principal.user.id,
                    key: key.to_string(),
                    request_hash: request_hash.clone(),
                    job_id,
                    expires_at_us: now_us + IDEMPOTENCY_TTL_SECS * 1_000_000,
                };
                match self.counters.reserve_idempotency(&record, now_us).await? {
                    Reservation::Reserved => Some(key),
                    Reservation::Existing(existing) if existing.request_hash == request_hash => {
                        // A replay names a job that exists. A key whose first request is still
                        // being made (or is about to fail and free the key) has no job yet:
                        // say so, as Stripe does, instead of naming a job that may never be.
                        let Some(job) = self.store.job(existing.job_id).await? else {
                            return Err(Error::InProgress(
                                "a request with this Idempotency-Key is still in progress; retry it shortly".into(),
                            ));
                        };
                        let submitted = Submitted {
                            job_id: job.id,
                            status: job.status,
                            estimated_completion_sec: self.pipeline.estimated_completion_secs().await,
                            replayed: true,
                        };
                        return Ok((submitted, None));
                    }
                    Reservation::Existing(_) => {
                        return Err(Error::Conflict("this Idempotency-Key was already used with a different request body".into()));
                    }
                }
            }
        };
        let created = self.create_job(principal, &owner, input, job_id).await;
        if created.is_err() {
            if let Some(key) = reserved_key {
                // Free the key so the client can retry the same request.
                self.counters.release_idempotency(principal.user.id, key).await?;
            }
        }
        let rate = created?;
        if let Err(e) = self.pipeline.enqueue(job_id).await {
            // The job is stored as queued; the pipeline's sweep of queued jobs picks it up.
            tracing::warn!(%job_id, error = %e, "pipeline hand-off failed; left for the queued-job sweep");
        }
        let submitted = Submitted {
            job_id,
            status: JobStatus::Queued,
            estimated_completion_sec: self.pipeline.estimated_completion_secs().await,
            replayed: false,
        };
        Ok((submitted, Some(rate)))
    }

    async fn create_job(&self, principal: &Principal, owner: &User, input: AnalyzeInput, job_id: Uuid) -> Result<RateStatus> {
        if !owner.is_active {
            return Err(Error::Forbidden("the account is inactive".into()));
        }
        let storage_key = match input.upload_id {
            Some(id) => self.upload_for_submission(owner.id, id, input.content_type).await?.content_key,
            None => None,
        };
        let rate = self.take_rate_limit(principal).await?;
        let at = now();
        let submission = Submission {
            id: Uuid::now_v7(),
            user_id: owner.id,
            content_type: input.content_type,
            source_url: input.source_url,
            upload_id: input.upload_id,
            storage_key,
            caption: input.caption,
            platform_hint: input.platform_hint,
            notify_webhook: input.notify_webhook,
            status: SubmissionStatus::Queued,
            created_at: at,
        };
        let job = Job {
            id: job_id,
            submission_id: submission.id,
            user_id: owner.id,
            status: JobStatus::Queued,
            score: None,
            confidence: None,
            errors: None,
            metrics: None,
            moderation_flags: None,
            created_at: at,
            updated_at: at,
            completed_at: None,
            archived_at: None,
        };
        self.store.create_submission_and_job(&submission, &job).await?;
        Ok(rate)
    }

    pub async fn job_view(&self, principal: &Principal, job_id: Uuid, include_insights: bool) -> Result<JobView> {
        let job = self.store.job(job_id).await?.filter(|j| principal.may_see(j.user_id) && j.archived_at.is_none());
        let job = job.ok_or(Error::NotFound("job"))?;
        let insights = if include_insights { Some(self.store.insights(job_id).await?) } else { None };
        Ok(JobView { job, insights })
    }

    pub async fn archive_job(&self, principal: &Principal, job_id: Uuid, origin: &Origin) -> Result<()> {
        let owner = self.store.job(job_id).await?.filter(|j| principal.may_see(j.user_id)).ok_or(Error::NotFound("job"))?.user_id;
        if !self.store.archive_job(owner, job_id, now()).await? {
            return Err(Error::NotFound("job"));
        }
        self.audit(principal.actor(), "job.archive", serde_json::json!({"job_id": job_id}), origin).await
    }

    pub async fn history(
        &self,
        principal: &Principal,
        user_id: Uuid,
        status: Option<JobStatus>,
        cursor: Option<Cursor>,
        limit: Option<u32>,
    ) -> Result<HistoryPage> {
        if !principal.may_see(user_id) || self.store.user_by_id(user_id).await?.is_none() {
            return Err(Error::NotFound("user"));
        }
        let limit = check_limit(limit, HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT)?;
        // One extra row tells whether another page exists.
        let mut items = self.store.history(user_id, status, cursor, limit + 1).await?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|j| Cursor { created_at_us: to_micros(j.created_at), id: j.job_id })
        } else {
            None
        };
        Ok(HistoryPage { items, next_cursor })
    }

    pub async fn admin_jobs(&self, principal: &Principal, mut filter: AdminJobFilter, origin: &Origin) -> Result<AdminJobsPage> {
        principal.require_admin()?;
        if let (Some(from), Some(to)) = (filter.from, filter.to) {
            if from > to {
                return Err(Error::validation("from", "`from` must not be after `to`"));
            }
        }
        let limit = check_limit(Some(filter.limit).filter(|l| *l != 0), 50, ADMIN_MAX_LIMIT)?;
        filter.limit = limit + 1;
        let mut items = self.store.admin_jobs(&filter).await?;
        let totals = self.store.job_totals(&filter).await?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|j| Cursor { created_at_us: to_micros(j.created_at), id: j.id })
        } else {
            None
        };
        let payload = serde_json::json!({
            "status": filter.status, "from": filter.from.map(to_micros), "to": filter.to.map(to_micros), "returned": items.len()
        });
        self.audit(principal.actor(), "admin.jobs.list", payload, origin).await?;
        Ok(AdminJobsPage { items, totals, next_cursor })
    }

    /// Webhook deliveries that were given up on (admin), newest first.
    pub async fn dead_letters(&self, principal: &Principal, limit: Option<u32>, origin: &Origin) -> Result<Vec<WebhookDelivery>> {
        principal.require_admin()?;
        let limit = check_limit(limit, 50, ADMIN_MAX_LIMIT)?;
        let items = self.store.dead_deliveries(limit).await?;
        self.audit(principal.actor(), "admin.webhooks.dead_letters", serde_json::json!({"returned": items.len()}), origin).await?;
        Ok(items)
    }

    // ---------------------------------------------------------------- webhooks

    pub async fn create_webhook(
        &self,
        principal: &Principal,
        target_url: &str,
        events: Option<Vec<WebhookEvent>>,
        origin: &Origin,
    ) -> Result<WebhookSubscription> {
        let mut errors = Vec::new();
        check_url("target_url", target_url, self.settings.allow_loopback_webhooks, &mut errors);
        let events = events.unwrap_or_else(|| WebhookEvent::ALL.to_vec());
        if events.is_empty() {
            errors.push(FieldError::new("events", format!("give at least one event: {}", WebhookEvent::expected())));
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        let mut unique = Vec::new();
        for e in events {
            if !unique.contains(&e) {
                unique.push(e);
            }
        }
        let sub = WebhookSubscription {
            id: Uuid::now_v7(),
            user_id: principal.user.id,
            target_url: target_url.to_string(),
            secret: new_webhook_secret(),
            events: unique,
            active: true,
            created_at: now(),
        };
        self.store.create_webhook(&sub, WEBHOOKS_PER_USER_MAX).await?;
        let payload = serde_json::json!({"webhook_id": sub.id, "target_url": sub.target_url});
        self.audit(principal.actor(), "webhook.create", payload, origin).await?;
        Ok(sub)
    }

    pub async fn list_webhooks(&self, principal: &Principal) -> Result<Vec<WebhookSubscription>> {
        self.store.webhooks_for_user(principal.user.id).await
    }

    pub async fn delete_webhook(&self, principal: &Principal, id: Uuid, origin: &Origin) -> Result<()> {
        if !self.store.delete_webhook(principal.user.id, id).await? {
            return Err(Error::NotFound("webhook"));
        }
        self.audit(principal.actor(), "webhook.delete", serde_json::json!({"webhook_id": id}), origin).await
    }

    /// The secret that signs deliveries to your submissions' `notify_webhook`, and the
    /// `X-GVN-Webhook-Id` those deliveries carry.
    pub async fn notify_signing_secret(&self, principal: &Principal, origin: &Origin) -> Result<(String, String)> {
        self.audit(principal.actor(), "webhook.notify_secret.read", serde_json::json!({}), origin).await?;
        Ok((notify_signing_id(principal.user.id), principal.user.webhook_secret.clone()))
    }

    /// Replaces the notify secret; deliveries signed from now on use the new one.
    pub async fn rotate_notify_secret(&self, principal: &Principal, origin: &Origin) -> Result<(String, String)> {
        let secret = new_webhook_secret();
        if !self.store.set_webhook_secret(principal.user.id, &secret, now()).await? {
            return Err(Error::NotFound("user"));
        }
        self.audit(principal.actor(), "webhook.notify_secret.rotate", serde_json::json!({}), origin).await?;
        Ok((notify_signing_id(principal.user.id), secret))
    }

    /// Verifies a signed completion callback. Every failure is the same 401 to the caller
    /// (the reason is logged), so subscription ids and secrets cannot be probed.
    pub async fn receive_completion(
        &self,
        subscription_id: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        origin: &Origin,
    ) -> Result<CompletionNotice> {
        let unauthorized = |why: &str| {
            tracing::info!(reason = why, "completion hook rejected");
            Error::Unauthorized("invalid webhook signature".into())
        };
        let signing_id = subscription_id.ok_or_else(|| unauthorized("missing X-GVN-Webhook-Id"))?;
        let signature = signature.ok_or_else(|| unauthorized("missing X-GVN-Signature"))?;
        // `user:<id>` signs deliveries to a submission's notify_webhook; otherwise a subscription id.
        let (owner, secret) = match signing_id.strip_prefix("user:") {
            Some(user_id) => {
                let user_id = user_id.parse::<Uuid>().map_err(|_| unauthorized("malformed X-GVN-Webhook-Id"))?;
                let user = self.store.user_by_id(user_id).await?.filter(|u| u.is_active).ok_or_else(|| unauthorized("unknown user"))?;
                (user.id, user.webhook_secret)
            }
            None => {
                let id = signing_id.parse::<Uuid>().map_err(|_| unauthorized("malformed X-GVN-Webhook-Id"))?;
                let sub =
                    self.store.webhook(id).await?.filter(|s| s.active).ok_or_else(|| unauthorized("unknown or inactive subscription"))?;
                (sub.user_id, sub.secret)
            }
        };
        let now_unix = OffsetDateTime::now_utc().unix_timestamp();
        let signed_at = auth::verify_webhook_signature(&secret, signature, body, now_unix).map_err(unauthorized)?;
        let notice: CompletionNotice = serde_json::from_slice(body).map_err(|e| Error::validation("body", e.to_string()))?;
        // A valid notice is accepted once: the same signer, timestamp and body seen again
        // within the tolerance window is a replay. Remembered until the signature could no
        // longer verify anyway.
        let seen = format!("hook-seen:{signing_id}:{signed_at}:{}", auth::sha256_hex(body));
        let forget_at_us = (signed_at + auth::SIGNATURE_TOLERANCE_SECS + 1) * 1_000_000;
        if self.counters.increment(&seen, forget_at_us, now_unix * 1_000_000).await? > 1 {
            tracing::info!(reason = "replay", "completion hook rejected");
            return Err(Error::Conflict("this notice was already received".into()));
        }
        let payload = serde_json::json!({"webhook_id": signing_id, "job_id": notice.job_id, "status": notice.status});
        self.audit(owner.to_string(), "webhook.completion_received", payload, origin).await?;
        Ok(notice)
    }
}

/// The body of a completion webhook (what the webhook stage sends).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletionNotice {
    pub job_id: Uuid,
    pub status: JobStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// RFC 3339
    pub timestamp: String,
}

/// The `X-GVN-Webhook-Id` of deliveries to a submission's `notify_webhook`.
pub fn notify_signing_id(user_id: Uuid) -> String {
    format!("user:{user_id}")
}

fn new_webhook_secret() -> String {
    format!("whsec_{}", auth::random_token(32))
}

fn key_payload(key: &ApiKey) -> serde_json::Value {
    serde_json::json!({"key_id": key.id, "prefix": key.prefix, "user_id": key.user_id, "rotated_from": key.rotated_from})
}

fn check_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32> {
    match limit {
        None => Ok(default),
        Some(l) if (1..=max).contains(&l) => Ok(l),
        Some(_) => Err(Error::validation("limit", format!("must be between 1 and {max}"))),
    }
}

pub fn normalize_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid { Ok(email) } else { Err(Error::validation("email", "not a valid email address")) }
}

fn validate_idempotency_key(key: &str) -> Result<()> {
    let ok = !key.is_empty() && key.len() <= IDEMPOTENCY_KEY_MAX && key.bytes().all(|b| b.is_ascii_graphic());
    if ok { Ok(()) } else { Err(Error::validation("Idempotency-Key", format!("1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters"))) }
}

fn check_url(field: &str, url: &str, allow_loopback: bool, errors: &mut Vec<FieldError>) {
    if let Err(problem) = crate::net::check_target_url(url, allow_loopback) {
        errors.push(FieldError::new(field, problem));
    }
}

/// Checks the rules of an analyze request and reports every broken one at once.
pub fn validate_analyze(input: &AnalyzeInput, allow_loopback_webhooks: bool) -> Result<()> {
    let mut errors = Vec::new();
    let caption = input.caption.as_deref().map(str::trim).filter(|c| !c.is_empty());
    match input.content_type {
        ContentType::Text => {
            if caption.is_none() {
                errors.push(FieldError::new("caption", "a text job needs a non-empty caption"));
            }
            if input.upload_id.is_some() {
                errors.push(FieldError::new("upload_id", "a text job takes no upload"));
            }
        }
        ContentType::Video => match (&input.source_url, &input.upload_id) {
            (None, None) => errors.push(FieldError::new("source_url", "a video needs source_url or upload_id")),
            (Some(_), Some(_)) => errors.push(FieldError::new("upload_id", "give source_url or upload_id, not both")),
            _ => {}
        },
        ContentType::Post => {
            if caption.is_none() && input.source_url.is_none() && input.upload_id.is_none() {
                errors.push(FieldError::new("caption", "a post needs a caption, source_url or upload_id"));
            }
        }
    }
    if let Some(c) = &input.caption {
        if c.chars().count() > CAPTION_MAX_CHARS {
            errors.push(FieldError::new("caption", format!("longer than {CAPTION_MAX_CHARS} characters")));
        }
        if c.chars().any(|ch| ch == '\0') {
            errors.push(FieldError::new("caption", "contains a NUL character"));
        }
    }
    if let Some(u) = &input.source_url {
        // Content is fetched from the public internet only, even in development.
        check_url("source_url", u, false, &mut errors);
    }
    if let Some(u) = &input.notify_webhook {
        check_url("notify_webhook", u, allow_loopback_webhooks, &mut errors);
    }
    if errors.is_empty() { Ok(()) } else { Err(Error::Validation(errors)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(caption: Option<&str>) -> AnalyzeInput {
        AnalyzeInput {
            content_type: ContentType::Text,
            source_url: None,
            upload_id: None,
            caption: caption.map(String::from),
            platform_hint: None,
            user_id: Uuid::nil(),
            notify_webhook: None,
        }
    }

    fn check(input: &AnalyzeInput) -> Result<()> {
        validate_analyze(input, false)
    }

    #[test]
    fn loopback_http_webhooks_only_when_configured() {
        let mut t = text(Some("hi"));
        t.notify_webhook = Some("http://127.0.0.1:9000/hook".into());
        assert_eq!(fields(validate_analyze(&t, false)), ["notify_webhook"]);
        assert!(validate_analyze(&t, true).is_ok());
        t.notify_webhook = Some("http://example.com/hook".into());
        assert_eq!(fields(validate_analyze(&t, true)), ["notify_webhook"]);
    }

    use crate::error::validation_fields as fields;

    #[test]
    fn text_needs_caption() {
        assert!(check(&text(Some("hello"))).is_ok());
        assert_eq!(fields(check(&text(None))), ["caption"]);
        assert_eq!(fields(check(&text(Some("   ")))), ["caption"]);
        assert_eq!(fields(check(&text(Some(&"x".repeat(CAPTION_MAX_CHARS + 1))))), ["caption"]);
    }

    #[test]
    fn video_needs_one_https_source() {
        let mut v = text(None);
        v.content_type = ContentType::Video;
        assert_eq!(fields(check(&v)), ["source_url"]);
        v.source_url = Some("http://example.com/v.mp4".into());
        assert_eq!(fields(check(&v)), ["source_url"]);
        v.source_url = Some("https://user:pw@example.com/v.mp4".into());
        assert_eq!(fields(check(&v)), ["source_url"]);
        v.source_url = Some("https://example.com/v.mp4".into());
        assert!(check(&v).is_ok());
        v.upload_id = Some(Uuid::nil());
        assert_eq!(fields(check(&v)), ["upload_id"]);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut t = text(None);
        t.notify_webhook = Some("ftp://x".into());
        assert_eq!(fields(check(&t)), ["caption", "notify_webhook"]);
    }

    #[test]
    fn emails_are_normalised() {
        assert_eq!(normalize_email(" Ann@Example.COM ").unwrap(), "ann@example.com");
        assert!(normalize_email("nope").is_err());
        assert!(normalize_email("a@b").is_err());
        assert!(normalize_email("a b@c.d").is_err());
    }
}
