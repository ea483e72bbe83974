//! `Counters` over SQL: the embedded default's rate limits and idempotency keys.

use async_trait::async_trait;
use domain::Result;
use domain::ports::{Counters, IdempotencyRecord, Reservation};
use uuid::Uuid;

use crate::rows::uuid;
use crate::{SqlStore, db_error};

#[async_trait]
impl Counters for SqlStore {
    async fn increment(&self, key: &str, expires_at_us: i64, now_us: i64) -> Result<u64> {
        // One statement: atomic under concurrent callers on both backends.
        let q = "INSERT INTO counters (key, value, expires_at_us) VALUES ($1, 1, $2) ON CONFLICT (key) DO UPDATE SET \
                 value = CASE WHEN counters.expires_at_us <= $3 THEN 1 ELSE counters.value + 1 END, \
                 expires_at_us = CASE WHEN counters.expires_at_us <= $3 THEN excluded.expires_at_us ELSE counters.expires_at_us END \
                 RETURNING value";
        let value: i64 = on_pool!(self, write, |pool, sql| {
            sqlx::query_scalar(&sql(q)).bind(key).bind(expires_at_us).bind(now_us).fetch_one(pool).await.map_err(db_error)?
        });
        Ok(value as u64)
    }

    async fn get(&self, key: &str, now_us: i64) -> Result<u64> {
        let q = "SELECT value FROM counters WHERE key = $1 AND expires_at_us > $2";
        let value: Option<i64> = on_pool!(self, read, |pool, sql| {
            sqlx::query_scalar(&sql(q)).bind(key).bind(now_us).fetch_optional(pool).await.map_err(db_error)?
        });
        Ok(value.unwrap_or(0).max(0) as u64)
    }

    async fn reserve_idempotency(&self, r: &IdempotencyRecord, now_us: i64) -> Result<Reservation> {
        // Inserts, or takes over an expired record; a live record is left alone and returned.
        let reserve = "INSERT INTO idempotency_keys (user_id, key, request_hash, job_id, expires_at_us) VALUES ($1, $2, $3, $4, $5) \
                       ON CONFLICT (user_id, key) DO UPDATE SET request_hash = excluded.request_hash, job_id = excluded.job_id, \
                       expires_at_us = excluded.expires_at_us WHERE idempotency_keys.expires_at_us <= $6 RETURNING job_id";
        let existing = "SELECT request_hash, job_id, expires_at_us FROM idempotency_keys WHERE user_id = $1 AND key = $2";
        let held: Option<(String, String, i64)> = on_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin().await.map_err(db_error)?;
            let taken: Option<String> = sqlx::query_scalar(&sql(reserve))
                .bind(r.user_id.to_string())
                .bind(&r.key)
                .bind(&r.request_hash)
                .bind(r.job_id.to_string())
                .bind(r.expires_at_us)
                .bind(now_us)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
            let held = match taken {
                Some(_) => None,
                None => sqlx::query_as(&sql(existing))
                    .bind(r.user_id.to_string())
                    .bind(&r.key)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?,
            };
            tx.commit().await.map_err(db_error)?;
            held
        });
        Ok(match held {
            None => Reservation::Reserved,
            Some((request_hash, job_id, expires_at_us)) => Reservation::Existing(IdempotencyRecord {
                user_id: r.user_id,
                key: r.key.clone(),
                request_hash,
                job_id: uuid(&job_id)?,
                expires_at_us,
            }),
        })
    }

    async fn release_idempotency(&self, user_id: Uuid, key: &str, job_id: Uuid) -> Result<()> {
        let q = "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND job_id = $3";
        on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q)).bind(user_id.to_string()).bind(key).bind(job_id.to_string()).execute(pool).await.map_err(db_error)?;
        });
        Ok(())
    }

    async fn purge_expired(&self, now_us: i64) -> Result<u64> {
        let counters = "DELETE FROM counters WHERE expires_at_us <= $1";
        let keys = "DELETE FROM idempotency_keys WHERE expires_at_us <= $1";
        let removed = on_pool!(self, write, |pool, sql| {
            let a = sqlx::query(&sql(counters)).bind(now_us).execute(pool).await.map_err(db_error)?.rows_affected();
            let b = sqlx::query(&sql(keys)).bind(now_us).execute(pool).await.map_err(db_error)?.rows_affected();
            a + b
        });
        Ok(removed)
    }
}
