//! Per-period usage totals in DynamoDB (`domain::ports::UsageTotals`), for admission on AWS.
//!
//! - totals table: partition key `user_id` (S), sort key `period` (S, `2026-12`); attributes
//!   `used` (N), `changed_at_us` (N), `ttl` (N).
//! - each applied change leaves a marker in the idempotency-keys table (`user_id`, and `key` =
//!   `usage <period> <job> <entry>`: a client's Idempotency-Key is visible ASCII and never
//!   holds a space, so the two never meet), so a retried change is applied once.
//!
//! A change is two conditional writes, the marker and then the total, rather than one
//! TransactWriteItems: 200 transactions on one hot item conflict with each other
//! (TransactionConflict) and would mostly be refused, while conditional updates of one item
//! are serialised by DynamoDB and re-check their condition each. A crash between the two
//! writes leaves the total behind the ledger, never ahead of the allowance; the quota job's
//! reconciliation repairs it. Both kinds of item expire two months after their period.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use domain::model::to_micros;
use domain::ports::{PeriodTotal, Take, UsageTotals};
use domain::usage::{Charge, Period};
use domain::{Error, Result};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::counters::{Item, condition_failed, dynamo_error, get_n, n, s, ttl_secs};

/// How long totals and markers outlive their period (reconciliation looks one period back).
const KEPT_AFTER_PERIOD: time::Duration = time::Duration::days(62);

pub struct DynamoUsageTotals {
    client: Client,
    totals_table: String,
    markers_table: String,
}

fn expires_at_us(period: &str, at: OffsetDateTime) -> i64 {
    let resets_at = Period::from_key(period).map_or(at, |p| p.resets_at);
    to_micros(resets_at + KEPT_AFTER_PERIOD)
}

fn marker_key(period: &str, job_id: Uuid, entry: &str) -> String {
    format!("usage {period} {job_id} {entry}")
}

fn total_of(item: &Item) -> Result<PeriodTotal> {
    let user = match item.get("user_id") {
        Some(AttributeValue::S(v)) => v,
        _ => return Err(Error::Internal("dynamodb: usage total without user_id".into())),
    };
    Ok(PeriodTotal {
        user_id: Uuid::parse_str(user).map_err(|_| Error::Internal(format!("dynamodb: user_id {user:?} is not a uuid")))?,
        used: get_n(item, "used")?,
        changed_at_us: get_n(item, "changed_at_us")?,
    })
}

impl DynamoUsageTotals {
    /// `markers_table` is the idempotency-keys table (`user_id`, `key`).
    pub fn new(config: &aws_config::SdkConfig, totals_table: impl Into<String>, markers_table: impl Into<String>) -> Self {
        DynamoUsageTotals { client: Client::new(config), totals_table: totals_table.into(), markers_table: markers_table.into() }
    }

    /// Leaves the marker of (job, entry); false when it was left before (the change is applied).
    async fn mark(&self, user_id: Uuid, period: &str, job_id: Uuid, entry: &str, units: i64, at: OffsetDateTime) -> Result<bool> {
        let expires = expires_at_us(period, at);
        let put = self
            .client
            .put_item()
            .table_name(&self.markers_table)
            .item("user_id", s(user_id.to_string()))
            .item("key", s(marker_key(period, job_id, entry)))
            .item("units", n(units))
            .item("expires_at_us", n(expires))
            .item("ttl", ttl_secs(expires))
            .condition_expression("attribute_not_exists(user_id)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(dynamo_error("put_item", e)),
        }
    }

    async fn unmark(&self, user_id: Uuid, period: &str, job_id: Uuid, entry: &str) {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.markers_table)
            .key("user_id", s(user_id.to_string()))
            .key("key", s(marker_key(period, job_id, entry)))
            .send()
            .await;
        if let Err(e) = deleted {
            // Harmless: the marker only stops the same job being charged again, and expires.
            tracing::warn!(%job_id, error = %dynamo_error("delete_item", e), "usage marker left behind");
        }
    }

    /// An update of the account's total to `used` (an expression over `#used`), stamped with
    /// when it changed and when it expires.
    fn set_total(&self, user_id: Uuid, period: &str, used: &str, at: OffsetDateTime) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.totals_table)
            .key("user_id", s(user_id.to_string()))
            .key("period", s(period))
            .update_expression(format!("SET #used = {used}, #at = :now, #ttl = :ttl"))
            .expression_attribute_names("#used", "used")
            .expression_attribute_names("#at", "changed_at_us")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", n(to_micros(at)))
            .expression_attribute_values(":ttl", ttl_secs(expires_at_us(period, at)))
    }

    /// Adds `units` to the total, under `cap` where there is one: the total after, or None
    /// when the cap refused it.
    async fn add(&self, user_id: Uuid, period: &str, units: i64, cap: Option<u64>, at: OffsetDateTime) -> Result<Option<u64>> {
        let mut update = self
            .set_total(user_id, period, "if_not_exists(#used, :zero) + :units", at)
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":units", n(units))
            .return_values(ReturnValue::AllNew);
        if let Some(cap) = cap {
            let Some(room) = (cap as i64).checked_sub(units).filter(|r| *r >= 0) else { return Ok(None) };
            update =
                update.condition_expression("attribute_not_exists(#used) OR #used <= :room").expression_attribute_values(":room", n(room));
        }
        match update.send().await {
            Ok(out) => Ok(Some(get_n(out.attributes().unwrap_or(&Item::new()), "used")?.max(0) as u64)),
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(dynamo_error("update_item", e)),
        }
    }
}

#[async_trait]
impl UsageTotals for DynamoUsageTotals {
    async fn take(&self, c: &Charge, cap: Option<u64>) -> Result<Take> {
        let period = &c.period.key;
        // More than the whole allowance: refused without writing anything.
        if cap.is_some_and(|cap| c.units > cap) {
            return Ok(Take::Refused { used: self.used(c.user_id, period).await? });
        }
        if !self.mark(c.user_id, period, c.job_id, "charge", c.units as i64, c.at).await? {
            return Ok(Take::Already { used: self.used(c.user_id, period).await? });
        }
        // On an error it is unknown whether the units were added: the marker stays (a retry of
        // this job is not charged twice) and reconciliation settles the total on the ledger.
        match self.add(c.user_id, period, c.units as i64, cap, c.at).await? {
            Some(used) => Ok(Take::Taken { used }),
            None => {
                self.unmark(c.user_id, period, c.job_id, "charge").await;
                Ok(Take::Refused { used: self.used(c.user_id, period).await? })
            }
        }
    }

    async fn adjust(&self, user_id: Uuid, period: &str, job_id: Uuid, entry: &str, units: i64, at: OffsetDateTime) -> Result<()> {
        if self.mark(user_id, period, job_id, entry, units, at).await? {
            self.add(user_id, period, units, None, at).await?;
        }
        Ok(())
    }

    async fn used(&self, user_id: Uuid, period: &str) -> Result<u64> {
        let out = self
            .client
            .get_item()
            .table_name(&self.totals_table)
            .key("user_id", s(user_id.to_string()))
            .key("period", s(period))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo_error("get_item", e))?;
        match out.item() {
            Some(item) => Ok(get_n(item, "used")?.max(0) as u64),
            None => Ok(0),
        }
    }

    /// A scan of the table (it holds about three periods of accounts; the quota job runs it
    /// every ten minutes), filtered to `period`.
    async fn period_totals(&self, period: &str) -> Result<Vec<PeriodTotal>> {
        let mut totals = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.totals_table)
                .consistent_read(true)
                .filter_expression("#p = :p")
                .expression_attribute_names("#p", "period")
                .expression_attribute_values(":p", s(period))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| dynamo_error("scan", e))?;
            for item in page.items() {
                totals.push(total_of(item)?);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(totals),
            }
        }
    }

    async fn repair(&self, user_id: Uuid, period: &str, seen: Option<&PeriodTotal>, value: i64, at: OffsetDateTime) -> Result<bool> {
        let mut update = self.set_total(user_id, period, ":value", at).expression_attribute_values(":value", n(value));
        update = match seen {
            Some(t) => update
                .condition_expression("#used = :seen AND #at = :seen_at")
                .expression_attribute_values(":seen", n(t.used))
                .expression_attribute_values(":seen_at", n(t.changed_at_us)),
            None => update.condition_expression("attribute_not_exists(#used)"),
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(dynamo_error("update_item", e)),
        }
    }
}
