//! Scheduled outcome collection (`cron-outcomes` on AWS, a timer in `goviral serve`): a job's
//! post, linked to a connected account, is read at once, then at about 24 hours and 7 days
//! after it was posted; each reading is an outcome (source `platform`). Throttling, spent
//! quotas and outages move a check later instead of losing it; a revoked grant or a deleted
//! post ends it with the reason kept.

use std::collections::BTreeMap;

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::accounts::{AccountFailure, AccountStatus, ConnectedAccount, PlatformError, PostStats};
use crate::error::{Error, Result};
use crate::model::{JobStatus, Platform, now};
use crate::outcomes::{OUTCOMES_PER_JOB_MAX, Outcome, OutcomeInput, OutcomeSource};
use crate::service::{App, Principal};

/// When a post is read, counted from when it was posted.
pub const CHECKS_AFTER: [Duration; 2] = [Duration::hours(24), Duration::days(7)];
/// A check that cannot be made is given up this long after its time.
pub const CHECK_GRACE: Duration = Duration::days(2);
/// How long a claimed check is held by one collector.
const LEASE: Duration = Duration::minutes(10);
/// A check that met an outage is tried again after this.
const RETRY_AFTER_OUTAGE: Duration = Duration::minutes(15);
/// Posts one job may have followed.
pub const TRACKED_PER_JOB_MAX: u32 = 10;
/// Instagram addresses are matched among this many of the account's latest posts.
const RECENT_SCAN: usize = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct TrackedPost {
    pub id: Uuid,
    pub job_id: Uuid,
    pub user_id: Uuid,
    pub account_id: Uuid,
    pub platform: Platform,
    pub post_id: String,
    pub post_url: Option<String>,
    pub posted_at: OffsetDateTime,
    /// The author's followers when the post was linked.
    pub followers: Option<u64>,
    /// None once every check is made (or given up).
    pub next_check_at: Option<OffsetDateTime>,
    pub checks_done: u32,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, Default)]
pub struct TrackInput {
    pub account_id: Uuid,
    pub post_url: Option<String>,
    pub post_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Tracked {
    pub post: TrackedPost,
    pub observation: Outcome,
}

/// The next scheduled check after `at`, for a post made at `posted_at`.
pub fn next_check(posted_at: OffsetDateTime, at: OffsetDateTime) -> Option<OffsetDateTime> {
    CHECKS_AFTER.iter().map(|d| posted_at + *d).find(|due| *due > at)
}

/// The check a post is due for at `at` has run out its grace.
fn expired(posted_at: OffsetDateTime, at: OffsetDateTime) -> bool {
    at > posted_at + CHECKS_AFTER[CHECKS_AFTER.len() - 1] + CHECK_GRACE
}

/// What one collection run did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CollectReport {
    pub due: u64,
    pub observed: u64,
    /// Moved later: throttled, quota spent, platform unavailable.
    pub deferred: u64,
    /// Ended: the post is gone, the grant revoked past the grace, or no longer readable.
    pub ended: u64,
    /// Long-lived tokens renewed ahead of expiry.
    pub tokens_refreshed: u64,
    pub accounts_needing_reconnect: u64,
}

fn same_post(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim_end_matches('/').replace("://www.", "://").to_ascii_lowercase();
    norm(a) == norm(b)
}

fn observation(post: &TrackedPost, stats: &PostStats, at: OffsetDateTime) -> Outcome {
    Outcome {
        id: Uuid::now_v7(),
        job_id: post.job_id,
        user_id: post.user_id,
        source: OutcomeSource::Platform,
        input: OutcomeInput {
            platform: Some(post.platform),
            post_url: post.post_url.clone().or_else(|| safe_permalink(stats, post.platform)),
            observed_at: at,
            views: stats.views,
            likes: stats.likes,
            comments: stats.comments,
            shares: stats.shares,
            followers: post.followers,
        },
        created_at: at,
    }
}

/// The platform's own address for the post, kept only when it is one we would accept from
/// a person (https, on the platform's hosts): it is shown as a link.
fn safe_permalink(stats: &PostStats, platform: crate::model::Platform) -> Option<String> {
    stats.permalink.clone().filter(|u| crate::outcomes::post_url_problem(u, Some(platform)).is_none())
}

fn platform_error(e: AccountFailure) -> Error {
    match e {
        AccountFailure::Store(e) => e,
        AccountFailure::Platform(p @ PlatformError::ShareSpent { .. }) => {
            p.share_refusal().unwrap_or_else(|| Error::Unavailable(p.to_string()))
        }
        AccountFailure::Platform(PlatformError::Revoked(m) | PlatformError::Forbidden(m) | PlatformError::Unauthorized(m)) => {
            Error::Conflict(format!("the account must be connected again: {m}"))
        }
        AccountFailure::Platform(PlatformError::NotFound(m)) => Error::validation("post_url", format!("not found on the platform: {m}")),
        AccountFailure::Platform(
            e @ (PlatformError::RateLimited { .. } | PlatformError::QuotaExhausted { .. } | PlatformError::Unavailable(_)),
        ) => Error::Unavailable(e.to_string()),
        AccountFailure::Platform(e) => Error::Unavailable(e.to_string()),
    }
}

impl App {
    /// Links a job to its post on a connected account: the post is read now (the first
    /// observation) and then at about 24 h and 7 days after posting.
    pub async fn track_post(&self, principal: &Principal, job_id: Uuid, input: TrackInput) -> Result<Tracked> {
        let job = self.visible_job(principal, job_id).await?;
        if job.status != JobStatus::Complete {
            return Err(Error::Conflict(format!("the job is {}: posts are followed for a finished prediction", job.status)));
        }
        let mut account = match self.store.account(input.account_id).await? {
            Some(a) if a.user_id == job.user_id => a,
            _ => return Err(Error::validation("account_id", "is not one of this account's connected accounts")),
        };
        if let Some(why) = input.post_url.as_deref().and_then(|u| crate::outcomes::post_url_problem(u, Some(account.platform))) {
            return Err(Error::validation("post_url", why));
        }
        if account.status != AccountStatus::Active {
            return Err(Error::Conflict("the account must be connected again before its posts can be read".into()));
        }
        let api = self.platform_api(account.platform)?;
        let post_id = match (&input.post_id, &input.post_url) {
            (Some(id), _) => id.clone(),
            (None, Some(url)) => match api.post_id(url) {
                Some(id) => id,
                None => self.find_by_permalink(&mut account, url).await?,
            },
            (None, None) => return Err(Error::validation("post_url", "give the post's address (or post_id)")),
        };
        let found = self.read_posts(&api, &mut account, std::slice::from_ref(&post_id)).await.map_err(platform_error)?;
        let stats = found
            .into_iter()
            .find(|p| p.post_id == post_id)
            .ok_or_else(|| Error::validation("post_url", format!("{} has no post {post_id} this account can read", account.platform)))?;
        if stats.author_id.as_ref().is_some_and(|a| *a != account.external_id) {
            return Err(Error::validation("post_url", "the post belongs to another account"));
        }
        let ext = account.external_id.clone();
        let followers = match self
            .with_token(&mut account, |t| {
                let (api, ext) = (api.clone(), ext.clone());
                async move { api.followers(&t, &ext).await }
            })
            .await
        {
            Ok(f) => f,
            Err(e) => {
                tracing::info!(error = %e, "followers not read; the post is followed without them");
                account.followers
            }
        };
        let at = now();
        let posted_at = stats.posted_at.filter(|p| *p <= at).unwrap_or(at);
        let post = TrackedPost {
            id: Uuid::now_v7(),
            job_id,
            user_id: job.user_id,
            account_id: account.id,
            platform: account.platform,
            post_id,
            post_url: input.post_url.clone().or_else(|| safe_permalink(&stats, account.platform)),
            posted_at,
            followers,
            next_check_at: next_check(posted_at, at),
            checks_done: 1,
            last_error: None,
            created_at: at,
        };
        if !self.store.create_tracked_post(&post, TRACKED_PER_JOB_MAX).await? {
            return Err(Error::Conflict(format!("this post is already followed, or the job follows {TRACKED_PER_JOB_MAX} posts")));
        }
        let observation = observation(&post, &stats, at);
        self.store.add_outcome(&observation, OUTCOMES_PER_JOB_MAX).await?;
        Ok(Tracked { post, observation })
    }

    async fn find_by_permalink(&self, account: &mut ConnectedAccount, url: &str) -> Result<String> {
        let api = self.platform_api(account.platform)?;
        let ext = account.external_id.clone();
        let recent = self
            .with_token(account, |t| {
                let (api, ext) = (api.clone(), ext.clone());
                async move { api.recent_posts(&t, &ext, RECENT_SCAN).await }
            })
            .await
            .map_err(platform_error)?;
        recent
            .into_iter()
            .find(|p| p.permalink.as_deref().is_some_and(|l| same_post(l, url)))
            .map(|p| p.post_id)
            .ok_or_else(|| Error::validation("post_url", format!("not among the account's latest {RECENT_SCAN} posts")))
    }

    pub async fn tracked_posts(&self, principal: &Principal, job_id: Uuid) -> Result<Vec<TrackedPost>> {
        self.visible_job(principal, job_id).await?;
        self.store.tracked_posts_for_job(job_id).await
    }

    /// One collection run: renews long-lived tokens close to expiry, then reads every post
    /// whose check is due (at most `limit`), grouped by account.
    pub async fn collect_outcomes(&self, limit: u32) -> Result<CollectReport> {
        self.collect_outcomes_at(now(), limit).await
    }

    /// [`Self::collect_outcomes`] as if it were `at` (checks due by then are read, and the
    /// next ones scheduled from it).
    pub async fn collect_outcomes_at(&self, at: OffsetDateTime, limit: u32) -> Result<CollectReport> {
        let mut report = CollectReport::default();
        self.renew_tokens(at, &mut report).await?;
        let due = self.store.claim_due_posts(at, at + LEASE, limit).await?;
        report.due = due.len() as u64;
        let mut by_account: BTreeMap<Uuid, Vec<TrackedPost>> = BTreeMap::new();
        for post in due {
            by_account.entry(post.account_id).or_default().push(post);
        }
        let mut spent: BTreeMap<Platform, OffsetDateTime> = BTreeMap::new();
        for (account_id, posts) in by_account {
            let Some(mut account) = self.store.account(account_id).await? else { continue };
            if let Some(until) = spent.get(&account.platform) {
                for p in &posts {
                    self.reschedule(p, at, Some(*until), Some("the platform quota is spent"), &mut report).await?;
                }
                continue;
            }
            // The platform's app may have been removed from this deployment since: the checks
            // wait (and end past their grace) rather than stall the run.
            let api = match self.platform_api(account.platform) {
                Ok(api) => api,
                Err(e) => {
                    for p in &posts {
                        self.reschedule(p, at, Some(at + Duration::days(1)), Some(&e.to_string()), &mut report).await?;
                    }
                    continue;
                }
            };
            let ids: Vec<String> = posts.iter().map(|p| p.post_id.clone()).collect();
            let read = self.read_posts(&api, &mut account, &ids).await;
            match read {
                Ok(found) => {
                    for post in &posts {
                        match found.iter().find(|s| s.post_id == post.post_id) {
                            Some(stats) => {
                                self.store.add_outcome(&observation(post, stats, at), OUTCOMES_PER_JOB_MAX).await?;
                                let next = next_check(post.posted_at, at);
                                self.store.update_tracked_post(post.id, next, post.checks_done + 1, None).await?;
                                report.observed += 1;
                            }
                            None => {
                                self.store
                                    .update_tracked_post(post.id, None, post.checks_done, Some("the post is gone or no longer visible"))
                                    .await?;
                                report.ended += 1;
                            }
                        }
                    }
                }
                Err(AccountFailure::Store(e)) => return Err(e),
                Err(AccountFailure::Platform(e)) => {
                    let (until, why) = match &e {
                        PlatformError::QuotaExhausted { until } => {
                            spent.insert(account.platform, *until);
                            (Some(*until), e.to_string())
                        }
                        PlatformError::RateLimited { retry_after } => {
                            (Some(at + Duration::seconds(retry_after.as_secs().max(1) as i64)), e.to_string())
                        }
                        // This creator's share is spent: their posts wait, the others' go on.
                        PlatformError::ShareSpent { until, .. } => (Some(*until), e.to_string()),
                        PlatformError::Revoked(_) | PlatformError::Forbidden(_) | PlatformError::Unauthorized(_) => {
                            report.accounts_needing_reconnect += 1;
                            (Some(at + Duration::days(1)), format!("reconnect the account: {e}"))
                        }
                        _ => (Some(at + RETRY_AFTER_OUTAGE), e.to_string()),
                    };
                    for p in &posts {
                        self.reschedule(p, at, until, Some(&why), &mut report).await?;
                    }
                }
            }
        }
        Ok(report)
    }

    /// Moves a check later, or ends it once past its grace.
    async fn reschedule(
        &self,
        post: &TrackedPost,
        at: OffsetDateTime,
        until: Option<OffsetDateTime>,
        why: Option<&str>,
        report: &mut CollectReport,
    ) -> Result<()> {
        let next = until.filter(|u| !expired(post.posted_at, *u));
        if next.is_none() || expired(post.posted_at, at) {
            self.store.update_tracked_post(post.id, None, post.checks_done, why).await?;
            report.ended += 1;
        } else {
            self.store.update_tracked_post(post.id, next, post.checks_done, why).await?;
            report.deferred += 1;
        }
        Ok(())
    }

    /// Long-lived tokens that refresh with themselves (Instagram's) must be renewed before
    /// they expire; the others refresh on use.
    async fn renew_tokens(&self, at: OffsetDateTime, report: &mut CollectReport) -> Result<()> {
        let Some(_) = &self.platforms else { return Ok(()) };
        for mut account in self.store.accounts_to_renew(at + Duration::days(7), 100).await? {
            match self.refresh_account(&mut account).await {
                Ok(_) => report.tokens_refreshed += 1,
                Err(AccountFailure::Store(e)) => return Err(e),
                Err(AccountFailure::Platform(e)) => {
                    tracing::warn!(account = %account.id, platform = %account.platform, error = %e, "a token could not be renewed");
                    if account.status != AccountStatus::Active {
                        report.accounts_needing_reconnect += 1;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn checks_fall_at_a_day_and_a_week() {
        let posted = datetime!(2026-12-01 10:00 UTC);
        assert_eq!(next_check(posted, datetime!(2026-12-01 10:05 UTC)), Some(datetime!(2026-12-02 10:00 UTC)));
        assert_eq!(next_check(posted, datetime!(2026-12-02 10:00 UTC)), Some(datetime!(2026-12-08 10:00 UTC)), "the 24 h check made");
        assert_eq!(next_check(posted, datetime!(2026-12-03 00:00 UTC)), Some(datetime!(2026-12-08 10:00 UTC)));
        assert_eq!(next_check(posted, datetime!(2026-12-08 10:00 UTC)), None, "both made");
        assert!(!expired(posted, datetime!(2026-12-10 09:59 UTC)));
        assert!(expired(posted, datetime!(2026-12-10 10:01 UTC)));
    }

    #[test]
    fn permalinks_match_loosely() {
        assert!(same_post("https://www.instagram.com/p/C0deXyz/", "https://instagram.com/p/C0deXyz"));
        assert!(!same_post("https://www.instagram.com/p/C0deXyz/", "https://www.instagram.com/p/Other/"));
    }
}
