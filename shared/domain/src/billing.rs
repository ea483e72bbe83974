//! The billing export: the ledger's usage sent to Stripe's Meters API from an outbox, exactly
//! once per charge from Stripe's point of view. A job's usage is sent once the job has ended
//! (so a video is billed at its measured minutes, and a job credited back before export is
//! never billed); the identifier is the charge's ledger id, so a send whose answer was lost is
//! sent again and Stripe refuses the duplicate, which counts as delivered. A charge credited
//! back after it was sent is cancelled with a meter event adjustment (Stripe allows that for
//! 24 hours; later, the export says it could not and an operator issues a credit note).

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ports::Store;

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeterAction {
    /// A meter event of `units` for the customer, at `at`.
    Event { customer_id: String, units: u64, at: OffsetDateTime },
    /// Cancel the meter event sent under the identifier.
    Cancel,
}

/// One outbox item: the charge's ledger id is its identifier at Stripe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterItem {
    pub identifier: Uuid,
    pub user_id: Uuid,
    pub action: MeterAction,
    /// Failed sends so far.
    pub attempts: u32,
}

/// How Stripe answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeterOutcome {
    Sent,
    /// Stripe already has this identifier: an earlier send went through.
    AlreadySent,
    /// Worth sending again later (429, 5xx, no answer).
    Retry(String),
    /// Never going to be taken (too old, unknown customer): kept for an operator.
    Refused(String),
    /// Nothing to bill (the job was credited back before it was sent).
    Nothing,
}

/// Stripe's Meters API (an HTTP adapter; a fake one in the tests).
#[async_trait]
pub trait MeterSink: Send + Sync {
    async fn send(&self, item: &MeterItem) -> MeterOutcome;
}

/// What one drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainReport {
    pub sent: u64,
    pub cancelled: u64,
    pub retrying: u64,
    pub refused: u64,
}

/// The most items one drain sends (the next run takes the rest).
pub const DRAIN_BATCH: u32 = 500;
/// Attempts before an item is given up (about a day of backoff).
pub const MAX_ATTEMPTS: u32 = 12;

/// Backoff after `attempts` failed sends: 30 s doubling, at most 4 h.
pub fn backoff(attempts: u32) -> time::Duration {
    time::Duration::seconds((30i64 << attempts.min(9)).min(4 * 3_600))
}

/// Sends what is due and records each answer.
pub async fn drain(store: &dyn Store, sink: &dyn MeterSink, now: OffsetDateTime) -> crate::Result<DrainReport> {
    let mut report = DrainReport::default();
    for item in store.meter_outbox(now, DRAIN_BATCH).await? {
        let outcome = match item.action {
            MeterAction::Event { units: 0, .. } => MeterOutcome::Nothing,
            _ => sink.send(&item).await,
        };
        let cancel = item.action == MeterAction::Cancel;
        let outcome = match outcome {
            MeterOutcome::Retry(why) if item.attempts + 1 >= MAX_ATTEMPTS => {
                MeterOutcome::Refused(format!("gave up after {MAX_ATTEMPTS} attempts: {why}"))
            }
            other => other,
        };
        match &outcome {
            MeterOutcome::Sent | MeterOutcome::AlreadySent if cancel => report.cancelled += 1,
            MeterOutcome::Sent | MeterOutcome::AlreadySent => report.sent += 1,
            MeterOutcome::Retry(_) => report.retrying += 1,
            MeterOutcome::Nothing => {}
            MeterOutcome::Refused(why) => {
                tracing::warn!(identifier = %item.identifier, reason = %why, "Stripe refused a meter export; an operator must settle it");
                report.refused += 1
            }
        }
        store.record_meter_export(&item, &outcome, now).await?;
    }
    Ok(report)
}
