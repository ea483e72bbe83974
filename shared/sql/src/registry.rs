//! The model registry (see the `model_registry` migration).

use domain::model::{from_micros, to_micros};
use domain::registry::{Decision, ModelState, ModelVersion};
use domain::{Error, Result};
use uuid::Uuid;

use crate::{SqlStore, db_error};

const COLS: &str = "id::text AS id, name, version::bigint AS version, state, artifact_key, artifact_sha256, \
                    artifact_bytes::bigint AS artifact_bytes, training_data_hash, code_version, metrics::text AS metrics, gate_passed, \
                    gv_us(created_at) AS created_at, decided_by, gv_us(decided_at) AS decided_at, decision_note, overridden, \
                    gv_us(serving_since) AS serving_since";

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    name: String,
    version: i64,
    state: String,
    artifact_key: String,
    artifact_sha256: String,
    artifact_bytes: i64,
    training_data_hash: String,
    code_version: String,
    metrics: String,
    gate_passed: bool,
    created_at: i64,
    decided_by: Option<String>,
    decided_at: Option<i64>,
    decision_note: Option<String>,
    overridden: bool,
    serving_since: Option<i64>,
}

fn version(r: Row) -> Result<ModelVersion> {
    let bad = |what: &str, v: &str| Error::Internal(format!("model version {what} {v}"));
    Ok(ModelVersion {
        id: r.id.parse().map_err(|_| bad("id", &r.id))?,
        name: r.name,
        version: r.version.clamp(0, i64::from(u32::MAX)) as u32,
        state: ModelState::parse(&r.state).ok_or_else(|| bad("state", &r.state))?,
        artifact_key: r.artifact_key,
        artifact_sha256: r.artifact_sha256,
        artifact_bytes: r.artifact_bytes.max(0) as u64,
        training_data_hash: r.training_data_hash,
        code_version: r.code_version,
        metrics: serde_json::from_str(&r.metrics).map_err(|e| bad("metrics", &e.to_string()))?,
        gate_passed: r.gate_passed,
        created_at: from_micros(r.created_at),
        decided_by: r.decided_by,
        decided_at: r.decided_at.map(from_micros),
        decision_note: r.decision_note,
        overridden: r.overridden,
        serving_since: r.serving_since.map(from_micros),
    })
}

impl SqlStore {
    async fn versions_where(&self, filter: &str, binds: &[String], limit: u32) -> Result<Vec<ModelVersion>> {
        let q = format!("SELECT {COLS} FROM model_versions WHERE {filter} LIMIT {limit}");
        let rows: Vec<Row> = on_pool!(self, read, |pool, sql| {
            let q = sql(&q);
            let mut query = sqlx::query_as(&q);
            for b in binds {
                query = query.bind(b.clone());
            }
            query.fetch_all(pool).await.map_err(db_error)?
        });
        rows.into_iter().map(version).collect()
    }

    pub(crate) async fn write_model_version(&self, v: &ModelVersion) -> Result<ModelVersion> {
        // Numbered after the name's last version in the same statement; a concurrent
        // registration under the same number fails on (name, version) and may be retried.
        let q = "INSERT INTO model_versions (id, name, version, state, artifact_key, artifact_sha256, artifact_bytes, training_data_hash, \
                 code_version, metrics, gate_passed, created_at) \
                 SELECT $1::uuid, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, gv_ts($11) \
                 FROM model_versions WHERE name = $2";
        on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q))
                .bind(v.id.to_string())
                .bind(&v.name)
                .bind(v.state.as_str())
                .bind(&v.artifact_key)
                .bind(&v.artifact_sha256)
                .bind(v.artifact_bytes.min(i64::MAX as u64) as i64)
                .bind(&v.training_data_hash)
                .bind(&v.code_version)
                .bind(v.metrics.to_string())
                .bind(v.gate_passed)
                .bind(to_micros(v.created_at))
                .execute(pool)
                .await
                .map_err(db_error)?
                .rows_affected()
        });
        self.read_model_version(v.id).await?.ok_or_else(|| Error::Internal("the registered version was not stored".into()))
    }

    pub(crate) async fn read_model_versions(&self, limit: u32) -> Result<Vec<ModelVersion>> {
        self.versions_where("true ORDER BY created_at DESC, id DESC", &[], limit).await
    }

    pub(crate) async fn read_model_version(&self, id: Uuid) -> Result<Option<ModelVersion>> {
        Ok(self.versions_where("id = $1::uuid", &[id.to_string()], 1).await?.into_iter().next())
    }

    pub(crate) async fn read_serving_version(&self, name: &str) -> Result<Option<ModelVersion>> {
        Ok(self.versions_where("name = $1 AND state = 'serving'", &[name.to_string()], 1).await?.into_iter().next())
    }

    pub(crate) async fn read_previous_serving(&self, name: &str) -> Result<Option<ModelVersion>> {
        let filter = "name = $1 AND state = 'retired' AND serving_since IS NOT NULL ORDER BY serving_since DESC, id DESC";
        Ok(self.versions_where(filter, &[name.to_string()], 1).await?.into_iter().next())
    }

    pub(crate) async fn write_decision(&self, d: &Decision) -> Result<bool> {
        let from: Vec<&str> = d.from.iter().map(|s| s.as_str()).collect();
        // The states are ours, never a client's: listed inline.
        let from = from.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
        let retire = "UPDATE model_versions SET state = 'retired' WHERE state = 'serving' \
                      AND name = (SELECT name FROM model_versions WHERE id = $1::uuid) AND id <> $1::uuid";
        let decide = format!(
            "UPDATE model_versions SET state = $2, decided_by = $3, decided_at = gv_ts($4), decision_note = COALESCE($5, decision_note), \
             overridden = overridden OR $6, serving_since = CASE WHEN $2 = 'serving' THEN gv_ts($4) ELSE serving_since END \
             WHERE id = $1::uuid AND state IN ({from})"
        );
        let done = on_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin().await.map_err(db_error)?;
            // Checked first, so a refused decision retires nothing.
            let q = format!("SELECT COUNT(*) FROM model_versions WHERE id = $1::uuid AND state IN ({from})");
            let eligible: i64 = sqlx::query_scalar(&sql(&q)).bind(d.id.to_string()).fetch_one(&mut *tx).await.map_err(db_error)?;
            if eligible == 0 {
                return Ok(false);
            }
            if d.to == ModelState::Serving {
                sqlx::query(&sql(retire)).bind(d.id.to_string()).execute(&mut *tx).await.map_err(db_error)?;
            }
            let n = sqlx::query(&sql(&decide))
                .bind(d.id.to_string())
                .bind(d.to.as_str())
                .bind(&d.by)
                .bind(to_micros(d.at))
                .bind(&d.note)
                .bind(d.overridden)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected();
            tx.commit().await.map_err(db_error)?;
            n
        });
        Ok(done == 1)
    }
}
