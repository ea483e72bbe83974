//! Submissions and jobs: the plan's sliding rate limit, idempotent submission, reading,
//! archiving, history, and the rules an analyze request must follow.

use super::*;

impl App {
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
        let pipeline = self.pipeline()?.clone();
        validate_analyze(&input, &self.settings)?;
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
                let now_us = to_micros(now());
                let record = self.idempotency_record(principal, key, &input, job_id, now_us)?;
                // A reservation whose request died before making its job (a crash between
                // the two) would answer "in progress" for a day; past this it is taken over.
                const ABANDONED_AFTER_US: i64 = 30 * 1_000_000;
                let mut taken_over = false;
                loop {
                    match self.counters.reserve_idempotency(&record, now_us).await? {
                        Reservation::Reserved => break Some(key),
                        Reservation::Existing(existing) if existing.request_hash == record.request_hash => {
                            // A replay names a job that exists. A key whose first request is still
                            // being made (or is about to fail and free the key) has no job yet:
                            // say so, as Stripe does, instead of naming a job that may never be.
                            if let Some(job) = self.store.job(existing.job_id).await? {
                                let submitted = Submitted {
                                    job_id: job.id,
                                    status: job.status,
                                    estimated_completion_sec: pipeline.estimated_completion_secs().await,
                                    replayed: true,
                                    quota: None,
                                };
                                return Ok((submitted, None));
                            }
                            let reserved_at_us = existing.expires_at_us - IDEMPOTENCY_TTL_SECS * 1_000_000;
                            if !taken_over && now_us - reserved_at_us > ABANDONED_AFTER_US {
                                tracing::warn!(key, "idempotency key held by a request that never made its job; taking it over");
                                self.counters.release_idempotency(principal.user.id, key, existing.job_id).await?;
                                taken_over = true;
                                continue;
                            }
                            return Err(Error::InProgress(
                                "a request with this Idempotency-Key is still in progress; retry it shortly".into(),
                            ));
                        }
                        Reservation::Existing(_) => {
                            return Err(Error::Conflict("this Idempotency-Key was already used with a different request body".into()));
                        }
                    }
                }
            }
        };
        let created = self.create_job(principal, &owner, input, job_id).await;
        if created.is_err() {
            if let Some(key) = reserved_key {
                // Free the key so the client can retry the same request.
                self.counters.release_idempotency(principal.user.id, key, job_id).await?;
            }
        }
        let (rate, quota) = created?;
        if let Err(e) = pipeline.enqueue(job_id).await {
            // The job is stored as queued; the pipeline's sweep of queued jobs picks it up.
            tracing::warn!(%job_id, error = %e, "pipeline hand-off failed; left for the queued-job sweep");
        }
        let submitted = Submitted {
            job_id,
            status: JobStatus::Queued,
            estimated_completion_sec: pipeline.estimated_completion_secs().await,
            replayed: false,
            quota: Some(quota),
        };
        Ok((submitted, Some(rate)))
    }

    /// Stores the submission and its job, charged to the owner's account in the same
    /// transaction (refused when the allowance or the prepaid credits do not cover it).
    async fn create_job(
        &self,
        principal: &Principal,
        owner: &User,
        input: AnalyzeInput,
        job_id: Uuid,
    ) -> Result<(RateStatus, QuotaStatus)> {
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
        let charge = self.charge_for(owner, input.content_type.into(), job_id, at);
        let admitted = self.store.admit_submission_and_job(&submission, &job, &charge).await?;
        Ok((rate, QuotaStatus::after(&admitted, &charge)))
    }

    /// What admitting a submission (or a comparison) of `kind` costs the owner's account this
    /// period (the account's own terms are applied by the store, in the admission's transaction).
    pub(crate) fn charge_for(&self, owner: &User, kind: UsageKind, job_id: Uuid, at: OffsetDateTime) -> crate::usage::Charge {
        let terms = self.settings.usage.plan(owner.plan);
        crate::usage::Charge {
            entry_id: Uuid::now_v7(),
            user_id: owner.id,
            job_id,
            kind,
            units: self.settings.usage.admission_units(kind),
            period: crate::usage::Period::of(at),
            plan_allowance: terms.monthly_units,
            hard_cap: terms.hard_cap,
            at,
        }
    }

    /// A job the caller may see and that is not archived; anything else is "not found".
    pub(crate) async fn visible_job(&self, principal: &Principal, job_id: Uuid) -> Result<Job> {
        let job = self.store.job(job_id).await?.filter(|j| principal.may_see(j.user_id) && j.archived_at.is_none());
        job.ok_or(Error::NotFound("job"))
    }

    /// The idempotency record reserving `key` for `request` (hashed) and the id it will make.
    pub(super) fn idempotency_record(
        &self,
        principal: &Principal,
        key: &str,
        request: &impl serde::Serialize,
        id: Uuid,
        now_us: i64,
    ) -> Result<IdempotencyRecord> {
        validate_idempotency_key(key)?;
        let request_hash = auth::sha256_hex(&serde_json::to_vec(request).map_err(|e| Error::Internal(e.to_string()))?);
        Ok(IdempotencyRecord {
            user_id: principal.user.id,
            key: key.to_string(),
            request_hash,
            job_id: id,
            expires_at_us: now_us + IDEMPOTENCY_TTL_SECS * 1_000_000,
        })
    }

    pub async fn job_view(&self, principal: &Principal, job_id: Uuid, include_insights: bool) -> Result<JobView> {
        let job = self.visible_job(principal, job_id).await?;
        let insights = if include_insights { Some(self.store.insights(job_id).await?) } else { None };
        Ok(JobView { job, insights })
    }

    /// A job's metrics as a client reads them: each stored still of a video gets a download
    /// URL (valid 5 minutes) beside its key, where this deployment signs URLs; a complete job
    /// gets its creator baseline (`creator_baseline`), from the owner's outcomes as they are now.
    pub async fn metrics_for_client(&self, job: &Job) -> Result<Option<serde_json::Value>> {
        let Some(mut metrics) = job.metrics.clone() else { return Ok(None) };
        if job.status == JobStatus::Complete
            && let Some(baseline) = self.creator_baseline(job).await?
            && let Some(object) = metrics.as_object_mut()
        {
            object.insert("creator_baseline".into(), serde_json::to_value(baseline).unwrap_or_default());
        }
        let Some(signer) = &self.url_signer else { return Ok(Some(metrics)) };
        if let Some(thumbnails) = metrics.pointer_mut("/media/thumbnails").and_then(|t| t.as_array_mut()) {
            for thumb in thumbnails.iter_mut() {
                let Some(key) = thumb["key"].as_str().filter(|k| k.starts_with("thumbnails/")) else { continue };
                let signed = signer.sign_get(key, crate::uploads::DOWNLOAD_URL_TTL).await?;
                thumb["url"] = signed.url.into();
            }
        }
        Ok(Some(metrics))
    }

    /// A token that opens the job's live stream for five minutes (for browsers' EventSource).
    pub async fn stream_token(&self, principal: &Principal, job_id: Uuid) -> Result<(String, OffsetDateTime)> {
        self.visible_job(principal, job_id).await?;
        let at = now();
        let subject =
            crate::auth::StreamSubject { user_id: principal.user.id, key_id: principal.key_id(), session_id: principal.session_id() };
        let token = self.settings.auth.issue_stream_token(&subject, job_id, at.unix_timestamp())?;
        Ok((token, at + time::Duration::seconds(crate::auth::STREAM_TOKEN_TTL_SECS)))
    }

    /// Who a stream token lets read the job's stream (as a principal for `job_events`): only
    /// while the key and session it was minted with are live.
    pub async fn stream_principal(&self, token: &str, job_id: Uuid) -> Result<Principal> {
        let subject = self.settings.auth.verify_stream_token(token, job_id)?;
        let user = self.store.user_by_id(subject.user_id).await?.filter(|u| u.is_active);
        let user = user.ok_or_else(|| Error::Unauthorized("the stream token's account is inactive".into()))?;
        let principal = Principal { user, method: AuthMethod::Stream { key_id: subject.key_id, session_id: subject.session_id } };
        self.check_credential_live(&principal).await?;
        Ok(principal)
    }

    /// A place for one more live stream of this caller, held until dropped: at most
    /// `streams_per_user` for the account and `streams_per_key` for the credential (the API
    /// key, or the session) at once. Each stream holds a connection and a poll; without a
    /// cap one account could hold every connection the server has.
    pub fn take_stream_place(&self, principal: &Principal) -> Result<crate::guard::Held> {
        let user_limit = self.settings.streams_per_user.max(1) as usize;
        let key_limit = self.settings.streams_per_key.max(1) as usize;
        let credential = principal.session_id().or(principal.key_id());
        let mut wanted = vec![(principal.user.id, user_limit)];
        wanted.extend(credential.map(|c| (c, key_limit)));
        self.streams.take(&wanted).map_err(|(id, limit)| {
            let (what, whose) =
                if id == principal.user.id { ("streams_per_user", "this account") } else { ("streams_per_key", "this API key or session") };
            crate::telemetry::metrics().count(crate::telemetry::Metric::ConnectionsRefused, &[("why", what)]);
            Error::TooMany {
                what,
                limit: limit as u64,
                message: format!("{whose} already has {limit} live streams open; close one (or poll the job) before opening another"),
            }
        })
    }

    /// The job and its live stream after event `after`. When the job has ended but its stream
    /// has no last event (a crash between the two writes), one is made from the job itself,
    /// numbered after the stored ones.
    pub async fn job_events(&self, principal: &Principal, job_id: Uuid, after: u32) -> Result<(Job, Vec<JobEvent>)> {
        let job = self.visible_job(principal, job_id).await?;
        // A stream is short (queued, three stages, a few progress steps, the end).
        let mut events = self.store.job_events(job_id, 0, JOB_EVENTS_MAX).await?;
        if job.status.is_ended() && !events.iter().any(|e| e.kind.is_terminal()) {
            let (kind, data) = match job.status {
                JobStatus::Complete => (JobEventKind::Complete, serde_json::json!({"score": job.score, "confidence": job.confidence})),
                _ => (JobEventKind::Failed, serde_json::json!({"errors": job.errors})),
            };
            let seq = events.last().map_or(1, |e| e.seq + 1);
            events.push(JobEvent { job_id, seq, kind, data, at: job.updated_at });
        }
        events.retain(|e| e.seq > after);
        Ok((job, events))
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
}

pub(super) fn validate_idempotency_key(key: &str) -> Result<()> {
    let ok = !key.is_empty() && key.len() <= IDEMPOTENCY_KEY_MAX && key.bytes().all(|b| b.is_ascii_graphic());
    if ok { Ok(()) } else { Err(Error::validation("Idempotency-Key", format!("1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters"))) }
}

pub(super) fn check_url(field: &str, url: &str, allow_loopback: bool, errors: &mut Vec<FieldError>) {
    if let Err(problem) = crate::net::check_target_url(url, allow_loopback) {
        errors.push(FieldError::new(field, problem));
    }
}

/// A video's URL is fetched by extraction, so it must be a direct link to the file: a
/// platform's page for the video is refused here, where the user can still fix it.
fn check_source_url(content_type: ContentType, url: &str, allow_loopback: bool, errors: &mut Vec<FieldError>) {
    match crate::net::check_target_url(url, allow_loopback) {
        Err(problem) => errors.push(FieldError::new("source_url", problem)),
        Ok(parsed) if content_type == ContentType::Video => {
            if let Some(platform) = crate::media::platform_page(&parsed) {
                errors.push(FieldError::new(
                    "source_url",
                    format!(
                        "this is a {platform} page, not a video file: download the video and upload it \
                         (POST /api/v1/uploads), or give a direct https:// link to the MP4, MOV or WebM file"
                    ),
                ));
            }
        }
        Ok(_) => {}
    }
}

/// Checks the rules of an analyze request and reports every broken one at once.
pub fn validate_analyze(input: &AnalyzeInput, settings: &Settings) -> Result<()> {
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
        check_source_url(input.content_type, u, settings.allow_loopback_media, &mut errors);
    }
    if let Some(u) = &input.notify_webhook {
        check_url("notify_webhook", u, settings.allow_loopback_webhooks, &mut errors);
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

    fn settings(loopback_webhooks: bool, loopback_media: bool) -> Settings {
        let auth = AuthConfig { jwt_secret: vec![7; 32], token_ttl_secs: 60, argon2_memory_kib: 8, argon2_iterations: 1 };
        Settings {
            auth,
            rate_limits: RateLimits::default(),
            usage: crate::usage::UsageTerms::default(),
            allow_loopback_webhooks: loopback_webhooks,
            allow_loopback_media: loopback_media,
            stream_heartbeat: std::time::Duration::from_secs(15),
            stream_max: std::time::Duration::from_secs(1_800),
            stream_base_url: None,
            streams_per_user: 10,
            streams_per_key: 5,
            secure_cookies: false,
            dashboard_origins: Vec::new(),
        }
    }

    fn check(input: &AnalyzeInput) -> Result<()> {
        validate_analyze(input, &settings(false, false))
    }

    #[test]
    fn loopback_http_webhooks_only_when_configured() {
        let mut t = text(Some("hi"));
        t.notify_webhook = Some("http://127.0.0.1:9000/hook".into());
        assert_eq!(fields(validate_analyze(&t, &settings(false, true))), ["notify_webhook"]);
        assert!(validate_analyze(&t, &settings(true, false)).is_ok());
        t.notify_webhook = Some("http://example.com/hook".into());
        assert_eq!(fields(validate_analyze(&t, &settings(true, false))), ["notify_webhook"]);
    }

    #[test]
    fn loopback_media_urls_only_when_configured() {
        let mut v = text(None);
        v.content_type = ContentType::Video;
        v.source_url = Some("http://127.0.0.1:9000/clip.mp4".into());
        assert_eq!(fields(validate_analyze(&v, &settings(true, false))), ["source_url"]);
        assert!(validate_analyze(&v, &settings(false, true)).is_ok());
    }

    #[test]
    fn a_platform_page_is_not_a_video_file() {
        let mut v = text(None);
        v.content_type = ContentType::Video;
        for page in ["https://www.tiktok.com/@creator/video/7301234567890123456", "https://www.youtube.com/watch?v=dQw4w9WgXcQ"] {
            v.source_url = Some(page.into());
            let Err(Error::Validation(errors)) = check(&v) else { panic!("{page} must be refused") };
            assert_eq!(errors[0].field, "source_url");
            assert!(errors[0].message.contains("upload"), "{}", errors[0].message);
        }
        // A post may link to its page: only videos are fetched.
        v.content_type = ContentType::Post;
        v.caption = Some("new post".into());
        assert!(check(&v).is_ok());
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
}
