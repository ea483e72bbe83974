//! Variant comparison: 2–10 captions or headlines ranked at once, synchronously, metered like
//! an analysis (one unit a comparison, under the same allowance, credits and rate limit).

use super::*;
use crate::ports::{Ranker, Ranking};

pub const COMPARE_MIN_VARIANTS: usize = 2;
pub const COMPARE_MAX_VARIANTS: usize = 10;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CompareInput {
    pub variants: Vec<String>,
    pub platform_hint: Option<Platform>,
}

#[derive(Debug, Clone)]
pub struct Compared {
    /// The comparison's id: its ledger entry's key.
    pub comparison_id: Uuid,
    pub ranking: Ranking,
    /// True when an Idempotency-Key matched an earlier identical request (not charged again).
    pub replayed: bool,
    /// The account's allowance after the charge (None for a replay).
    pub quota: Option<QuotaStatus>,
}

impl App {
    /// Ranks with `ranker` (only what serves comparisons has one).
    pub fn with_ranker(mut self, ranker: Arc<dyn Ranker>) -> Self {
        self.ranker = Some(ranker);
        self
    }

    pub async fn compare(
        &self,
        principal: &Principal,
        input: CompareInput,
        idempotency_key: Option<&str>,
    ) -> Result<(Compared, Option<RateStatus>)> {
        let ranker = self.ranker.clone().ok_or_else(|| Error::Unavailable("this deployment does not compare variants".into()))?;
        validate_compare(&input)?;
        if !principal.user.is_active {
            return Err(Error::Forbidden("the account is inactive".into()));
        }
        // Ranking is synchronous: the serving model is re-checked here once its TTL has passed.
        if let Some(serving) = &self.model_serving {
            serving.recheck().await;
        }
        let comparison_id = Uuid::now_v7();
        // A replay is answered again (ranking is deterministic) and not charged again.
        let reserved_key = match idempotency_key {
            None => None,
            Some(key) => {
                let now_us = to_micros(now());
                // Tagged, so a key reused between an analysis and a comparison conflicts.
                let record = self.idempotency_record(principal, key, &("compare", &input), comparison_id, now_us)?;
                match self.counters.reserve_idempotency(&record, now_us).await? {
                    Reservation::Reserved => Some(key),
                    Reservation::Existing(existing) if existing.request_hash == record.request_hash => {
                        let ranking = ranker.rank(&input.variants, input.platform_hint);
                        let compared = Compared { comparison_id: existing.job_id, ranking, replayed: true, quota: None };
                        return Ok((compared, None));
                    }
                    Reservation::Existing(_) => {
                        return Err(Error::Conflict("this Idempotency-Key was already used with a different request body".into()));
                    }
                }
            }
        };
        let charged = self.charge_comparison(principal, comparison_id).await;
        if charged.is_err() {
            if let Some(key) = reserved_key {
                // Free the key so the client can retry the same request.
                self.counters.release_idempotency(principal.user.id, key, comparison_id).await?;
            }
        }
        let (rate, quota) = charged?;
        let ranking = ranker.rank(&input.variants, input.platform_hint);
        Ok((Compared { comparison_id, ranking, replayed: false, quota: Some(quota) }, Some(rate)))
    }

    async fn charge_comparison(&self, principal: &Principal, comparison_id: Uuid) -> Result<(RateStatus, QuotaStatus)> {
        let rate = self.take_rate_limit(principal).await?;
        let at = now();
        let charge = self.charge_for(&principal.user, UsageKind::Compare, comparison_id, at);
        let admitted = self.store.admit_charge(&charge).await?;
        Ok((rate, QuotaStatus::after(&admitted, &charge)))
    }
}

pub fn validate_compare(input: &CompareInput) -> Result<()> {
    let mut errors = Vec::new();
    let n = input.variants.len();
    if !(COMPARE_MIN_VARIANTS..=COMPARE_MAX_VARIANTS).contains(&n) {
        errors
            .push(FieldError::new("variants", format!("give between {COMPARE_MIN_VARIANTS} and {COMPARE_MAX_VARIANTS} variants; got {n}")));
    }
    for (i, v) in input.variants.iter().enumerate() {
        let field = format!("variants[{i}]");
        let chars = v.chars().count();
        if v.trim().is_empty() {
            errors.push(FieldError::new(field, "must not be empty"));
        } else if chars > CAPTION_MAX_CHARS {
            errors.push(FieldError::new(field, format!("at most {CAPTION_MAX_CHARS} characters; got {chars}")));
        } else if v.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
            errors.push(FieldError::new(field, "must not contain control characters"));
        } else if let Some(first) = input.variants[..i].iter().position(|w| w.trim() == v.trim()) {
            errors.push(FieldError::new(field, format!("is the same as variants[{first}]")));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(Error::Validation(errors)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::validation_fields;

    fn input(variants: &[&str]) -> CompareInput {
        CompareInput { variants: variants.iter().map(|v| v.to_string()).collect(), platform_hint: None }
    }

    #[test]
    fn two_to_ten_distinct_readable_variants_are_accepted() {
        assert!(validate_compare(&input(&["a", "b"])).is_ok());
        let ten: Vec<String> = (0..10).map(|i| format!("variant {i}")).collect();
        assert!(validate_compare(&CompareInput { variants: ten, platform_hint: None }).is_ok());
    }

    #[test]
    fn each_bad_variant_is_named() {
        assert_eq!(validation_fields(validate_compare(&input(&["only one"]))), ["variants"]);
        let eleven: Vec<String> = (0..11).map(|i| format!("variant {i}")).collect();
        assert_eq!(validation_fields(validate_compare(&CompareInput { variants: eleven, platform_hint: None })), ["variants"]);
        let long = "x".repeat(CAPTION_MAX_CHARS + 1);
        assert_eq!(
            validation_fields(validate_compare(&input(&["ok", "  ", &long, "bell\u{7}", "ok "]))),
            ["variants[1]", "variants[2]", "variants[3]", "variants[4]"]
        );
    }
}
