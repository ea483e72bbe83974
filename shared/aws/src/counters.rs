//! Hot counters in DynamoDB: rate-limit and usage counters and idempotency keys.
//!
//! Two tables, both with a `ttl` attribute (epoch seconds) that DynamoDB's TTL deletes by
//! itself, sometimes days late, so every read and condition also compares `expires_at_us`:
//! an expired item behaves as absent whether or not TTL has removed it yet.
//! - counters: partition key `key` (S); attributes `n` (N), `expires_at_us` (N), `ttl` (N).
//! - idempotency keys: partition key `user_id` (S), sort key `key` (S); attributes
//!   `request_hash`, `job_id`, `expires_at_us`, `ttl`.
//!
//! Every write is one conditional request, so concurrent Lambdas never lose an update. (`key`
//! and `n` are reserved words in expressions, hence the `#` aliases.)

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use domain::ports::{Counters, IdempotencyRecord, Reservation};
use domain::{Error, Result};
use uuid::Uuid;

use crate::unavailable;

/// A conditional write that lost a race is tried again this many times before giving up.
const RACE_ATTEMPTS: usize = 8;

pub struct DynamoCounters {
    client: Client,
    counters_table: String,
    idempotency_table: String,
}

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The TTL attribute: whole seconds, rounded up so DynamoDB never deletes a live item.
pub(crate) fn ttl_secs(expires_at_us: i64) -> AttributeValue {
    n(expires_at_us.div_euclid(1_000_000) + 1)
}

pub(crate) fn get_n(item: &Item, name: &str) -> Result<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| Error::Internal(format!("dynamodb: {name}={v:?} is not an integer"))),
        _ => Err(Error::Internal(format!("dynamodb: item has no number {name}"))),
    }
}

fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(Error::Internal(format!("dynamodb: item has no string {name}"))),
    }
}

/// True when the request failed only because its condition did not hold.
pub(crate) fn condition_failed<E, R>(e: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException")
}

pub(crate) fn dynamo_error<E, R>(op: &str, e: SdkError<E, R>) -> Error
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    unavailable(&format!("dynamodb {op}"), DisplayErrorContext(e))
}

impl DynamoCounters {
    pub fn new(config: &aws_config::SdkConfig, counters_table: impl Into<String>, idempotency_table: impl Into<String>) -> Self {
        DynamoCounters { client: Client::new(config), counters_table: counters_table.into(), idempotency_table: idempotency_table.into() }
    }

    /// Deletes the expired items of one table (scan, then a delete conditioned on still being
    /// expired, so an item renewed meanwhile stays). Returns how many went.
    async fn purge_table(&self, table: &str, key_names: &[&str], now_us: i64) -> Result<u64> {
        let mut purged = 0;
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(table)
                .filter_expression("expires_at_us <= :now")
                .expression_attribute_values(":now", n(now_us))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| dynamo_error("scan", e))?;
            for item in page.items() {
                let key: Item = key_names.iter().filter_map(|k| item.get(*k).map(|v| (k.to_string(), v.clone()))).collect();
                let deleted = self
                    .client
                    .delete_item()
                    .table_name(table)
                    .set_key(Some(key))
                    .condition_expression("expires_at_us <= :now")
                    .expression_attribute_values(":now", n(now_us))
                    .send()
                    .await;
                match deleted {
                    Ok(_) => purged += 1,
                    Err(e) if condition_failed(&e) => {}
                    Err(e) => return Err(dynamo_error("delete_item", e)),
                }
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(purged),
            }
        }
    }
}

#[async_trait]
impl Counters for DynamoCounters {
    async fn increment(&self, key: &str, expires_at_us: i64, now_us: i64) -> Result<u64> {
        for _ in 0..RACE_ATTEMPTS {
            // A live counter: add one.
            let added = self
                .client
                .update_item()
                .table_name(&self.counters_table)
                .key("key", s(key))
                .update_expression("ADD #n :one")
                .condition_expression("expires_at_us > :now")
                .expression_attribute_names("#n", "n")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":now", n(now_us))
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await;
            match added {
                Ok(out) => return get_n(out.attributes().unwrap_or(&Item::new()), "n").map(|v| v as u64),
                Err(e) if condition_failed(&e) => {}
                Err(e) => return Err(dynamo_error("update_item", e)),
            }
            // Missing or expired: start it at one, unless another caller just did.
            let started = self
                .client
                .put_item()
                .table_name(&self.counters_table)
                .item("key", s(key))
                .item("n", n(1))
                .item("expires_at_us", n(expires_at_us))
                .item("ttl", ttl_secs(expires_at_us))
                .condition_expression("attribute_not_exists(#k) OR expires_at_us <= :now")
                .expression_attribute_names("#k", "key")
                .expression_attribute_values(":now", n(now_us))
                .send()
                .await;
            match started {
                Ok(_) => return Ok(1),
                Err(e) if condition_failed(&e) => continue,
                Err(e) => return Err(dynamo_error("put_item", e)),
            }
        }
        Err(Error::Unavailable(format!("dynamodb: counter {key} kept changing under {RACE_ATTEMPTS} attempts")))
    }

    async fn get(&self, key: &str, now_us: i64) -> Result<u64> {
        let out = self
            .client
            .get_item()
            .table_name(&self.counters_table)
            .key("key", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo_error("get_item", e))?;
        let Some(item) = out.item() else { return Ok(0) };
        // Expired items count as absent even before TTL deletes them.
        if get_n(item, "expires_at_us")? <= now_us {
            return Ok(0);
        }
        Ok(get_n(item, "n")?.max(0) as u64)
    }

    async fn reserve_idempotency(&self, r: &IdempotencyRecord, now_us: i64) -> Result<Reservation> {
        for _ in 0..RACE_ATTEMPTS {
            let put = self
                .client
                .put_item()
                .table_name(&self.idempotency_table)
                .item("user_id", s(r.user_id.to_string()))
                .item("key", s(&r.key))
                .item("request_hash", s(&r.request_hash))
                .item("job_id", s(r.job_id.to_string()))
                .item("expires_at_us", n(r.expires_at_us))
                .item("ttl", ttl_secs(r.expires_at_us))
                .condition_expression("attribute_not_exists(user_id) OR expires_at_us <= :now")
                .expression_attribute_values(":now", n(now_us))
                .send()
                .await;
            match put {
                Ok(_) => return Ok(Reservation::Reserved),
                Err(e) if condition_failed(&e) => {}
                Err(e) => return Err(dynamo_error("put_item", e)),
            }
            let held = self
                .client
                .get_item()
                .table_name(&self.idempotency_table)
                .key("user_id", s(r.user_id.to_string()))
                .key("key", s(&r.key))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| dynamo_error("get_item", e))?;
            // Released or expired between the two calls: try to take it again.
            let Some(item) = held.item() else { continue };
            let expires_at_us = get_n(item, "expires_at_us")?;
            if expires_at_us <= now_us {
                continue;
            }
            let job_id = get_s(item, "job_id")?;
            return Ok(Reservation::Existing(IdempotencyRecord {
                user_id: r.user_id,
                key: r.key.clone(),
                request_hash: get_s(item, "request_hash")?.to_string(),
                job_id: Uuid::parse_str(job_id).map_err(|_| Error::Internal(format!("dynamodb: job_id {job_id:?} is not a uuid")))?,
                expires_at_us,
            }));
        }
        Err(Error::Unavailable(format!("dynamodb: idempotency key kept changing under {RACE_ATTEMPTS} attempts")))
    }

    async fn release_idempotency(&self, user_id: Uuid, key: &str, job_id: Uuid) -> Result<()> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.idempotency_table)
            .key("user_id", s(user_id.to_string()))
            .key("key", s(key))
            .condition_expression("job_id = :job")
            .expression_attribute_values(":job", s(job_id.to_string()))
            .send()
            .await;
        match deleted {
            // Held by another request now (or gone): not ours to free.
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(dynamo_error("delete_item", e)),
        }
    }

    /// TTL deletes expired items on AWS without this; it exists for the port's contract and
    /// for an operator who wants the tables trimmed now.
    async fn purge_expired(&self, now_us: i64) -> Result<u64> {
        let counters = self.purge_table(&self.counters_table, &["key"], now_us).await?;
        let keys = self.purge_table(&self.idempotency_table, &["user_id", "key"], now_us).await?;
        Ok(counters + keys)
    }
}
