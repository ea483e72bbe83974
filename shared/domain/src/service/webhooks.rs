//! Webhook subscriptions, the notify signing secret, and verifying completion notices.

use super::analysis::check_url;
use super::*;

impl App {
    pub async fn create_webhook(
        &self,
        principal: &Principal,
        target_url: &str,
        events: Option<Vec<WebhookEvent>>,
        origin: &Origin,
    ) -> Result<WebhookSubscription> {
        let mut errors = Vec::new();
        check_url("target_url", target_url, self.settings.allow_loopback_webhooks, &mut errors);
        // By default a subscription hears about its jobs; usage notices are asked for by name.
        let events = events.unwrap_or_else(|| vec![WebhookEvent::JobCompleted, WebhookEvent::JobFailed]);
        if events.is_empty() {
            errors.push(FieldError::new("events", format!("give at least one event: {}", WebhookEvent::expected())));
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        let mut unique = Vec::new();
        for e in events {
            if !unique.contains(&e) {
                unique.push(e);
            }
        }
        let sub = WebhookSubscription {
            id: Uuid::now_v7(),
            user_id: principal.user.id,
            target_url: target_url.to_string(),
            secret: new_webhook_secret(),
            events: unique,
            active: true,
            created_at: now(),
        };
        self.store.create_webhook(&sub, WEBHOOKS_PER_USER_MAX).await?;
        // The host only: the audit log is read by operators, and the path may be the secret.
        let payload = serde_json::json!({"webhook_id": sub.id, "target_host": crate::net::host_only(&sub.target_url)});
        self.audit(principal.actor(), "webhook.create", payload, origin).await?;
        Ok(sub)
    }

    pub async fn list_webhooks(&self, principal: &Principal) -> Result<Vec<WebhookSubscription>> {
        self.store.webhooks_for_user(principal.user.id).await
    }

    pub async fn delete_webhook(&self, principal: &Principal, id: Uuid, origin: &Origin) -> Result<()> {
        if !self.store.delete_webhook(principal.user.id, id).await? {
            return Err(Error::NotFound("webhook"));
        }
        self.audit(principal.actor(), "webhook.delete", serde_json::json!({"webhook_id": id}), origin).await
    }

    /// The secret that signs deliveries to your submissions' `notify_webhook`, and the
    /// `X-GVN-Webhook-Id` those deliveries carry.
    pub async fn notify_signing_secret(&self, principal: &Principal, origin: &Origin) -> Result<(String, String)> {
        self.audit(principal.actor(), "webhook.notify_secret.read", serde_json::json!({}), origin).await?;
        Ok((notify_signing_id(principal.user.id), principal.user.webhook_secret.clone()))
    }

    /// Replaces the notify secret; deliveries signed from now on use the new one.
    pub async fn rotate_notify_secret(&self, principal: &Principal, origin: &Origin) -> Result<(String, String)> {
        let secret = new_webhook_secret();
        if !self.store.set_webhook_secret(principal.user.id, &secret, now()).await? {
            return Err(Error::NotFound("user"));
        }
        self.audit(principal.actor(), "webhook.notify_secret.rotate", serde_json::json!({}), origin).await?;
        Ok((notify_signing_id(principal.user.id), secret))
    }

    /// Verifies a signed completion callback. Every failure is the same 401 to the caller
    /// (the reason is logged), so subscription ids and secrets cannot be probed.
    pub async fn receive_completion(
        &self,
        subscription_id: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        origin: &Origin,
    ) -> Result<CompletionNotice> {
        let unauthorized = |why: &str| {
            tracing::info!(reason = why, "completion hook rejected");
            Error::Unauthorized("invalid webhook signature".into())
        };
        let signing_id = subscription_id.ok_or_else(|| unauthorized("missing X-GVN-Webhook-Id"))?;
        let signature = signature.ok_or_else(|| unauthorized("missing X-GVN-Signature"))?;
        // `user:<id>` signs deliveries to a submission's notify_webhook; otherwise a subscription id.
        let (owner, secret) = match signing_id.strip_prefix("user:") {
            Some(user_id) => {
                let user_id = user_id.parse::<Uuid>().map_err(|_| unauthorized("malformed X-GVN-Webhook-Id"))?;
                let user = self.store.user_by_id(user_id).await?.filter(|u| u.is_active).ok_or_else(|| unauthorized("unknown user"))?;
                (user.id, user.webhook_secret)
            }
            None => {
                let id = signing_id.parse::<Uuid>().map_err(|_| unauthorized("malformed X-GVN-Webhook-Id"))?;
                let sub =
                    self.store.webhook(id).await?.filter(|s| s.active).ok_or_else(|| unauthorized("unknown or inactive subscription"))?;
                (sub.user_id, sub.secret)
            }
        };
        let now_unix = OffsetDateTime::now_utc().unix_timestamp();
        let signed_at = auth::verify_webhook_signature(&secret, signature, body, now_unix).map_err(unauthorized)?;
        let notice: CompletionNotice = serde_json::from_slice(body).map_err(|e| Error::validation("body", e.to_string()))?;
        // A valid notice is accepted once: the same signer, timestamp and body seen again
        // within the tolerance window is a replay. Remembered until the signature could no
        // longer verify anyway.
        let seen = format!("hook-seen:{signing_id}:{signed_at}:{}", auth::sha256_hex(body));
        let forget_at_us = (signed_at + auth::SIGNATURE_TOLERANCE_SECS + 1) * 1_000_000;
        if self.counters.increment(&seen, forget_at_us, now_unix * 1_000_000).await? > 1 {
            tracing::info!(reason = "replay", "completion hook rejected");
            return Err(Error::Conflict("this notice was already received".into()));
        }
        let payload = serde_json::json!({"webhook_id": signing_id, "job_id": notice.job_id, "status": notice.status});
        self.audit(owner.to_string(), "webhook.completion_received", payload, origin).await?;
        Ok(notice)
    }
}

/// The body of a completion webhook: what the webhook stage sends and the completion hook
/// verifies (the API documents it as `CompletionNoticeBody`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletionNotice {
    pub job_id: Uuid,
    pub status: JobStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// RFC 3339
    pub timestamp: String,
}

/// The `X-GVN-Webhook-Id` of deliveries to a submission's `notify_webhook`.
pub fn notify_signing_id(user_id: Uuid) -> String {
    format!("user:{user_id}")
}

pub(super) fn new_webhook_secret() -> String {
    format!("whsec_{}", auth::random_token(32))
}
