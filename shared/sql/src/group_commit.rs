//! Group commit for SQLite's hot write: submissions (and comparisons' charges) arriving
//! together share one transaction.
//!
//! SQLite has one writer, and every sqlx statement is a round trip to its worker thread, so
//! BEGIN and COMMIT per submission dominate the cost under load. Here a writer task takes
//! every submission waiting (up to `MAX_BATCH`) and writes them in one transaction. If that
//! transaction fails, each is written alone, so one bad row cannot fail or hide its neighbours.
//! Each caller still hears about its own rows only after they are committed.

use domain::Result;
use domain::model::{Job, Submission};
use domain::usage::{Admitted, Charge};
use sqlx::SqlitePool;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::file_guard::FileGuard;

use crate::db_error;
use crate::usage::Total;

const MAX_BATCH: usize = 128;

struct Pending {
    /// The submission and its job; None for a charge alone (a comparison).
    rows: Option<(Submission, Job)>,
    charge: Option<(Charge, Total)>,
    done: oneshot::Sender<Result<Option<Admitted>>>,
}

#[derive(Clone)]
pub(crate) struct JobWriter {
    queue: mpsc::Sender<Pending>,
}

impl JobWriter {
    /// Spawns the writer on the current runtime; it stops when the last handle is dropped.
    pub(crate) fn spawn(pool: SqlitePool, file: Arc<FileGuard>) -> JobWriter {
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(pool, file, rx));
        JobWriter { queue }
    }

    pub(crate) async fn write(&self, rows: Option<(&Submission, &Job)>, charge: Option<(&Charge, Total)>) -> Result<Option<Admitted>> {
        let (done, result) = oneshot::channel();
        let pending = Pending { rows: rows.map(|(s, j)| (s.clone(), j.clone())), charge: charge.map(|(c, t)| (c.clone(), t)), done };
        let stopped = || domain::Error::Unavailable("the SQLite writer has stopped".into());
        self.queue.send(pending).await.map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }
}

async fn run(pool: SqlitePool, file: Arc<FileGuard>, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if let Err(e) = file.check() {
            batch.drain(..).for_each(|p| {
                let _ = p.done.send(Err(e.clone()));
            });
            continue;
        }
        match write_all(&pool, &batch).await {
            Ok(admitted) => batch.drain(..).zip(admitted).for_each(|(p, a)| {
                let _ = p.done.send(Ok(a));
            }),
            Err(e) if batch.len() == 1 => {
                let _ = batch.remove(0).done.send(Err(e));
            }
            Err(_) => {
                // One refused charge (an allowance reached) or bad row fails the batch: each
                // is then written alone and hears its own answer.
                for p in batch.drain(..) {
                    let result = write_all(&pool, std::slice::from_ref(&p)).await.map(|mut a| a.remove(0));
                    let _ = p.done.send(result);
                }
            }
        }
    }
}

/// Every pending write in one transaction; the usage after each one's charge, in order.
async fn write_all(pool: &SqlitePool, batch: &[Pending]) -> Result<Vec<Option<Admitted>>> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    let mut admitted = Vec::with_capacity(batch.len());
    for p in batch {
        if let Some((submission, job)) = &p.rows {
            crate::store::insert_submission_and_job(&mut tx, submission, job, crate::dialect::to_sqlite).await?;
        }
        admitted.push(match &p.charge {
            Some((c, total)) => Some(crate::usage::apply_charge(&mut tx, c, *total, crate::dialect::to_sqlite).await?),
            None => None,
        });
    }
    tx.commit().await.map_err(db_error)?;
    Ok(admitted)
}
