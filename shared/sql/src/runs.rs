//! `RunQueue` over SQL: the local runner's durable executions.

use async_trait::async_trait;
use domain::Result;
use domain::ports::{PipelineRun, RunQueue, RunShares};
use uuid::Uuid;

use crate::rows::{RunRow, convert};
use crate::{SqlStore, db_error};

#[async_trait]
impl RunQueue for SqlStore {
    async fn start_run(&self, run: &PipelineRun, now_us: i64) -> Result<bool> {
        let q = "INSERT INTO pipeline_runs (job_id, state, data, attempt, next_run_at_us, lease_until_us, created_at_us, updated_at_us, user_id) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $6, (SELECT user_id::text FROM analysis_jobs WHERE id = $1::uuid)) ON CONFLICT (job_id) DO NOTHING";
        let inserted = on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q))
                .bind(run.job_id.to_string())
                .bind(&run.state)
                .bind(run.data.to_string())
                .bind(run.attempt as i64)
                .bind(run.next_run_at_us)
                .bind(now_us)
                .execute(pool)
                .await
                .map_err(db_error)?
                .rows_affected()
        });
        Ok(inserted == 1)
    }

    async fn claim_runs(&self, now_us: i64, lease_until_us: i64, limit: u32, shares: RunShares) -> Result<Vec<PipelineRun>> {
        let (per_user, alone) = (shares.per_user.max(1) as i64, shares.alone.max(shares.per_user).max(1) as i64);
        // Fair turns: users already at their share of runs under way are passed over; of the
        // earliest due runs of the others (a bounded set, so a long backlog costs an index
        // scan, not a sort), each user's are numbered in due order, counting on from the runs
        // of theirs under way; turn 1 of every user goes before anyone's turn 2. The share is
        // `per_user` ($4) while several users are due or under way, `alone` ($6) otherwise.
        // (`lease_until_us > 0` lets the planner use the partial index of leased runs: the
        // finished ones, which are most of the table, are never read.)
        let q = "UPDATE pipeline_runs SET lease_until_us = $2 WHERE job_id IN (\
                   WITH busy AS (SELECT user_id, COUNT(*) AS n FROM pipeline_runs \
                                 WHERE outcome IS NULL AND lease_until_us > 0 AND lease_until_us > $1 GROUP BY user_id), \
                   candidates AS (SELECT job_id, user_id, next_run_at_us FROM pipeline_runs \
                                  WHERE outcome IS NULL AND next_run_at_us <= $1 AND lease_until_us <= $1 \
                                    AND COALESCE(user_id, '') NOT IN (SELECT COALESCE(user_id, '') FROM busy WHERE n >= $6) \
                                  ORDER BY next_run_at_us LIMIT $5), \
                   share AS (SELECT CASE WHEN (SELECT COUNT(*) FROM (SELECT user_id FROM candidates UNION SELECT user_id FROM busy) u) > 1 \
                                         THEN $4 ELSE $6 END AS n), \
                   due AS (SELECT job_id, user_id, next_run_at_us, \
                                  ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY next_run_at_us, job_id) AS turn \
                           FROM candidates) \
                   SELECT due.job_id FROM due LEFT JOIN busy ON busy.user_id = due.user_id \
                   WHERE due.turn + COALESCE(busy.n, 0) <= (SELECT n FROM share) \
                   ORDER BY due.turn + COALESCE(busy.n, 0), due.next_run_at_us LIMIT $3) \
                 RETURNING job_id, state, data, attempt::bigint AS attempt, next_run_at_us";
        // Enough candidates for every slot even if each user has their share of them in front.
        let candidates = (limit as i64).saturating_mul(per_user).clamp(1, 1_024);
        let rows: Vec<RunRow> = on_pool!(self, write, |pool, sql| {
            sqlx::query_as(&sql(q))
                .bind(now_us)
                .bind(lease_until_us)
                .bind(limit as i64)
                .bind(per_user)
                .bind(candidates)
                .bind(alone)
                .fetch_all(pool)
                .await
                .map_err(db_error)?
        });
        convert(rows)
    }

    async fn save_run(&self, run: &PipelineRun, lease_until_us: i64, now_us: i64) -> Result<()> {
        let q = "UPDATE pipeline_runs SET state = $2, data = $3, attempt = $4, next_run_at_us = $5, lease_until_us = $7, updated_at_us = $6 \
                 WHERE job_id = $1";
        on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q))
                .bind(run.job_id.to_string())
                .bind(&run.state)
                .bind(run.data.to_string())
                .bind(run.attempt as i64)
                .bind(run.next_run_at_us)
                .bind(now_us)
                .bind(lease_until_us)
                .execute(pool)
                .await
                .map_err(db_error)?;
        });
        Ok(())
    }

    async fn start_runs_for_queued(&self, state: &str, now_us: i64, limit: u32) -> Result<u64> {
        let q = "INSERT INTO pipeline_runs (job_id, state, data, attempt, next_run_at_us, lease_until_us, created_at_us, updated_at_us, user_id) \
                 SELECT id::text, $1, '{\"job_id\":\"' || id::text || '\"}', 0, $2, 0, $2, $2, user_id::text FROM analysis_jobs \
                 WHERE status = 'queued' AND NOT EXISTS (SELECT 1 FROM pipeline_runs r WHERE r.job_id = analysis_jobs.id::text) \
                 ORDER BY created_at LIMIT $3 ON CONFLICT (job_id) DO NOTHING";
        let started = on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q)).bind(state).bind(now_us).bind(limit as i64).execute(pool).await.map_err(db_error)?.rows_affected()
        });
        Ok(started)
    }

    async fn release_leases(&self) -> Result<()> {
        let q = "UPDATE pipeline_runs SET lease_until_us = 0 WHERE outcome IS NULL AND lease_until_us > 0";
        on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q)).execute(pool).await.map_err(db_error)?;
        });
        Ok(())
    }

    async fn finish_run(&self, job_id: Uuid, outcome: &str, now_us: i64) -> Result<()> {
        let q = "UPDATE pipeline_runs SET outcome = $2, lease_until_us = 0, updated_at_us = $3 WHERE job_id = $1";
        on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q)).bind(job_id.to_string()).bind(outcome).bind(now_us).execute(pool).await.map_err(db_error)?;
        });
        Ok(())
    }

    async fn next_due_us(&self) -> Result<Option<i64>> {
        let q = "SELECT min(CASE WHEN lease_until_us > next_run_at_us THEN lease_until_us ELSE next_run_at_us END) FROM pipeline_runs \
                 WHERE outcome IS NULL";
        let due: Option<i64> = on_pool!(self, read, |pool, sql| sqlx::query_scalar(&sql(q)).fetch_one(pool).await.map_err(db_error)?);
        Ok(due)
    }
}
