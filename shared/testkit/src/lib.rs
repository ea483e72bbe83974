//! Test helpers shared by the suites under tests/: a fresh, migrated database per test on
//! SQLite (a temp file) or on the real PostgreSQL (a new database, dropped afterwards), with
//! the usage totals in DynamoDB on moto where a suite asks for the AWS profile's metering.

pub mod aws;
pub mod fixtures;
mod http;
pub mod media;
pub mod openai;
pub mod pipeline;
pub mod platforms;
pub mod stripe;

pub use http::{Call, TestApp, TestResponse, test_settings};

use goviral_sql::{PoolSettings, SqlStore};
use sqlx::Connection;

/// Where the suites find PostgreSQL; a new database is created there per test.
/// Every file below `dir`, at any depth (what a blob directory holds).
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { out.extend(files_under(&path)) } else { out.push(path) }
    }
    out
}

pub fn postgres_admin_url() -> String {
    std::env::var("GOVIRAL_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// PostgreSQL with admission checked against DynamoDB usage totals (moto): the AWS
    /// profile's metering.
    PostgresDynamo,
}

/// A fresh, migrated database. Dropping it removes the file or the PostgreSQL database.
pub struct TestDb {
    pub url: String,
    pub store: SqlStore,
    /// The DynamoDB usage totals table (PostgresDynamo only).
    pub usage_table: Option<String>,
    _dir: Option<tempfile::TempDir>,
    pg_database: Option<String>,
}

impl TestDb {
    /// The PostgreSQL database's name (None on SQLite).
    pub fn pg_database(&self) -> Option<&str> {
        self.pg_database.as_deref()
    }

    /// The SQLite file (None on PostgreSQL).
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        self.url.strip_prefix("sqlite://").map(std::path::PathBuf::from)
    }

    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => Self::sqlite().await,
            Backend::Postgres => Self::postgres().await,
            Backend::PostgresDynamo => {
                let mut db = Self::postgres().await;
                let (totals, table) = aws::usage_totals().await;
                db.store = db.store.clone().with_usage_totals(std::sync::Arc::new(totals));
                db.usage_table = Some(table);
                db
            }
        }
    }

    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("goviral.db").display());
        let store = connect(&url).await;
        TestDb { url, store, usage_table: None, _dir: Some(dir), pg_database: None }
    }

    /// Fails the test (never skips it) when PostgreSQL is not reachable.
    pub async fn postgres() -> TestDb {
        let admin = postgres_admin_url();
        let name = format!("gv_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn =
            sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| panic!("PostgreSQL at {admin} is needed by this test: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
        conn.close().await.ok();
        let url = replace_database(&admin, &name);
        let store = connect(&url).await;
        TestDb { url, store, usage_table: None, _dir: None, pg_database: Some(name) }
    }
}

async fn connect(url: &str) -> SqlStore {
    let settings = PoolSettings { max_connections: 4, ..PoolSettings::default() };
    let store = SqlStore::connect(url, &settings).await.expect("connect to test database");
    store.migrate().await.expect("migrate test database");
    store
}

fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_database.take() else { return };
        // Drop runs inside the test's (blocked) runtime: clean up from a thread of its own.
        // FORCE ends the pool's connections server-side, so the pool need not be closed first.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
                }
            });
        })
        .join()
        .ok();
    }
}
