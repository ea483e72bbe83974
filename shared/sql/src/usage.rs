//! The usage ledger and the per-period totals (see domain::usage): a charge is applied inside
//! the transaction that creates the job, so admission and its ledger entry stand or fall
//! together. Every change to a total is a conditional update of one row, which both backends
//! serialise (SQLite has one writer; PostgreSQL locks the row and re-checks the condition), so
//! concurrent submissions at the edge of an allowance are never admitted past it. With
//! `UsageTotals` outside (DynamoDB), the total is taken there first and given back if the
//! transaction fails; the ledger and credits stay here either way.

use domain::model::to_micros;
use domain::model::{Job, Submission};
use domain::ports::Take;
use domain::usage::{Admitted, Charge, UsageAccount};
use domain::{Error, Result};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{SqlStore, db_error};

/// Days since 1970-01-01 in UTC: the ledger's bucket.
pub(crate) fn day_of(t: OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(86_400)
}

/// Where a charge's period total is kept.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Total {
    /// In `usage_periods`, raised in the admission's transaction.
    InTx,
    /// Outside the store (`UsageTotals`), already taken: the allowance and usage it answered.
    Taken { allowance: u64, used: u64 },
}

/// Applies `c` in `tx`, after the submission's own rows: the charge entry, the period's
/// total (refused past the cap) unless it was `Taken` outside, and prepaid credits (refused
/// when short).
pub(crate) async fn apply_charge<DB: sqlx::Database>(
    tx: &mut sqlx::Transaction<'_, DB>,
    c: &Charge,
    total: Total,
    sql: impl Fn(&str) -> String,
) -> Result<Admitted>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    Option<i64>: for<'r> sqlx::Decode<'r, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let (user, units) = (c.user_id.to_string(), c.units as i64);
    // The account's own terms, read in the admission's transaction (an operator's change and
    // the charge never cross).
    let terms: Option<(Option<i64>, Option<i64>)> =
        sqlx::query_as(&sql("SELECT allowance_override, credits FROM usage_accounts WHERE user_id = $1::uuid"))
            .bind(user.clone())
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_error)?;
    let (allowance_override, prepaid) = terms.unwrap_or_default();
    let from_credits = prepaid.is_some();
    // The account's rows are locked (PostgreSQL) from their update to the commit, and every
    // submission of the account waits for them: they are updated last, after the inserts, and
    // in the order returns update them (total, then credits), so the two never deadlock.
    sqlx::query(&sql("INSERT INTO usage_ledger (id, user_id, job_id, entry, kind, units, credit_units, period, reason, created_at, day) \
         VALUES ($1::uuid, $2::uuid, $3::uuid, 'charge', $4, $5, $6, $7, NULL, gv_ts($8), $9)"))
    .bind(c.entry_id.to_string())
    .bind(user.clone())
    .bind(c.job_id.to_string())
    .bind(c.kind.as_str().to_string())
    .bind(units)
    .bind(if from_credits { units } else { 0 })
    .bind(c.period.key.clone())
    .bind(to_micros(c.at))
    .bind(day_of(c.at))
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    let (allowance, used) = match total {
        Total::Taken { allowance, used } => (allowance, used),
        Total::InTx => {
            let allowance = allowance_override.map_or(c.plan_allowance, |a| a.max(0) as u64);
            (allowance, raise_total(tx, c, allowance, &sql).await?)
        }
    };
    let mut credits = None;
    if from_credits {
        let left: Option<Option<i64>> = sqlx::query_scalar(&sql(
            "UPDATE usage_accounts SET credits = credits - $2, updated_at = gv_ts($3) WHERE user_id = $1::uuid AND credits >= $2 RETURNING credits",
        ))
        .bind(user.clone())
        .bind(units)
        .bind(to_micros(c.at))
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?;
        let Some(left) = left.flatten() else {
            let balance: Option<i64> = sqlx::query_scalar(&sql("SELECT credits FROM usage_accounts WHERE user_id = $1::uuid"))
                .bind(user.clone())
                .fetch_optional(&mut **tx)
                .await
                .map_err(db_error)?
                .flatten();
            return Err(Error::InsufficientCredits { required: c.units, balance: balance.unwrap_or(0).max(0) as u64 });
        };
        credits = Some(left.max(0) as u64);
    }
    Ok(Admitted { allowance, used, credits })
}

/// Raises the period's row by the charge's units, under the cap where there is one; the
/// total after it, or `QuotaExceeded`.
async fn raise_total<DB: sqlx::Database>(
    tx: &mut sqlx::Transaction<'_, DB>,
    c: &Charge,
    allowance: u64,
    sql: &impl Fn(&str) -> String,
) -> Result<u64>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let (user, units) = (c.user_id.to_string(), c.units as i64);
    let cap = c.hard_cap.then_some(allowance);
    // One statement: the period's row is created or raised, under the cap where there is one;
    // RETURNING answers whether it took (no row: the cap refused it).
    let upsert = match cap {
        Some(_) => sql("INSERT INTO usage_periods (user_id, period, used) VALUES ($1::uuid, $2, $3) ON CONFLICT (user_id, period) \
                        DO UPDATE SET used = usage_periods.used + excluded.used WHERE usage_periods.used + excluded.used <= $4 RETURNING used"),
        None => sql("INSERT INTO usage_periods (user_id, period, used) VALUES ($1::uuid, $2, $3) ON CONFLICT (user_id, period) \
                     DO UPDATE SET used = usage_periods.used + excluded.used RETURNING used"),
    };
    let added: Option<i64> = if cap.is_some_and(|cap| c.units > cap) {
        None // more than the whole allowance: refused without writing
    } else {
        let mut update = sqlx::query_scalar(&upsert).bind(user.clone()).bind(c.period.key.clone()).bind(units);
        if let Some(cap) = cap {
            update = update.bind(cap as i64);
        }
        update.fetch_optional(&mut **tx).await.map_err(db_error)?
    };
    let Some(used) = added else {
        let used: i64 = sqlx::query_scalar(&sql("SELECT used FROM usage_periods WHERE user_id = $1::uuid AND period = $2"))
            .bind(user.clone())
            .bind(c.period.key.clone())
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_error)?
            .unwrap_or(0);
        return Err(Error::QuotaExceeded { allowance, used: used.max(0) as u64, required: c.units, resets_at: c.period.resets_at });
    };
    Ok(used.max(0) as u64)
}

impl SqlStore {
    pub(crate) async fn claim_notice(
        &self,
        user_id: Uuid,
        period: &str,
        threshold: u32,
        targets: &[String],
        now: OffsetDateTime,
    ) -> Result<bool> {
        let insert = "INSERT INTO usage_notices (user_id, period, threshold, target_url, delivery_id, status, updated_at) \
                      VALUES ($1::uuid, $2, $3, $4, $5::uuid, $6, gv_ts($7)) ON CONFLICT (user_id, period, threshold, target_url) DO NOTHING \
                      RETURNING delivery_id::text";
        on_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin().await.map_err(db_error)?;
            // The marker row (no target) makes the claim once per period and threshold.
            let mut rows = vec![(String::new(), "claimed")];
            rows.extend(targets.iter().map(|t| (t.clone(), "pending")));
            for (i, (target, status)) in rows.into_iter().enumerate() {
                let written: Option<String> = sqlx::query_scalar(&sql(insert))
                    .bind(user_id.to_string())
                    .bind(period)
                    .bind(threshold as i32)
                    .bind(target)
                    .bind(Uuid::now_v7().to_string())
                    .bind(status)
                    .bind(to_micros(now))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
                if i == 0 && written.is_none() {
                    return Ok(false);
                }
            }
            tx.commit().await.map_err(db_error)?;
        });
        Ok(true)
    }

    pub(crate) async fn read_due_notices(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<domain::usage::UsageNotice>> {
        let q = "SELECT user_id::text, period, threshold, target_url, delivery_id::text, attempts FROM usage_notices \
                 WHERE status = 'pending' AND next_at_us <= $1 ORDER BY next_at_us LIMIT $2";
        let rows: Vec<(String, String, i32, String, String, i32)> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(q)).bind(to_micros(now)).bind(i64::from(limit)).fetch_all(pool).await.map_err(db_error)?
        });
        let id = |s: &str| s.parse::<Uuid>().map_err(|_| Error::Internal(format!("notice id {s}")));
        rows.into_iter()
            .map(|(user, period, threshold, target_url, delivery, attempts)| {
                Ok(domain::usage::UsageNotice {
                    user_id: id(&user)?,
                    period,
                    threshold: threshold.max(0) as u32,
                    target_url,
                    delivery_id: id(&delivery)?,
                    attempts: attempts.max(0) as u32,
                })
            })
            .collect()
    }

    pub(crate) async fn write_notice_attempt(
        &self,
        n: &domain::usage::UsageNotice,
        status: domain::model::DeliveryStatus,
        error: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<()> {
        let attempts = n.attempts + 1;
        let next = to_micros(now + domain::billing::backoff(attempts));
        let q = "UPDATE usage_notices SET status = $5, attempts = $6, next_at_us = $7, last_error = $8, updated_at = gv_ts($9) \
                 WHERE user_id = $1::uuid AND period = $2 AND threshold = $3 AND target_url = $4";
        on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q))
                .bind(n.user_id.to_string())
                .bind(n.period.clone())
                .bind(n.threshold as i32)
                .bind(n.target_url.clone())
                .bind(status.as_str())
                .bind(attempts as i32)
                .bind(next)
                .bind(error.map(String::from))
                .bind(to_micros(now))
                .execute(pool)
                .await
                .map_err(db_error)?;
        });
        Ok(())
    }

    pub(crate) async fn read_meter_outbox(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<domain::billing::MeterItem>> {
        use domain::billing::{MeterAction, MeterItem};
        let events = "SELECT c.id::text, c.user_id::text, a.stripe_customer_id, gv_us(c.created_at), \
                      (SELECT SUM(x.units) FROM usage_ledger x WHERE x.job_id = c.job_id)::bigint, COALESCE(e.attempts, 0)::bigint \
                      FROM usage_ledger c LEFT JOIN analysis_jobs j ON j.id = c.job_id JOIN usage_accounts a ON a.user_id = c.user_id \
                      LEFT JOIN meter_exports e ON e.identifier = c.id AND e.action = 'event' \
                      WHERE c.entry = 'charge' AND (c.kind = 'compare' OR j.status IN ('complete', 'failed', 'archived')) \
                      AND a.stripe_customer_id IS NOT NULL \
                      AND (e.identifier IS NULL OR (e.status = 'pending' AND e.next_at_us <= $1)) ORDER BY c.created_at LIMIT $2";
        let cancels = "SELECT c.id::text, c.user_id::text, COALESCE(k.attempts, 0)::bigint FROM usage_ledger r \
                       JOIN usage_ledger c ON c.job_id = r.job_id AND c.entry = 'charge' \
                       JOIN meter_exports e ON e.identifier = c.id AND e.action = 'event' AND e.status = 'sent' \
                       LEFT JOIN meter_exports k ON k.identifier = c.id AND k.action = 'cancel' \
                       WHERE r.entry = 'reversal' AND (k.identifier IS NULL OR (k.status = 'pending' AND k.next_at_us <= $1)) \
                       ORDER BY r.created_at LIMIT $2";
        let now_us = to_micros(now);
        let (due, undo): (Vec<(String, String, String, i64, i64, i64)>, Vec<(String, String, i64)>) = on_pool!(self, read, |pool, sql| {
            let due = sqlx::query_as(&sql(events)).bind(now_us).bind(i64::from(limit)).fetch_all(pool).await.map_err(db_error)?;
            let undo = sqlx::query_as(&sql(cancels)).bind(now_us).bind(i64::from(limit)).fetch_all(pool).await.map_err(db_error)?;
            (due, undo)
        });
        let id = |s: &str| s.parse::<Uuid>().map_err(|_| Error::Internal(format!("ledger id {s}")));
        let mut items = Vec::with_capacity(due.len() + undo.len());
        for (identifier, user, customer_id, at_us, net, attempts) in due {
            let at = domain::model::from_micros(at_us);
            let action = MeterAction::Event { customer_id, units: net.max(0) as u64, at };
            items.push(MeterItem { identifier: id(&identifier)?, user_id: id(&user)?, action, attempts: attempts.max(0) as u32 });
        }
        for (identifier, user, attempts) in undo {
            items.push(MeterItem {
                identifier: id(&identifier)?,
                user_id: id(&user)?,
                action: MeterAction::Cancel,
                attempts: attempts.max(0) as u32,
            });
        }
        Ok(items)
    }

    pub(crate) async fn write_meter_export(
        &self,
        item: &domain::billing::MeterItem,
        outcome: &domain::billing::MeterOutcome,
        now: OffsetDateTime,
    ) -> Result<()> {
        use domain::billing::{MeterAction, MeterOutcome, backoff};
        let action = if item.action == MeterAction::Cancel { "cancel" } else { "event" };
        let (status, attempts, next, error) = match outcome {
            MeterOutcome::Sent | MeterOutcome::AlreadySent => ("sent", item.attempts, 0, None),
            MeterOutcome::Nothing => ("skipped", item.attempts, 0, None),
            MeterOutcome::Retry(why) => ("pending", item.attempts + 1, to_micros(now + backoff(item.attempts + 1)), Some(why.clone())),
            MeterOutcome::Refused(why) => ("refused", item.attempts, 0, Some(why.clone())),
        };
        let q = "INSERT INTO meter_exports (identifier, action, status, attempts, next_at_us, last_error, updated_at) \
                 VALUES ($1::uuid, $2, $3, $4, $5, $6, gv_ts($7)) ON CONFLICT (identifier, action) DO UPDATE \
                 SET status = $3, attempts = $4, next_at_us = $5, last_error = $6, updated_at = gv_ts($7)";
        on_pool!(self, write, |pool, sql| {
            sqlx::query(&sql(q))
                .bind(item.identifier.to_string())
                .bind(action)
                .bind(status)
                .bind(attempts as i32)
                .bind(next)
                .bind(error.clone())
                .bind(to_micros(now))
                .execute(pool)
                .await
                .map_err(db_error)?;
        });
        Ok(())
    }

    async fn reconcile_in_store(&self, period: &str) -> Result<(u64, Vec<domain::usage::Drift>)> {
        let count = "SELECT COUNT(*) FROM usage_periods WHERE period = $1";
        let drifted = "SELECT p.user_id::text, p.used, COALESCE(l.total, 0)::bigint FROM usage_periods p \
                       LEFT JOIN (SELECT user_id, SUM(units) AS total FROM usage_ledger WHERE period = $1 GROUP BY user_id) l \
                       ON l.user_id = p.user_id WHERE p.period = $1 AND p.used <> COALESCE(l.total, 0)";
        // Conditional on the total seen: an admission in between wins, and is looked at next run.
        let repair = "UPDATE usage_periods SET used = (SELECT COALESCE(SUM(units), 0) FROM usage_ledger \
                      WHERE usage_ledger.user_id = usage_periods.user_id AND usage_ledger.period = usage_periods.period) \
                      WHERE user_id = $1::uuid AND period = $2 AND used = $3";
        let (checked, rows): (i64, Vec<(String, i64, i64)>) = on_pool!(self, read, |pool, sql| {
            let checked: i64 = sqlx::query_scalar(&sql(count)).bind(period).fetch_one(pool).await.map_err(db_error)?;
            (checked, sqlx::query_as(&sql(drifted)).bind(period).fetch_all(pool).await.map_err(db_error)?)
        });
        let mut out = Vec::with_capacity(rows.len());
        for (user, counter, ledger) in rows {
            let repaired = on_pool!(self, write, |pool, sql| {
                sqlx::query(&sql(repair))
                    .bind(user.clone())
                    .bind(period)
                    .bind(counter)
                    .execute(pool)
                    .await
                    .map_err(db_error)?
                    .rows_affected()
            }) == 1;
            let user_id = user.parse().map_err(|_| Error::Internal(format!("user id {user}")))?;
            out.push(domain::usage::Drift { user_id, period: period.to_string(), counter, ledger, repaired });
        }
        Ok((checked.max(0) as u64, out))
    }

    async fn read_period_usage(&self, user_id: Uuid, period: &str) -> Result<u64> {
        let q = "SELECT used FROM usage_periods WHERE user_id = $1::uuid AND period = $2";
        let used: Option<i64> = on_pool!(self, read, |pool, sql| {
            sqlx::query_scalar(&sql(q)).bind(user_id.to_string()).bind(period).fetch_optional(pool).await.map_err(db_error)?
        });
        Ok(used.unwrap_or(0).max(0) as u64)
    }

    pub(crate) async fn read_usage_by_day(&self, user_id: Uuid, from_day: i64, to_day: i64) -> Result<Vec<domain::usage::UsageDay>> {
        let q = "SELECT day, kind, SUM(units)::bigint, SUM(CASE WHEN entry = 'charge' THEN 1 ELSE 0 END)::bigint, \
                 SUM(CASE WHEN entry = 'reversal' THEN 1 ELSE 0 END)::bigint FROM usage_ledger \
                 WHERE user_id = $1::uuid AND day >= $2 AND day <= $3 GROUP BY day, kind ORDER BY day, kind";
        let rows: Vec<(i64, String, i64, i64, i64)> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(q)).bind(user_id.to_string()).bind(from_day).bind(to_day).fetch_all(pool).await.map_err(db_error)?
        });
        rows.into_iter()
            .map(|(day, kind, units, analyses, reversed)| {
                let kind = kind.parse().map_err(|_| Error::Internal(format!("ledger kind {kind}")))?;
                Ok(domain::usage::UsageDay { day, kind, units, analyses: analyses.max(0) as u64, reversed: reversed.max(0) as u64 })
            })
            .collect()
    }

    async fn read_heaviest_accounts(&self, period: &str, limit: u32) -> Result<Vec<(Uuid, u64)>> {
        let q = "SELECT user_id::text, used FROM usage_periods WHERE period = $1 AND used > 0 ORDER BY used DESC, user_id LIMIT $2";
        let rows: Vec<(String, i64)> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(q)).bind(period).bind(i64::from(limit)).fetch_all(pool).await.map_err(db_error)?
        });
        rows.into_iter()
            .map(|(id, used)| Ok((id.parse().map_err(|_| Error::Internal(format!("user id {id}")))?, used.max(0) as u64)))
            .collect()
    }

    pub(crate) async fn read_usage_account(&self, user_id: Uuid) -> Result<UsageAccount> {
        let q = "SELECT allowance_override, credits, stripe_customer_id FROM usage_accounts WHERE user_id = $1::uuid";
        let row: Option<(Option<i64>, Option<i64>, Option<String>)> = on_pool!(self, read, |pool, sql| {
            sqlx::query_as(&sql(q)).bind(user_id.to_string()).fetch_optional(pool).await.map_err(db_error)?
        });
        let (allowance_override, credits, stripe_customer_id) = row.unwrap_or_default();
        Ok(UsageAccount {
            allowance_override: allowance_override.map(|a| a.max(0) as u64),
            credits: credits.map(|c| c.max(0) as u64),
            stripe_customer_id,
        })
    }

    pub(crate) async fn write_account_change(
        &self,
        user_id: Uuid,
        change: &domain::usage::AccountChange,
        now: OffsetDateTime,
    ) -> Result<(UsageAccount, UsageAccount)> {
        let ensure = "INSERT INTO usage_accounts (user_id, updated_at) VALUES ($1::uuid, gv_ts($2)) ON CONFLICT (user_id) DO NOTHING";
        // PostgreSQL locks the row until the change commits, so a debit waits for it (and
        // vice versa); SQLite's one writer does the same for the whole database.
        let read = if self.is_postgres() {
            "SELECT allowance_override, credits, stripe_customer_id FROM usage_accounts WHERE user_id = $1::uuid FOR UPDATE"
        } else {
            "SELECT allowance_override, credits, stripe_customer_id FROM usage_accounts WHERE user_id = $1::uuid"
        };
        let write = "UPDATE usage_accounts SET allowance_override = $2, credits = $3, stripe_customer_id = $4, updated_at = gv_ts($5) \
                     WHERE user_id = $1::uuid";
        on_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin().await.map_err(db_error)?;
            sqlx::query(&sql(ensure)).bind(user_id.to_string()).bind(to_micros(now)).execute(&mut *tx).await.map_err(db_error)?;
            let (allowance_override, credits, stripe_customer_id): (Option<i64>, Option<i64>, Option<String>) =
                sqlx::query_as(&sql(read)).bind(user_id.to_string()).fetch_one(&mut *tx).await.map_err(db_error)?;
            let before = UsageAccount {
                allowance_override: allowance_override.map(|a| a.max(0) as u64),
                credits: credits.map(|c| c.max(0) as u64),
                stripe_customer_id,
            };
            let after = change
                .apply(&before)
                .filter(|a| a.credits.is_none_or(|c| c <= i64::MAX as u64))
                .ok_or_else(|| Error::validation("add_credits", "the balance would overflow"))?;
            sqlx::query(&sql(write))
                .bind(user_id.to_string())
                .bind(after.allowance_override.map(|a| a as i64))
                .bind(after.credits.map(|c| c as i64))
                .bind(after.stripe_customer_id.clone())
                .bind(to_micros(now))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            Ok((before, after))
        })
    }

    /// Settles a job charged a reservation at `units` (a measured video's started minutes):
    /// an adjustment entry returns the difference to the period's usage and to prepaid
    /// credits. Once per job ((job, entry) key); false when there was nothing to settle.
    async fn write_settlement(&self, job_id: Uuid, units: u64, now: OffsetDateTime) -> Result<Option<Returned>> {
        let read = "SELECT user_id::text, kind, period, units, credit_units FROM usage_ledger WHERE job_id = $1::uuid AND entry = 'charge'";
        on_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin().await.map_err(db_error)?;
            let charge: Option<(String, String, String, i64, i64)> =
                sqlx::query_as(&sql(read)).bind(job_id.to_string()).fetch_optional(&mut *tx).await.map_err(db_error)?;
            let Some((user, kind, period, charged, credited)) = charge else { return Ok(None) };
            // Only ever down: a reservation is the most a job may cost.
            let delta = (units as i64).min(charged) - charged;
            if delta == 0 {
                return Ok(None);
            }
            let entry = Return {
                job_id,
                entry: "adjustment",
                user,
                kind,
                period,
                units: delta,
                credit_units: if credited > 0 { delta } else { 0 },
                reason: format!("measured: {units} units of {charged} reserved"),
                at: now,
            };
            if !append_return(&mut tx, &entry, self.totals.is_none(), sql).await? {
                return Ok(None);
            }
            tx.commit().await.map_err(db_error)?;
            Ok(Some(Returned { user: entry.user, period: entry.period, entry: entry.entry, units: entry.units }))
        })
    }

    /// Appends the reversal of everything charged for `job_id` and returns the units and
    /// credits to the account, in one transaction; false when the job has not failed, nothing
    /// was charged, or it was reversed already (the (job, entry) key makes a second reversal
    /// impossible).
    async fn write_reversal(&self, job_id: Uuid, reason: &str, now: OffsetDateTime) -> Result<Option<Returned>> {
        let read = "SELECT user_id::text, kind, period, units, credit_units, entry FROM usage_ledger WHERE job_id = $1::uuid";
        on_pool!(self, write, |pool, sql| {
            let mut tx = pool.begin().await.map_err(db_error)?;
            // Only a failed job is credited back (never one that completed).
            let status: Option<String> = sqlx::query_scalar(&sql("SELECT status FROM analysis_jobs WHERE id = $1::uuid"))
                .bind(job_id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
            if status.as_deref() != Some("failed") {
                return Ok(None);
            }
            let entries: Vec<(String, String, String, i64, i64, String)> =
                sqlx::query_as(&sql(read)).bind(job_id.to_string()).fetch_all(&mut *tx).await.map_err(db_error)?;
            let Some(charge) = entries.iter().find(|e| e.5 == "charge") else { return Ok(None) };
            if entries.iter().any(|e| e.5 == "reversal") {
                return Ok(None);
            }
            let entry = Return {
                job_id,
                entry: "reversal",
                user: charge.0.clone(),
                kind: charge.1.clone(),
                period: charge.2.clone(),
                units: -entries.iter().map(|e| e.3).sum::<i64>(),
                credit_units: -entries.iter().map(|e| e.4).sum::<i64>(),
                reason: reason.to_string(),
                at: now,
            };
            if !append_return(&mut tx, &entry, self.totals.is_none(), sql).await? {
                return Ok(None);
            }
            tx.commit().await.map_err(db_error)?;
            Ok(Some(Returned { user: entry.user, period: entry.period, entry: entry.entry, units: entry.units }))
        })
    }
}

/// Where the period totals live decides how each usage operation runs: in `usage_periods`
/// (in the ledger's transaction) or in the `UsageTotals` outside.
impl SqlStore {
    /// Admits `c`, with the submission and job it pays for where there are any.
    pub(crate) async fn admit(&self, rows: Option<(&Submission, &Job)>, c: &Charge) -> Result<Admitted> {
        let missing = || Error::Internal("a charge was written without its totals".into());
        let Some(totals) = &self.totals else {
            return self.write_admission(rows, Some((c, Total::InTx))).await?.ok_or_else(missing);
        };
        // The terms are read before the take (outside the transaction): an operator's change
        // racing a submission applies from the next one.
        let allowance = self.read_usage_account(c.user_id).await?.allowance_override.unwrap_or(c.plan_allowance);
        let cap = c.hard_cap.then_some(allowance);
        let (used, fresh) = match totals.take(c, cap).await? {
            Take::Refused { used } => {
                return Err(Error::QuotaExceeded { allowance, used, required: c.units, resets_at: c.period.resets_at });
            }
            Take::Taken { used } => (used, true),
            Take::Already { used } => (used, false),
        };
        let written = self.write_admission(rows, Some((c, Total::Taken { allowance, used }))).await;
        if written.is_err() && fresh {
            // Not admitted after all: give the units back (a failure here leaves the total
            // ahead of the ledger, which reconciliation repairs).
            if let Err(e) = totals.adjust(c.user_id, &c.period.key, c.job_id, "undo", -(c.units as i64), c.at).await {
                tracing::warn!(job_id = %c.job_id, error = %e, "could not give back the units of a refused admission");
            }
        }
        written?.ok_or_else(missing)
    }

    pub(crate) async fn reverse(&self, job_id: Uuid, reason: &str, now: OffsetDateTime) -> Result<bool> {
        let returned = self.write_reversal(job_id, reason, now).await?;
        self.give_back(job_id, returned.as_ref(), now).await;
        Ok(returned.is_some())
    }

    pub(crate) async fn settle(&self, job_id: Uuid, units: u64, now: OffsetDateTime) -> Result<bool> {
        let returned = self.write_settlement(job_id, units, now).await?;
        self.give_back(job_id, returned.as_ref(), now).await;
        Ok(returned.is_some())
    }

    /// Applies a committed return to the totals outside; a failure is left to reconciliation
    /// (the ledger entry is written, and the total is only behind it).
    async fn give_back(&self, job_id: Uuid, returned: Option<&Returned>, now: OffsetDateTime) {
        let (Some(totals), Some(r)) = (&self.totals, returned) else { return };
        let Ok(user_id) = r.user.parse::<Uuid>() else { return };
        if let Err(e) = totals.adjust(user_id, &r.period, job_id, r.entry, r.units, now).await {
            tracing::warn!(%job_id, entry = r.entry, error = %e, "usage total not given back; reconciliation will repair it");
        }
    }

    pub(crate) async fn period_total(&self, user_id: Uuid, period: &str) -> Result<u64> {
        match &self.totals {
            Some(totals) => totals.used(user_id, period).await,
            None => self.read_period_usage(user_id, period).await,
        }
    }

    pub(crate) async fn heaviest(&self, period: &str, limit: u32) -> Result<Vec<(Uuid, u64)>> {
        let Some(totals) = &self.totals else { return self.read_heaviest_accounts(period, limit).await };
        let mut all: Vec<(Uuid, u64)> =
            totals.period_totals(period).await?.into_iter().filter(|t| t.used > 0).map(|t| (t.user_id, t.used as u64)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(limit as usize);
        Ok(all)
    }

    pub(crate) async fn reconcile(&self, period: &str) -> Result<(u64, Vec<domain::usage::Drift>)> {
        let Some(totals) = &self.totals else { return self.reconcile_in_store(period).await };
        // The totals first, then the ledger: a total quiet since before it was read has every
        // admission it counts committed (or given back) by the time the ledger is summed.
        let counted = totals.period_totals(period).await?;
        let sums = "SELECT user_id::text, SUM(units)::bigint FROM usage_ledger WHERE period = $1 GROUP BY user_id";
        let rows: Vec<(String, i64)> =
            on_pool!(self, read, |pool, sql| sqlx::query_as(&sql(sums)).bind(period).fetch_all(pool).await.map_err(db_error)?);
        let mut ledger = std::collections::HashMap::with_capacity(rows.len());
        for (user, sum) in rows {
            ledger.insert(user.parse::<Uuid>().map_err(|_| Error::Internal(format!("user id {user}")))?, sum);
        }
        let now = OffsetDateTime::now_utc();
        let settled_before = to_micros(now - domain::usage::QUIET);
        let mut drifted = Vec::new();
        let mut checked = 0u64;
        for t in &counted {
            checked += 1;
            let sum = ledger.remove(&t.user_id).unwrap_or(0);
            if t.used != sum && t.changed_at_us < settled_before {
                let repaired = totals.repair(t.user_id, period, Some(t), sum, now).await?;
                drifted.push(domain::usage::Drift {
                    user_id: t.user_id,
                    period: period.to_string(),
                    counter: t.used,
                    ledger: sum,
                    repaired,
                });
            }
        }
        // Ledger entries with no total at all (one lost, or expired early).
        for (user_id, sum) in ledger.into_iter().filter(|(_, sum)| *sum != 0) {
            checked += 1;
            let repaired = totals.repair(user_id, period, None, sum, now).await?;
            drifted.push(domain::usage::Drift { user_id, period: period.to_string(), counter: 0, ledger: sum, repaired });
        }
        Ok((checked, drifted))
    }
}

/// A ledger entry giving units back (negative `units`, and `credit_units` for prepaid ones).
struct Return {
    job_id: Uuid,
    entry: &'static str,
    user: String,
    kind: String,
    period: String,
    units: i64,
    credit_units: i64,
    reason: String,
    at: OffsetDateTime,
}

/// A return that was written: what the period's total must give back.
struct Returned {
    user: String,
    period: String,
    entry: &'static str,
    units: i64,
}

/// Appends `r` and applies it to the prepaid credits and (`in_tx_total`) the period's total,
/// in `tx`; false when the job already has such an entry.
async fn append_return<DB: sqlx::Database>(
    tx: &mut sqlx::Transaction<'_, DB>,
    r: &Return,
    in_tx_total: bool,
    sql: impl Fn(&str) -> String,
) -> Result<bool>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let insert = "INSERT INTO usage_ledger (id, user_id, job_id, entry, kind, units, credit_units, period, reason, created_at, day) \
                  VALUES ($1::uuid, $2::uuid, $3::uuid, $4, $5, $6, $7, $8, $9, gv_ts($10), $11) \
                  ON CONFLICT (job_id, entry) DO NOTHING RETURNING id::text";
    let written: Option<String> = sqlx::query_scalar(&sql(insert))
        .bind(Uuid::now_v7().to_string())
        .bind(r.user.clone())
        .bind(r.job_id.to_string())
        .bind(r.entry.to_string())
        .bind(r.kind.clone())
        .bind(r.units)
        .bind(r.credit_units)
        .bind(r.period.clone())
        .bind(r.reason.clone())
        .bind(to_micros(r.at))
        .bind(day_of(r.at))
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?;
    if written.is_none() {
        return Ok(false);
    }
    if in_tx_total {
        sqlx::query(&sql("UPDATE usage_periods SET used = used + $3 WHERE user_id = $1::uuid AND period = $2"))
            .bind(r.user.clone())
            .bind(r.period.clone())
            .bind(r.units)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    if r.credit_units != 0 {
        sqlx::query(&sql("UPDATE usage_accounts SET credits = credits - $2, updated_at = gv_ts($3) WHERE user_id = $1::uuid"))
            .bind(r.user.clone())
            .bind(r.credit_units)
            .bind(to_micros(r.at))
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
    }
    Ok(true)
}
