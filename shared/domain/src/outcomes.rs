//! What content did once posted: observations of a job's post (views, likes, comments, shares,
//! and the author's followers at posting), kept as a history per job beside its prediction.
//! They are what the learning loop (creator baselines, retraining) is built from.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Error, FieldError, Result};
use crate::model::{JobStatus, Platform, now};
use crate::service::{App, Principal};

/// Observations kept per job; past it, 409 (a post is observed a few times, not thousands).
pub const OUTCOMES_PER_JOB_MAX: u32 = 1_000;
/// Counts above this are not real.
pub const COUNT_MAX: u64 = 1_000_000_000_000;
/// Clock skew allowed for an observation "now".
const FUTURE_SKEW_SECS: i64 = 300;

/// Who reported an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeSource {
    /// The customer, through `POST /api/v1/analyze/{id}/outcome`.
    Api,
    /// Read from the platform, for a post followed on a connected account.
    Platform,
}

impl OutcomeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeSource::Api => "api",
            OutcomeSource::Platform => "platform",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeInput {
    pub platform: Option<Platform>,
    pub post_url: Option<String>,
    pub observed_at: OffsetDateTime,
    pub views: Option<u64>,
    pub likes: Option<u64>,
    pub comments: Option<u64>,
    pub shares: Option<u64>,
    pub followers: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub id: Uuid,
    pub job_id: Uuid,
    pub user_id: Uuid,
    pub source: OutcomeSource,
    pub input: OutcomeInput,
    pub created_at: OffsetDateTime,
}

/// A complete job's text and its latest observation with views: what retraining learns from.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingObservation {
    pub user_id: Uuid,
    pub platform: Option<Platform>,
    pub text: String,
    pub views: u64,
    pub followers: Option<u64>,
    /// Hours from posting (or, not knowing it, from the analysis) to the reading.
    pub age_hours: f64,
}

/// A job's prediction and what was observed of it, newest observation first.
#[derive(Debug, Clone)]
pub struct OutcomeHistory {
    pub job: crate::model::Job,
    pub observations: Vec<Outcome>,
}

/// The hosts a platform's posts live on.
fn platform_hosts(p: Platform) -> &'static [&'static str] {
    match p {
        Platform::Tiktok => &["tiktok.com"],
        Platform::Youtube => &["youtube.com", "youtu.be"],
        Platform::Instagram => &["instagram.com"],
        Platform::X => &["x.com", "twitter.com"],
    }
}

pub fn validate_outcome(input: &OutcomeInput, at: OffsetDateTime) -> Result<()> {
    let mut errors = Vec::new();
    if input.observed_at > at + time::Duration::seconds(FUTURE_SKEW_SECS) {
        errors.push(FieldError::new("observed_at", "is in the future"));
    }
    if input.observed_at.year() < 2005 {
        errors.push(FieldError::new("observed_at", "is before any of these platforms existed"));
    }
    let counts = [
        ("views", input.views),
        ("likes", input.likes),
        ("comments", input.comments),
        ("shares", input.shares),
        ("followers", input.followers),
    ];
    for (field, value) in counts {
        if value.is_some_and(|v| v > COUNT_MAX) {
            errors.push(FieldError::new(field, format!("at most {COUNT_MAX}")));
        }
    }
    if counts.iter().all(|(_, v)| v.is_none()) {
        errors.push(FieldError::new("body", "give at least one of views, likes, comments, shares, followers"));
    }
    if let Some(why) = input.post_url.as_deref().and_then(|url| post_url_problem(url, input.platform)) {
        errors.push(FieldError::new("post_url", why));
    }
    if errors.is_empty() { Ok(()) } else { Err(Error::Validation(errors)) }
}

/// What is wrong with a post's address, if anything: every address we keep (typed in,
/// given when following a post, or read from a platform) is https, at most 2,048
/// characters, and on the platform's own hosts, so it is safe to show as a link.
pub fn post_url_problem(url: &str, platform: Option<Platform>) -> Option<String> {
    match url::Url::parse(url) {
        Ok(u) if u.scheme() == "https" && url.len() <= 2048 && u.username().is_empty() && u.password().is_none() => {
            let host = u.host_str().unwrap_or_default().trim_start_matches("www.").trim_start_matches("m.");
            let p = platform?;
            let on_platform = platform_hosts(p).iter().any(|h| host == *h || host.ends_with(&format!(".{h}")));
            (!on_platform).then(|| format!("is not a {p} address ({})", platform_hosts(p).join(", ")))
        }
        _ => Some("must be an https:// URL of at most 2,048 characters".into()),
    }
}

impl App {
    /// Records an observation of a job's post (the job must be the caller's and complete).
    pub async fn record_outcome(&self, principal: &Principal, job_id: Uuid, input: OutcomeInput) -> Result<Outcome> {
        let at = now();
        validate_outcome(&input, at)?;
        let job = self.visible_job(principal, job_id).await?;
        if job.status != JobStatus::Complete {
            return Err(Error::Conflict(format!("the job is {}: outcomes are recorded against a finished prediction", job.status)));
        }
        let outcome = Outcome { id: Uuid::now_v7(), job_id, user_id: job.user_id, source: OutcomeSource::Api, input, created_at: at };
        if !self.store.add_outcome(&outcome, OUTCOMES_PER_JOB_MAX).await? {
            return Err(Error::Conflict(format!("this job already has {OUTCOMES_PER_JOB_MAX} observations")));
        }
        Ok(outcome)
    }

    pub async fn outcomes(&self, principal: &Principal, job_id: Uuid) -> Result<OutcomeHistory> {
        let job = self.visible_job(principal, job_id).await?;
        let observations = self.store.outcomes(job_id, OUTCOMES_PER_JOB_MAX).await?;
        Ok(OutcomeHistory { job, observations })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::validation_fields;
    use time::macros::datetime;

    fn input() -> OutcomeInput {
        OutcomeInput {
            platform: Some(Platform::Tiktok),
            post_url: Some("https://www.tiktok.com/@ann/video/123".into()),
            observed_at: datetime!(2026-12-01 12:00 UTC),
            views: Some(1_000),
            likes: None,
            comments: None,
            shares: None,
            followers: Some(5_000),
        }
    }

    #[test]
    fn an_observation_is_checked_field_by_field() {
        let at = datetime!(2026-12-02 0:00 UTC);
        assert!(validate_outcome(&input(), at).is_ok());
        let future = OutcomeInput { observed_at: at + time::Duration::hours(1), ..input() };
        assert_eq!(validation_fields(validate_outcome(&future, at)), ["observed_at"]);
        let empty = OutcomeInput { views: None, followers: None, ..input() };
        assert_eq!(validation_fields(validate_outcome(&empty, at)), ["body"]);
        let wrong_site = OutcomeInput { post_url: Some("https://youtu.be/abc".into()), ..input() };
        assert_eq!(validation_fields(validate_outcome(&wrong_site, at)), ["post_url"]);
        let http = OutcomeInput { post_url: Some("http://tiktok.com/x".into()), views: Some(COUNT_MAX + 1), ..input() };
        assert_eq!(validation_fields(validate_outcome(&http, at)), ["views", "post_url"]);
        let no_platform = OutcomeInput { platform: None, post_url: Some("https://example.com/p/1".into()), ..input() };
        assert!(validate_outcome(&no_platform, at).is_ok());
    }
}
