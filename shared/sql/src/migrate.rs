//! Embedded, ordered, transactional migrations per backend.

use crate::{SqlStore, db_error};
use domain::Error;

struct Migration {
    version: i64,
    name: &'static str,
    postgres: &'static str,
    sqlite: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        postgres: include_str!("../migrations/postgres/0001_init.sql"),
        sqlite: include_str!("../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "pipeline",
        postgres: include_str!("../migrations/postgres/0002_pipeline.sql"),
        sqlite: include_str!("../migrations/sqlite/0002_pipeline.sql"),
    },
    Migration {
        version: 3,
        name: "uploads",
        postgres: include_str!("../migrations/postgres/0003_uploads.sql"),
        sqlite: include_str!("../migrations/sqlite/0003_uploads.sql"),
    },
    Migration {
        version: 4,
        name: "upload_content",
        postgres: include_str!("../migrations/postgres/0004_upload_content.sql"),
        sqlite: include_str!("../migrations/sqlite/0004_upload_content.sql"),
    },
    Migration {
        version: 5,
        name: "usage",
        postgres: include_str!("../migrations/postgres/0005_usage.sql"),
        sqlite: include_str!("../migrations/sqlite/0005_usage.sql"),
    },
    Migration {
        version: 6,
        name: "job_events",
        postgres: include_str!("../migrations/postgres/0006_job_events.sql"),
        sqlite: include_str!("../migrations/sqlite/0006_job_events.sql"),
    },
    Migration {
        version: 7,
        name: "compare_usage",
        postgres: include_str!("../migrations/postgres/0007_compare_usage.sql"),
        sqlite: include_str!("../migrations/sqlite/0007_compare_usage.sql"),
    },
    Migration {
        version: 8,
        name: "outcomes",
        postgres: include_str!("../migrations/postgres/0008_outcomes.sql"),
        sqlite: include_str!("../migrations/sqlite/0008_outcomes.sql"),
    },
    Migration {
        version: 9,
        name: "connected_accounts",
        postgres: include_str!("../migrations/postgres/0009_connected_accounts.sql"),
        sqlite: include_str!("../migrations/sqlite/0009_connected_accounts.sql"),
    },
    Migration {
        version: 10,
        name: "model_registry",
        postgres: include_str!("../migrations/postgres/0010_model_registry.sql"),
        sqlite: include_str!("../migrations/sqlite/0010_model_registry.sql"),
    },
    Migration {
        version: 11,
        name: "fairness_sessions",
        postgres: include_str!("../migrations/postgres/0011_fairness_sessions.sql"),
        sqlite: include_str!("../migrations/sqlite/0011_fairness_sessions.sql"),
    },
];

const LEDGER: &str =
    "CREATE TABLE IF NOT EXISTS gv_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at_us BIGINT NOT NULL)";
/// Serialises concurrent migrators (several Lambdas or servers starting at once) on PostgreSQL.
const PG_LOCK_ID: i64 = 0x6776_6d69_6772;

impl SqlStore {
    /// Applies every migration not yet applied, in one transaction; then, on PostgreSQL, makes
    /// sure the monthly log partitions for this month and the next two exist.
    pub async fn migrate(&self) -> Result<(), Error> {
        let now_us = domain::model::to_micros(domain::model::now());
        let postgres = self.is_postgres();
        on_pool!(self, write, |pool, _sql| {
            let mut tx = pool.begin().await.map_err(db_error)?;
            if postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_LOCK_ID).execute(&mut *tx).await.map_err(db_error)?;
            }
            sqlx::query(LEDGER).execute(&mut *tx).await.map_err(db_error)?;
            for m in MIGRATIONS {
                let done: Option<i64> = sqlx::query_scalar("SELECT version FROM gv_migrations WHERE version = $1")
                    .bind(m.version)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
                if done.is_some() {
                    continue;
                }
                sqlx::raw_sql(if postgres { m.postgres } else { m.sqlite }).execute(&mut *tx).await.map_err(db_error)?;
                sqlx::query("INSERT INTO gv_migrations (version, name, applied_at_us) VALUES ($1, $2, $3)")
                    .bind(m.version)
                    .bind(m.name)
                    .bind(now_us)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                tracing::info!(version = m.version, name = m.name, postgres, "applied migration");
            }
            if postgres {
                for table in ["audit_logs", "model_runs"] {
                    sqlx::query("SELECT gv_ensure_month_partitions($1, gv_ts($2), 3)")
                        .bind(table)
                        .bind(now_us)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                }
            }
            tx.commit().await.map_err(db_error)?;
        });
        Ok(())
    }
}
