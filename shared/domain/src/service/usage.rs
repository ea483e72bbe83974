//! Usage as the customer and the operator read it: where an account stands this period, its
//! usage by day or month, and the operator's changes to an account's terms (audited).

use super::*;
use crate::usage::{Period, UsageAccount, UsageDay};

/// The longest range one usage request may cover.
pub const USAGE_MAX_DAYS: i64 = 366;
/// How many of the heaviest accounts the operator's list looks at.
const HEAVIEST: u32 = 500;

/// Where an account stands in the current period.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentUsage {
    pub user_id: Uuid,
    pub plan: Plan,
    pub period: Period,
    pub allowance: u64,
    pub used: u64,
    pub remaining: u64,
    /// Free stops at the allowance; paid plans are billed past it.
    pub hard_cap: bool,
    pub overage_units: u64,
    /// At this period's pace so far, the overage at its end.
    pub projected_overage_units: u64,
    pub overage_cents_per_unit: u64,
    pub credits: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Day,
    Month,
}

/// Usage over one day or month, for one kind of content.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageBucket {
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
    pub kind: UsageKind,
    pub units: i64,
    pub analyses: u64,
    pub reversed: u64,
}

/// An operator's change to an account's plan and terms; a field left out stays as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageChange {
    pub plan: Option<Plan>,
    pub terms: crate::usage::AccountChange,
}

fn day_start(day: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(day * 86_400).expect("a day in range")
}

impl App {
    pub async fn usage_current(&self, principal: &Principal, user_id: Uuid) -> Result<CurrentUsage> {
        if !principal.may_see(user_id) {
            return Err(Error::NotFound("user"));
        }
        self.account_usage(user_id).await
    }

    /// An account's standing this period, for operators (the CLI) and the route above.
    pub async fn account_usage(&self, user_id: Uuid) -> Result<CurrentUsage> {
        let user = self.store.user_by_id(user_id).await?.ok_or(Error::NotFound("user"))?;
        let account = self.store.usage_account(user_id).await?;
        self.standing(&user, &account, now()).await
    }

    async fn standing(&self, user: &User, account: &UsageAccount, at: OffsetDateTime) -> Result<CurrentUsage> {
        let terms = self.settings.usage.plan(user.plan);
        let allowance = self.settings.usage.allowance(user.plan, account);
        let period = Period::of(at);
        let used = self.store.period_usage(user.id, &period.key).await?;
        let length = (period.resets_at - period.starts_at).as_seconds_f64();
        let elapsed = (at - period.starts_at).as_seconds_f64().max(3_600.0).min(length);
        let projected = (used as f64 * length / elapsed).round() as u64;
        Ok(CurrentUsage {
            user_id: user.id,
            plan: user.plan,
            allowance,
            used,
            remaining: allowance.saturating_sub(used),
            hard_cap: terms.hard_cap,
            overage_units: if terms.hard_cap { 0 } else { used.saturating_sub(allowance) },
            projected_overage_units: if terms.hard_cap { 0 } else { projected.saturating_sub(allowance) },
            overage_cents_per_unit: terms.overage_cents_per_unit,
            credits: account.credits,
            period,
        })
    }

    /// Usage in buckets of a day or a calendar month (UTC), for the days `from..=to`.
    pub async fn usage_history(
        &self,
        principal: &Principal,
        user_id: Uuid,
        from: time::Date,
        to: time::Date,
        granularity: Granularity,
    ) -> Result<Vec<UsageBucket>> {
        if !principal.may_see(user_id) {
            return Err(Error::NotFound("user"));
        }
        self.account_history(user_id, from, to, granularity).await
    }

    /// An account's usage by day or month, for operators (the CLI export) and the route above.
    pub async fn account_history(
        &self,
        user_id: Uuid,
        from: time::Date,
        to: time::Date,
        granularity: Granularity,
    ) -> Result<Vec<UsageBucket>> {
        if self.store.user_by_id(user_id).await?.is_none() {
            return Err(Error::NotFound("user"));
        }
        let day = |d: time::Date| d.with_time(time::Time::MIDNIGHT).assume_utc().unix_timestamp().div_euclid(86_400);
        let (from_day, to_day) = (day(from), day(to));
        if from_day > to_day {
            return Err(Error::validation("from", "`from` must not be after `to`"));
        }
        if to_day - from_day >= USAGE_MAX_DAYS {
            return Err(Error::validation("to", format!("at most {USAGE_MAX_DAYS} days per request; page by moving `from`")));
        }
        let days = self.store.usage_by_day(user_id, from_day, to_day).await?;
        Ok(match granularity {
            Granularity::Day => days.into_iter().map(|d| bucket(&d, day_start(d.day), day_start(d.day + 1))).collect(),
            Granularity::Month => {
                let mut months: Vec<UsageBucket> = Vec::new();
                for d in days {
                    let p = Period::of(day_start(d.day));
                    match months.iter_mut().find(|m| m.starts_at == p.starts_at && m.kind == d.kind) {
                        Some(m) => {
                            m.units += d.units;
                            m.analyses += d.analyses;
                            m.reversed += d.reversed;
                        }
                        None => months.push(bucket(&d, p.starts_at, p.resets_at)),
                    }
                }
                months.sort_by_key(|m| (m.starts_at, m.kind.as_str()));
                months
            }
        })
    }

    /// Accounts at or past `share` of their allowance this period (the heaviest 500 are
    /// looked at), heaviest share first. Admin only.
    pub async fn usage_near_limit(&self, principal: &Principal, share: f64) -> Result<Vec<CurrentUsage>> {
        principal.require_admin()?;
        if !(0.0..=10.0).contains(&share) || !share.is_finite() {
            return Err(Error::validation("share", "must be between 0 and 10 (1 = the whole allowance)"));
        }
        let at = now();
        let mut out = Vec::new();
        for (user_id, _) in self.store.heaviest_accounts(&Period::of(at).key, HEAVIEST).await? {
            let Some(user) = self.store.user_by_id(user_id).await? else { continue };
            let standing = self.standing(&user, &self.store.usage_account(user_id).await?, at).await?;
            let ratio = standing.used as f64 / standing.allowance.max(1) as f64;
            if ratio >= share {
                out.push((ratio, standing));
            }
        }
        out.sort_by(|a, b| b.0.total_cmp(&a.0));
        Ok(out.into_iter().map(|(_, s)| s).collect())
    }

    /// An operator sets an account's plan, allowance or prepaid credits. Admin only; audited
    /// with the terms before and after.
    pub async fn set_usage_terms(
        &self,
        principal: &Principal,
        user_id: Uuid,
        change: UsageChange,
        origin: &Origin,
    ) -> Result<CurrentUsage> {
        principal.require_admin()?;
        let user = self.store.user_by_id(user_id).await?.ok_or(Error::NotFound("user"))?;
        if let Some(Some(id)) = &change.terms.stripe_customer_id {
            // Stripe's customer ids: `cus_` and letters or digits.
            let valid =
                id.len() <= 64 && id.strip_prefix("cus_").is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric()));
            if !valid {
                return Err(Error::validation("stripe_customer_id", "must be a Stripe customer id, `cus_` then letters and digits"));
            }
        }
        let at = now();
        if let Some(plan) = change.plan {
            self.store.set_user_plan(user_id, plan, at).await?;
        }
        let (before, after) = self.store.change_usage_account(user_id, &change.terms, at).await?;
        let payload = serde_json::json!({
            "user_id": user_id,
            "plan": {"before": user.plan.as_str(), "after": change.plan.unwrap_or(user.plan).as_str()},
            "allowance_override": {"before": before.allowance_override, "after": after.allowance_override},
            "credits": {"before": before.credits, "after": after.credits},
            "stripe_customer_id": {"before": before.stripe_customer_id, "after": after.stripe_customer_id},
        });
        self.audit(principal.actor(), "usage.terms", payload, origin).await?;
        let user = User { plan: change.plan.unwrap_or(user.plan), ..user };
        self.standing(&user, &after, at).await
    }
}

fn bucket(d: &UsageDay, starts_at: OffsetDateTime, ends_at: OffsetDateTime) -> UsageBucket {
    UsageBucket { starts_at, ends_at, kind: d.kind, units: d.units, analyses: d.analyses, reversed: d.reversed }
}
