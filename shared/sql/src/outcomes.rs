//! Observations of jobs' posts (see the `outcomes` migration): appended, never updated.

use domain::baseline::PastResult;
use domain::model::Platform;
use domain::model::{from_micros, to_micros};
use domain::outcomes::{Outcome, OutcomeInput, OutcomeSource};
use domain::{Error, Result};
use uuid::Uuid;

use crate::{SqlStore, db_error};

type Row =
    (String, String, Option<String>, Option<String>, i64, Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<i64>, String, i64);

impl SqlStore {
    pub(crate) async fn write_outcome(&self, o: &Outcome, max: u32) -> Result<bool> {
        // One statement: written only while the job has fewer than `max` (a storage bound;
        // concurrent writers may pass it by the few that race).
        let q = "INSERT INTO job_outcomes (id, job_id, user_id, platform, post_url, observed_at, views, likes, comments, shares, followers, source, created_at) \
                 SELECT $1::uuid, $2::uuid, $3::uuid, $4, $5, gv_ts($6), $7, $8, $9, $10, $11, $12, gv_ts($13) \
                 WHERE (SELECT COUNT(*) FROM job_outcomes WHERE job_id = $2::uuid) < $14 RETURNING id::text";
        let count = |v: Option<u64>| v.map(|v| v.min(i64::MAX as u64) as i64);
        let i = &o.input;
        let written: Option<String> = on_pool!(self, write, |pool, sql| {
            sqlx::query_scalar(&sql(q))
                .bind(o.id.to_string())
                .bind(o.job_id.to_string())
                .bind(o.user_id.to_string())
                .bind(i.platform.map(|p| p.as_str().to_string()))
                .bind(i.post_url.clone())
                .bind(to_micros(i.observed_at))
                .bind(count(i.views))
                .bind(count(i.likes))
                .bind(count(i.comments))
                .bind(count(i.shares))
                .bind(count(i.followers))
                .bind(o.source.as_str())
                .bind(to_micros(o.created_at))
                .bind(i64::from(max))
                .fetch_optional(pool)
                .await
                .map_err(db_error)?
        });
        Ok(written.is_some())
    }

    pub(crate) async fn read_outcomes(&self, job_id: Uuid, limit: u32) -> Result<Vec<Outcome>> {
        let q = "SELECT id::text, user_id::text, platform, post_url, gv_us(observed_at), views, likes, comments, shares, followers, source, gv_us(created_at) \
                 FROM job_outcomes WHERE job_id = $1::uuid ORDER BY observed_at DESC, id DESC LIMIT $2";
        let rows: Vec<Row> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(q)).bind(job_id.to_string()).bind(i64::from(limit)).fetch_all(pool).await.map_err(db_error)?
        });
        let bad = |what: &str, v: &str| Error::Internal(format!("outcome {what} {v}"));
        let count = |v: Option<i64>| v.map(|v| v.max(0) as u64);
        rows.into_iter()
            .map(|(id, user, platform, post_url, observed, views, likes, comments, shares, followers, source, created)| {
                Ok(Outcome {
                    id: id.parse().map_err(|_| bad("id", &id))?,
                    job_id,
                    user_id: user.parse().map_err(|_| bad("user", &user))?,
                    source: match source.as_str() {
                        "api" => OutcomeSource::Api,
                        "platform" => OutcomeSource::Platform,
                        other => return Err(bad("source", other)),
                    },
                    input: OutcomeInput {
                        platform: platform.as_deref().map(|p| p.parse().map_err(|_| bad("platform", p))).transpose()?,
                        post_url,
                        observed_at: from_micros(observed),
                        views: count(views),
                        likes: count(likes),
                        comments: count(comments),
                        shares: count(shares),
                        followers: count(followers),
                    },
                    created_at: from_micros(created),
                })
            })
            .collect()
    }
}

impl SqlStore {
    pub(crate) async fn read_past_results(
        &self,
        user_id: Uuid,
        platform: Option<Platform>,
        exclude: Uuid,
        limit: u32,
    ) -> Result<Vec<PastResult>> {
        // Each job once: its latest observation with views.
        let q = "SELECT j.id::text, j.score::float8, o.views, gv_us(o.observed_at) FROM job_outcomes o JOIN analysis_jobs j ON j.id = o.job_id \
                 WHERE o.user_id = $1::uuid AND j.id <> $2::uuid AND j.score IS NOT NULL AND j.archived_at IS NULL AND o.views IS NOT NULL \
                 AND ($3::text IS NULL OR o.platform = $3::text) \
                 AND o.id = (SELECT o2.id FROM job_outcomes o2 WHERE o2.job_id = o.job_id AND o2.views IS NOT NULL \
                             ORDER BY o2.observed_at DESC, o2.id DESC LIMIT 1) \
                 ORDER BY o.observed_at DESC LIMIT $4";
        let rows: Vec<(String, f64, i64, i64)> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(q))
                .bind(user_id.to_string())
                .bind(exclude.to_string())
                .bind(platform.map(|p| p.as_str().to_string()))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(db_error)?
        });
        rows.into_iter()
            .map(|(id, score, views, observed)| {
                Ok(PastResult {
                    job_id: id.parse().map_err(|_| Error::Internal(format!("past result job {id}")))?,
                    score,
                    views: views.max(0) as u64,
                    observed_at: from_micros(observed),
                })
            })
            .collect()
    }
}

impl SqlStore {
    pub(crate) async fn read_training_observations(&self, limit: u32) -> Result<Vec<domain::outcomes::TrainingObservation>> {
        // Each job once, by its latest reading with views; its age from the followed post's
        // posting time where known, else from when it was analysed.
        let q = "SELECT j.user_id::text, o.platform, s.caption, o.views, o.followers, gv_us(o.observed_at), \
                 gv_us(COALESCE((SELECT MIN(t.posted_at) FROM tracked_posts t WHERE t.job_id = j.id), j.created_at)) \
                 FROM job_outcomes o JOIN analysis_jobs j ON j.id = o.job_id JOIN content_submissions s ON s.id = j.submission_id \
                 WHERE o.views IS NOT NULL AND s.caption IS NOT NULL AND j.score IS NOT NULL AND j.archived_at IS NULL \
                 AND o.id = (SELECT o2.id FROM job_outcomes o2 WHERE o2.job_id = o.job_id AND o2.views IS NOT NULL \
                             ORDER BY o2.observed_at DESC, o2.id DESC LIMIT 1) \
                 ORDER BY o.observed_at DESC LIMIT $1";
        type Row = (String, Option<String>, String, i64, Option<i64>, i64, i64);
        let rows: Vec<Row> =
            on_pool!(self, read, |pool, sql| sqlx::query_as(&sql(q)).bind(i64::from(limit)).fetch_all(pool).await.map_err(db_error)?);
        rows.into_iter()
            .map(|(user, platform, text, views, followers, observed, posted)| {
                Ok(domain::outcomes::TrainingObservation {
                    user_id: user.parse().map_err(|_| Error::Internal(format!("observation user {user}")))?,
                    platform: platform.as_deref().and_then(|p| p.parse().ok()),
                    text,
                    views: views.max(0) as u64,
                    followers: followers.map(|f| f.max(0) as u64),
                    age_hours: ((observed - posted) as f64 / 3.6e9).max(0.0),
                })
            })
            .collect()
    }
}
