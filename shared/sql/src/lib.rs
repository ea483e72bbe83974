//! The relational store and hot counters over sqlx: PostgreSQL in production, SQLite as the
//! embedded default, chosen by the database URL. Queries are written once, in PostgreSQL's
//! dialect; [`dialect::to_sqlite`] rewrites them for SQLite, and [`on_pool!`] compiles each
//! query body for both backends, so the two stores cannot drift apart.

/// Runs `$body` with `$pool` bound to the backend's `read` or `write` pool and `$sql` to a
/// function turning a PostgreSQL query into this backend's dialect. The body is compiled once
/// per backend, so both stores run the same code.
macro_rules! on_pool {
    ($store:expr, $kind:ident, |$pool:ident, $sql:ident| $body:expr) => {
        match &$store.backend {
            $crate::Backend::Sqlite { $kind: $pool, file, .. } => {
                // The files must still be the ones opened: never write into a deleted
                // database, never touch a wal-index that was cut short under its memory map.
                file.check()?;
                let $sql = |q: &str| $crate::dialect::to_sqlite(q);
                $body
            }
            $crate::Backend::Postgres($pool) => {
                let $sql = |q: &str| q.to_string();
                $body
            }
        }
    };
}

mod accounts;
mod counters;
pub mod dialect;
mod events;
mod file_guard;
mod group_commit;
mod migrate;
mod outcomes;
mod registry;
mod rows;
mod runs;
mod store;
mod usage;

use std::str::FromStr;
use std::time::Duration;

use domain::Error;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings { max_connections: 10, acquire_timeout: Duration::from_secs(5) }
    }
}

#[derive(Clone)]
enum Backend {
    /// SQLite allows one writer at a time: a single-connection write pool queues writers in
    /// the pool (fair, no busy-wait) while readers run in parallel under WAL.
    Sqlite {
        read: SqlitePool,
        write: SqlitePool,
        jobs: group_commit::JobWriter,
        file: std::sync::Arc<file_guard::FileGuard>,
    },
    Postgres(PgPool),
}

/// One handle for every SQL-backed port (store, counters); cheap to clone.
#[derive(Clone)]
pub struct SqlStore {
    backend: Backend,
    /// Usage totals kept outside (DynamoDB on AWS); None: in `usage_periods`, in the
    /// admission's transaction.
    totals: Option<std::sync::Arc<dyn domain::ports::UsageTotals>>,
}

impl SqlStore {
    /// `sqlite://path/to/file.db` (created if missing) or `postgres://…`.
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<Self, Error> {
        let backend = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| Error::Internal(format!("bad SQLite URL: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5))
                .pragma("cache_size", "-16000");
            // A local file cannot drop a connection the way a network can: skip the ping sqlx
            // would otherwise send (a round trip to the worker thread) on every acquire.
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .acquire_timeout(settings.acquire_timeout)
                .connect_with(options.clone())
                .await
                .map_err(db_error)?;
            let read = SqlitePoolOptions::new()
                .max_connections(settings.max_connections.max(1))
                .test_before_acquire(false)
                .acquire_timeout(settings.acquire_timeout)
                .connect_with(options.clone().read_only(true))
                .await
                .map_err(db_error)?;
            let file = std::sync::Arc::new(file_guard::FileGuard::open(options.get_filename()).map_err(Error::Unavailable)?);
            let jobs = group_commit::JobWriter::spawn(write.clone(), file.clone());
            Backend::Sqlite { read, write, jobs, file }
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .connect(url)
                .await
                .map_err(db_error)?;
            Backend::Postgres(pool)
        } else {
            return Err(Error::Internal("database URL must start with sqlite: or postgres:".into()));
        };
        Ok(SqlStore { backend, totals: None })
    }

    /// Checks admission against `totals` instead of the store's own `usage_periods` (the AWS
    /// profile: DynamoDB). The ledger and prepaid credits stay here.
    pub fn with_usage_totals(mut self, totals: std::sync::Arc<dyn domain::ports::UsageTotals>) -> Self {
        self.totals = Some(totals);
        self
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { read, write, .. } => {
                read.close().await;
                write.close().await;
            }
            Backend::Postgres(p) => p.close().await,
        }
    }
}

/// sqlx errors at the store's edge: unique violations are conflicts; a database that cannot
/// be reached or cannot take writes just now (lost connections, read-only, full disk, I/O
/// errors, lock timeouts) is `Unavailable` (503 with `Retry-After`); the rest is internal.
pub(crate) fn db_error(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict("already exists".into()),
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => Error::NotFound("referenced record"),
        sqlx::Error::Database(db) if transient(db.as_ref()) => Error::Unavailable(format!("database: {}", domain::error::chain(&e))),
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            Error::Unavailable(format!("database: {}", domain::error::chain(&e)))
        }
        _ => Error::Internal(format!("database: {}", domain::error::chain(&e))),
    }
}

/// SQLite result codes (primary code in the low byte) and PostgreSQL SQLSTATEs that mean
/// "not now" rather than "never".
fn transient(db: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = db.code() else { return false };
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // BUSY, LOCKED, READONLY, IOERR, CORRUPT (a file changed under us), FULL, CANTOPEN
        return code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 8 | 10 | 11 | 13 | 14));
    }
    // connection, resources (disk full, out of memory), operator intervention, read-only
    // transaction, serialization failure and deadlock
    code.starts_with("08") || code.starts_with("53") || code.starts_with("57") || code == "25006" || code.starts_with("40")
}
