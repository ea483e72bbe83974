//! The hot-counter contract (rate limits, usage, idempotency keys), run on SQLite, on
//! PostgreSQL and on DynamoDB (moto).

use std::sync::Arc;

use domain::ports::{Counters, IdempotencyRecord, Reservation};
use goviral_testkit::{Backend, TestDb};
use uuid::Uuid;

/// Declares `$name` once per adapter: `sqlite::`, `postgres::` and `dynamodb::$name`. The
/// returned guard keeps a test database alive while the counters are used.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { let (c, _db) = super::sql(goviral_testkit::Backend::Sqlite).await; super::$name(c).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { let (c, _db) = super::sql(goviral_testkit::Backend::Postgres).await; super::$name(c).await })*
        }
        mod dynamodb {
            $(#[tokio::test] async fn $name() { super::$name(super::dynamo().await).await })*
        }
    };
}

contract!(counters_increment_atomically_and_expire, idempotency_keys_reserve_once, expired_entries_are_purged);

async fn sql(backend: Backend) -> (Arc<dyn Counters>, TestDb) {
    let db = TestDb::new(backend).await;
    (Arc::new(db.store.clone()), db)
}

async fn dynamo() -> Arc<dyn Counters> {
    let config = crate::aws::config().await;
    let (counters, keys) = crate::aws::counter_tables(&config).await;
    Arc::new(goviral_aws::DynamoCounters::new(&config, counters, keys))
}

async fn counters_increment_atomically_and_expire(counters: Arc<dyn Counters>) {
    let (now_us, until) = (1_000_000, 61_000_000);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let c = counters.clone();
            tokio::spawn(async move { c.increment("rate:u:1", until, now_us).await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    seen.sort();
    assert_eq!(seen, (1..=20).collect::<Vec<u64>>(), "every concurrent increment counted once");
    // Other keys count alone.
    assert_eq!(counters.increment("rate:u:2", until, now_us).await.unwrap(), 1);
    // Reading does not count; a missing counter reads 0.
    assert_eq!(counters.get("rate:u:1", now_us).await.unwrap(), 20);
    assert_eq!(counters.get("rate:u:1", now_us).await.unwrap(), 20);
    assert_eq!(counters.get("rate:u:none", now_us).await.unwrap(), 0);
    // An expired counter reads 0 before anything deletes it.
    assert_eq!(counters.get("rate:u:1", until).await.unwrap(), 0);
    // Past its expiry the counter starts again, with the new expiry.
    assert_eq!(counters.increment("rate:u:1", 200_000_000, until).await.unwrap(), 1);
    assert_eq!(counters.increment("rate:u:1", 300_000_000, until + 1).await.unwrap(), 2);
}

async fn idempotency_keys_reserve_once(c: Arc<dyn Counters>) {
    let rec = IdempotencyRecord {
        user_id: Uuid::now_v7(),
        key: "k-1".into(),
        request_hash: "h1".into(),
        job_id: Uuid::now_v7(),
        expires_at_us: 100,
    };
    assert_eq!(c.reserve_idempotency(&rec, 10).await.unwrap(), Reservation::Reserved);
    let second = IdempotencyRecord { job_id: Uuid::now_v7(), request_hash: "h2".into(), ..rec.clone() };
    assert_eq!(c.reserve_idempotency(&second, 20).await.unwrap(), Reservation::Existing(rec.clone()));
    // Other users have their own key space.
    let other = IdempotencyRecord { user_id: Uuid::now_v7(), ..rec.clone() };
    assert_eq!(c.reserve_idempotency(&other, 20).await.unwrap(), Reservation::Reserved);
    // Expired records are taken over; released ones are free again.
    let later = IdempotencyRecord { expires_at_us: 500, ..second.clone() };
    assert_eq!(c.reserve_idempotency(&later, 100).await.unwrap(), Reservation::Reserved);
    assert_eq!(c.reserve_idempotency(&rec, 200).await.unwrap(), Reservation::Existing(later.clone()));
    // Only the holder frees a key: a release naming another job leaves it held.
    c.release_idempotency(rec.user_id, "k-1", rec.job_id).await.unwrap();
    assert_eq!(c.reserve_idempotency(&rec, 110).await.unwrap(), Reservation::Existing(later.clone()));
    c.release_idempotency(rec.user_id, "k-1", later.job_id).await.unwrap();
    assert_eq!(c.reserve_idempotency(&rec, 110).await.unwrap(), Reservation::Reserved);
    // Releasing a key nobody holds is fine (a retried cleanup).
    c.release_idempotency(Uuid::now_v7(), "never-taken", Uuid::now_v7()).await.unwrap();

    // Concurrent first uses of one key: exactly one caller reserves it.
    let user_id = Uuid::now_v7();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let c = c.clone();
            let r = IdempotencyRecord {
                user_id,
                key: "race".into(),
                request_hash: format!("h{i}"),
                job_id: Uuid::now_v7(),
                expires_at_us: 1_000,
            };
            tokio::spawn(async move { c.reserve_idempotency(&r, 10).await.unwrap() })
        })
        .collect();
    let mut reserved = 0;
    for t in tasks {
        if t.await.unwrap() == Reservation::Reserved {
            reserved += 1;
        }
    }
    assert_eq!(reserved, 1);
}

async fn expired_entries_are_purged(c: Arc<dyn Counters>) {
    c.increment("usage:a", 50, 0).await.unwrap();
    c.increment("usage:b", 5_000, 0).await.unwrap();
    let rec =
        IdempotencyRecord { user_id: Uuid::now_v7(), key: "k".into(), request_hash: "h".into(), job_id: Uuid::now_v7(), expires_at_us: 60 };
    c.reserve_idempotency(&rec, 0).await.unwrap();
    assert_eq!(c.purge_expired(100).await.unwrap(), 2, "the expired counter and key");
    assert_eq!(c.purge_expired(100).await.unwrap(), 0, "nothing twice");
    // The live counter survived with its count.
    assert_eq!(c.increment("usage:b", 5_000, 200).await.unwrap(), 2);
}
