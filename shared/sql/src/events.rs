//! Jobs' live streams (see the `job_events` migration): appended by the pipeline, read by the
//! events route. Numbers are the next after the job's last, in the appending statement itself.

use domain::model::{JobEvent, JobEventKind, from_micros, to_micros};
use domain::{Error, Result};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{SqlStore, db_error};

/// The first event of every job, written with it.
pub(crate) const QUEUED: &str =
    "INSERT INTO job_events (job_id, seq, kind, data, created_at) VALUES ($1::uuid, 1, 'queued', '{}', gv_ts($2))";

impl SqlStore {
    pub(crate) async fn write_job_event(&self, job_id: Uuid, kind: JobEventKind, data: &Value, at: OffsetDateTime) -> Result<Option<u32>> {
        // A repeated step (other than progress) or a number taken meanwhile conflicts and is
        // dropped; stages run one at a time per job, so the second cannot happen in practice.
        let q = "INSERT INTO job_events (job_id, seq, kind, data, created_at) \
                 SELECT $1::uuid, COALESCE(MAX(seq), 0) + 1, $2, $3, gv_ts($4) FROM job_events WHERE job_id = $1::uuid \
                 ON CONFLICT DO NOTHING RETURNING seq::bigint";
        let seq: Option<i64> = on_pool!(self, write, |pool, sql| {
            sqlx::query_scalar(&sql(q))
                .bind(job_id.to_string())
                .bind(kind.as_str())
                .bind(data.to_string())
                .bind(to_micros(at))
                .fetch_optional(pool)
                .await
                .map_err(db_error)?
        });
        Ok(seq.map(|s| s.max(0) as u32))
    }

    pub(crate) async fn read_job_events(&self, job_id: Uuid, after: u32, limit: u32) -> Result<Vec<JobEvent>> {
        let q =
            "SELECT seq::bigint, kind, data, gv_us(created_at) FROM job_events WHERE job_id = $1::uuid AND seq > $2 ORDER BY seq LIMIT $3";
        let rows: Vec<(i64, String, String, i64)> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(q))
                .bind(job_id.to_string())
                .bind(i64::from(after))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(db_error)?
        });
        rows.into_iter()
            .map(|(seq, kind, data, at)| {
                Ok(JobEvent {
                    job_id,
                    seq: seq.max(0) as u32,
                    kind: kind.parse().map_err(|_| Error::Internal(format!("job event kind {kind}")))?,
                    data: serde_json::from_str(&data).map_err(|e| Error::Internal(format!("job event data: {e}")))?,
                    at: from_micros(at),
                })
            })
            .collect()
    }
}
