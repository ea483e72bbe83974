//! Pay-per-use metering: what a submission costs, what each plan allows, and the ledger
//! entries that record it. The ledger (in the relational store) is the truth and is only ever
//! appended to. Each account has a running total per period that admission is checked
//! against, so an account at the edge of its allowance is never admitted past it:
//! - embedded (and any SQL-only deployment): the total is a row updated conditionally in the
//!   admission's own transaction, with the ledger entry and the account's terms;
//! - AWS: the total is a DynamoDB item (`ports::UsageTotals`) taken by one conditional write
//!   before the transaction, and given back if the transaction fails. Between the two writes
//!   the total may run ahead of the ledger for a moment; reconciliation (which waits for
//!   `QUIET`) repairs whatever a crash left, in either direction.
//!
//! Units: a text or a post is 1 unit; a video is 1 unit per started minute of media. A
//! video's length is known only once it is measured, so admission reserves the most a video
//! may cost (the media length cap) and extraction returns the minutes it did not use.
//! Periods are calendar months in UTC.

use time::{Date, Month, OffsetDateTime, Time};
use uuid::Uuid;

use crate::model::{Plan, UsageKind};

/// What one plan includes each period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanTerms {
    /// Units included per period.
    pub monthly_units: u64,
    /// Free stops at the allowance; paid plans go on and the overage is billed.
    pub hard_cap: bool,
    /// The price of a unit past the allowance, in US cents (0 where there is no overage).
    pub overage_cents_per_unit: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageTerms {
    pub free: PlanTerms,
    pub pro: PlanTerms,
    pub enterprise: PlanTerms,
    /// A video reserves this many units at admission (one per started minute of the longest
    /// video analysed).
    pub video_reserve_units: u64,
}

impl Default for UsageTerms {
    fn default() -> Self {
        UsageTerms {
            free: PlanTerms { monthly_units: 25, hard_cap: true, overage_cents_per_unit: 0 },
            pro: PlanTerms { monthly_units: 1_000, hard_cap: false, overage_cents_per_unit: 2 },
            enterprise: PlanTerms { monthly_units: 20_000, hard_cap: false, overage_cents_per_unit: 1 },
            video_reserve_units: 3,
        }
    }
}

impl UsageTerms {
    pub fn plan(&self, plan: Plan) -> PlanTerms {
        match plan {
            Plan::Free => self.free,
            Plan::Pro => self.pro,
            Plan::Enterprise => self.enterprise,
        }
    }

    /// Units reserved when a submission of this kind (or a comparison) is admitted.
    pub fn admission_units(&self, kind: UsageKind) -> u64 {
        match kind {
            UsageKind::Video => self.video_reserve_units,
            UsageKind::Post | UsageKind::Text | UsageKind::Compare => 1,
        }
    }

    /// The allowance of an account on `plan`: its own override, or the plan's.
    pub fn allowance(&self, plan: Plan, account: &UsageAccount) -> u64 {
        account.allowance_override.unwrap_or(self.plan(plan).monthly_units)
    }

    /// Terms for a video cap of `max_seconds` (one unit per started minute).
    pub fn with_video_cap(self, max_seconds: f64) -> Self {
        UsageTerms { video_reserve_units: video_units(max_seconds).max(1), ..self }
    }
}

/// What a measured video costs: one unit per started minute, at least one.
pub fn video_units(duration_s: f64) -> u64 {
    if duration_s.is_finite() && duration_s > 0.0 { (duration_s / 60.0).ceil() as u64 } else { 1 }
}

/// A calendar month in UTC: its key (`2026-12`), start and end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub key: String,
    pub starts_at: OffsetDateTime,
    pub resets_at: OffsetDateTime,
}

impl Period {
    pub fn of(t: OffsetDateTime) -> Period {
        let t = t.to_offset(time::UtcOffset::UTC);
        let first =
            |y: i32, m: Month| Date::from_calendar_date(y, m, 1).expect("the first of a month").with_time(Time::MIDNIGHT).assume_utc();
        let starts_at = first(t.year(), t.month());
        let (ny, nm) = if t.month() == Month::December { (t.year() + 1, Month::January) } else { (t.year(), t.month().next()) };
        Period { key: format!("{:04}-{:02}", t.year(), u8::from(t.month())), starts_at, resets_at: first(ny, nm) }
    }

    /// The period a key (`2026-12`) names.
    pub fn from_key(key: &str) -> Option<Period> {
        let (year, month) = key.split_once('-')?;
        let month = Month::try_from(month.parse::<u8>().ok()?).ok()?;
        let first = Date::from_calendar_date(year.parse().ok()?, month, 1).ok()?;
        Some(Period::of(first.with_time(Time::MIDNIGHT).assume_utc()))
    }

    /// Whole seconds until the period resets (at least 1).
    pub fn seconds_left(&self, now: OffsetDateTime) -> u64 {
        ((self.resets_at - now).whole_seconds()).max(1) as u64
    }
}

/// An account's own terms, set by an operator.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UsageAccount {
    /// Units per period instead of the plan's.
    pub allowance_override: Option<u64>,
    /// Prepaid units left; None when the account does not pay in advance.
    pub credits: Option<u64>,
    /// The Stripe customer its usage is billed to; None: not exported.
    pub stripe_customer_id: Option<String>,
}

/// An operator's change to an account's terms: `None` leaves a field as it is; `Some(None)`
/// clears it. Applied by the store in one transaction against the row as it is then, so a
/// prepaid debit committed meanwhile is never undone by a change to another field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountChange {
    pub allowance_override: Option<Option<u64>>,
    /// Sets the prepaid balance (None: not prepaid).
    pub credits: Option<Option<u64>>,
    /// Adds to the prepaid balance after any set (a top-up; an account not prepaid starts at 0).
    pub add_credits: Option<u64>,
    pub stripe_customer_id: Option<Option<String>>,
}

impl AccountChange {
    /// Every field set to `account`'s.
    pub fn set_all(account: &UsageAccount) -> Self {
        AccountChange {
            allowance_override: Some(account.allowance_override),
            credits: Some(account.credits),
            add_credits: None,
            stripe_customer_id: Some(account.stripe_customer_id.clone()),
        }
    }

    /// The account after this change; None when a top-up would overflow.
    pub fn apply(&self, before: &UsageAccount) -> Option<UsageAccount> {
        let mut credits = self.credits.unwrap_or(before.credits);
        if let Some(add) = self.add_credits {
            credits = Some(credits.unwrap_or(0).checked_add(add)?);
        }
        Some(UsageAccount {
            allowance_override: self.allowance_override.unwrap_or(before.allowance_override),
            credits,
            stripe_customer_id: self.stripe_customer_id.clone().unwrap_or_else(|| before.stripe_customer_id.clone()),
        })
    }
}

/// The charge written with an admitted submission (or a comparison, which has no job).
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    pub entry_id: Uuid,
    pub user_id: Uuid,
    /// The job charged for; a comparison's own id (the ledger's key, with the entry).
    pub job_id: Uuid,
    pub kind: UsageKind,
    pub units: u64,
    pub period: Period,
    /// The plan's allowance; the account's own override, read with the charge, wins.
    pub plan_allowance: u64,
    /// Refuse (quota_exceeded) past the allowance (free), or admit and bill the overage.
    pub hard_cap: bool,
    pub at: OffsetDateTime,
}

/// The account's usage right after an admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// The allowance the charge was admitted against (the override, or the plan's).
    pub allowance: u64,
    /// Units used this period, this charge included.
    pub used: u64,
    /// Prepaid units left, where the account has them.
    pub credits: Option<u64>,
}

/// One day's ledger for one kind of content (or comparisons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDay {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub kind: UsageKind,
    /// Net units: charges less adjustments and reversals.
    pub units: i64,
    /// Analyses admitted, and of them credited back.
    pub analyses: u64,
    pub reversed: u64,
}

/// A period total that did not match the ledger entries it sums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub user_id: Uuid,
    pub period: String,
    /// The running total, and what the ledger sums to.
    pub counter: i64,
    pub ledger: i64,
    /// Set to the ledger's sum (false: it changed meanwhile; the next run looks again).
    pub repaired: bool,
}

/// Reconciliation leaves alone a total kept outside the store (DynamoDB) that changed this
/// recently: an admission takes its units there before its ledger entry commits, so for a
/// moment the two differ without having drifted.
pub const QUIET: time::Duration = time::Duration::minutes(2);

/// What the scheduled quota job found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuotaReport {
    pub periods: Vec<String>,
    pub accounts_checked: u64,
    pub drifted: Vec<Drift>,
}

/// The quota job's reconciliation: every account's running total in the current period
/// (and, on a period's first day, the one before, where late reversals land) against the
/// ledger; a total that drifted is set to the ledger's sum, and reported. The ledger is the
/// truth: totals only make admission fast.
pub async fn reconcile(store: &dyn crate::ports::Store, at: OffsetDateTime) -> crate::Result<QuotaReport> {
    let current = Period::of(at);
    let mut periods = vec![current.key.clone()];
    if at - current.starts_at < time::Duration::days(1) {
        periods.push(Period::of(current.starts_at - time::Duration::seconds(1)).key);
    }
    let mut report = QuotaReport::default();
    for period in periods {
        let (checked, drifted) = store.reconcile_usage(&period).await?;
        for d in &drifted {
            tracing::warn!(user_id = %d.user_id, period = %d.period, counter = d.counter, ledger = d.ledger, repaired = d.repaired, "usage total drifted from the ledger");
        }
        report.accounts_checked += checked;
        report.drifted.extend(drifted);
        report.periods.push(period);
    }
    Ok(report)
}

/// The allowance shares that send a `usage.threshold` notice, once per period each.
pub const THRESHOLDS: [u32; 2] = [80, 100];
/// Attempts at delivering one notice to one target before it is given up.
pub const NOTICE_ATTEMPTS: u32 = 8;

/// One target's delivery of one notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageNotice {
    pub user_id: Uuid,
    pub period: String,
    pub threshold: u32,
    pub target_url: String,
    /// The same on every attempt (`X-GVN-Delivery`), so a receiver can drop a repeat.
    pub delivery_id: Uuid,
    pub attempts: u32,
}

/// What the notices part of the quota job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoticeReport {
    pub crossed: u64,
    pub delivered: u64,
    pub retrying: u64,
    pub dead: u64,
}

/// Finds the accounts that reached 80% or 100% of their allowance this period (of the 500
/// heaviest), claims each threshold once, and delivers the claimed notices to every active
/// subscription to `usage.threshold`: signed like job notices, retried with backoff, given up
/// after `NOTICE_ATTEMPTS`.
pub async fn notify_thresholds(
    store: &dyn crate::ports::Store,
    webhooks: &dyn crate::ports::WebhookSender,
    terms: &UsageTerms,
    at: OffsetDateTime,
) -> crate::Result<NoticeReport> {
    use crate::model::{DeliveryStatus, WebhookEvent};
    let period = Period::of(at);
    let mut report = NoticeReport::default();
    for (user_id, used) in store.heaviest_accounts(&period.key, 500).await? {
        let Some(user) = store.user_by_id(user_id).await? else { continue };
        let allowance = terms.allowance(user.plan, &store.usage_account(user_id).await?);
        let crossed: Vec<u32> = THRESHOLDS.into_iter().filter(|t| allowance > 0 && used * 100 >= u64::from(*t) * allowance).collect();
        if crossed.is_empty() {
            continue;
        }
        let targets: Vec<String> = store
            .webhooks_for_user(user_id)
            .await?
            .into_iter()
            .filter(|w| w.active && w.events.contains(&WebhookEvent::UsageThreshold))
            .map(|w| w.target_url)
            .collect();
        for threshold in crossed {
            if store.claim_usage_notice(user_id, &period.key, threshold, &targets, at).await? {
                report.crossed += 1;
            }
        }
    }
    for notice in store.due_usage_notices(at, 500).await? {
        let subscription =
            store.webhooks_for_user(notice.user_id).await?.into_iter().find(|w| w.target_url == notice.target_url && w.active);
        let Some(sub) = subscription else {
            store.record_usage_notice(&notice, DeliveryStatus::Dead, Some("the subscription is gone"), at).await?;
            report.dead += 1;
            continue;
        };
        let p = Period::from_key(&notice.period).unwrap_or_else(|| Period::of(at));
        let used = store.period_usage(notice.user_id, &notice.period).await?;
        let allowance = match store.user_by_id(notice.user_id).await? {
            Some(u) => terms.allowance(u.plan, &store.usage_account(u.id).await?),
            None => 0,
        };
        let rfc = time::format_description::well_known::Rfc3339;
        let body = serde_json::to_vec(&serde_json::json!({
            "event": WebhookEvent::UsageThreshold.as_str(),
            "user_id": notice.user_id,
            "period": notice.period,
            "threshold_percent": notice.threshold,
            "allowance": allowance,
            "used": used,
            "resets_at": p.resets_at.format(&rfc).unwrap_or_default(),
            "timestamp": at.format(&rfc).unwrap_or_default(),
        }))
        .expect("a notice serialises");
        let headers = crate::ports::signed_delivery_headers(
            &sub.id.to_string(),
            WebhookEvent::UsageThreshold,
            notice.delivery_id,
            &sub.secret,
            &body,
        );
        let outcome = webhooks.post(&notice.target_url, &headers, &body).await;
        let (status, error) = outcome.next_status(notice.attempts + 1, NOTICE_ATTEMPTS);
        match status {
            DeliveryStatus::Delivered => report.delivered += 1,
            DeliveryStatus::Pending => report.retrying += 1,
            DeliveryStatus::Dead => report.dead += 1,
        }
        store.record_usage_notice(&notice, status, error.as_deref(), at).await?;
    }
    Ok(report)
}

/// The scheduled quota job's parts (`cron-quota` on AWS, a timer in `goviral serve`).
pub struct QuotaJob<'a> {
    pub store: &'a dyn crate::ports::Store,
    pub webhooks: &'a dyn crate::ports::WebhookSender,
    /// Stripe's Meters API, where configured.
    pub sink: Option<&'a dyn crate::billing::MeterSink>,
    pub terms: &'a UsageTerms,
}

/// What one run of the quota job did; each step runs whether or not another failed.
#[derive(Debug)]
pub struct QuotaRun {
    pub notices: crate::Result<NoticeReport>,
    /// None where no billing export is configured.
    pub export: Option<crate::Result<crate::billing::DrainReport>>,
    /// None when the run was not asked to reconcile.
    pub reconciled: Option<crate::Result<QuotaReport>>,
}

impl QuotaJob<'_> {
    /// Threshold notices, the billing export, and (with `reconcile`) the totals checked
    /// against the ledger.
    pub async fn run(&self, at: OffsetDateTime, reconcile: bool) -> QuotaRun {
        let notices = notify_thresholds(self.store, self.webhooks, self.terms, at).await;
        let export = match self.sink {
            Some(sink) => Some(crate::billing::drain(self.store, sink, at).await),
            None => None,
        };
        let reconciled = if reconcile { Some(self::reconcile(self.store, at).await) } else { None };
        QuotaRun { notices, export, reconciled }
    }
}

impl QuotaRun {
    /// The first step that failed, if one did.
    pub fn error(&self) -> Option<&crate::Error> {
        let export = self.export.as_ref().and_then(|r| r.as_ref().err());
        let reconciled = self.reconciled.as_ref().and_then(|r| r.as_ref().err());
        self.notices.as_ref().err().or(export).or(reconciled)
    }
}

/// Whether a failed job is credited back: yes when it failed for our reasons (a stage that
/// kept failing, a timeout, moderation unavailable); no when what was sent caused it
/// (flagged content, media that cannot be analysed: `Stage.Permanent`).
pub fn refunded(error: &str) -> bool {
    !matches!(error, "Stage.Permanent" | "content_flagged")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn periods_are_utc_calendar_months() {
        let p = Period::of(datetime!(2026-12-31 23:59:59 UTC));
        assert_eq!(p.key, "2026-12");
        assert_eq!((p.starts_at, p.resets_at), (datetime!(2026-12-01 0:00 UTC), datetime!(2027-01-01 0:00 UTC)));
        assert_eq!(p.seconds_left(datetime!(2026-12-31 23:59:59 UTC)), 1);
        // Local time is converted first.
        assert_eq!(Period::of(datetime!(2027-01-01 01:00 +02:00)).key, "2026-12");
        assert_eq!(Period::of(datetime!(2026-02-10 12:00 UTC)).resets_at, datetime!(2026-03-01 0:00 UTC));
        assert_eq!(Period::from_key("2026-12"), Some(p));
        assert_eq!((Period::from_key("2026-13"), Period::from_key("december")), (None, None));
    }

    #[test]
    fn a_video_costs_its_started_minutes_and_reserves_the_cap() {
        assert_eq!((video_units(0.5), video_units(60.0), video_units(60.1), video_units(180.0)), (1, 1, 2, 3));
        assert_eq!(video_units(f64::NAN), 1);
        let terms = UsageTerms::default().with_video_cap(300.0);
        assert_eq!((terms.admission_units(UsageKind::Video), terms.admission_units(UsageKind::Text)), (5, 1));
    }

    #[test]
    fn only_our_failures_are_credited_back() {
        assert!(refunded("Stage.Retryable") && refunded("States.Timeout") && refunded("States.Runtime"));
        assert!(!refunded("Stage.Permanent") && !refunded("content_flagged"));
    }
}
