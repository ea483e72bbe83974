//! What admins see: every job with totals, and the dead-lettered webhook deliveries.

use super::*;

impl App {
    pub async fn admin_jobs(
        &self,
        principal: &Principal,
        mut filter: AdminJobFilter,
        limit: Option<u32>,
        origin: &Origin,
    ) -> Result<AdminJobsPage> {
        principal.require_admin()?;
        if let (Some(from), Some(to)) = (filter.from, filter.to) {
            if from > to {
                return Err(Error::validation("from", "`from` must not be after `to`"));
            }
        }
        let limit = check_limit(limit, 50, ADMIN_MAX_LIMIT)?;
        filter.limit = limit + 1;
        let mut items = self.store.admin_jobs(&filter).await?;
        let totals = self.store.job_totals(&filter).await?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|j| Cursor { created_at_us: to_micros(j.created_at), id: j.id })
        } else {
            None
        };
        let payload = serde_json::json!({
            "status": filter.status, "from": filter.from.map(to_micros), "to": filter.to.map(to_micros), "returned": items.len()
        });
        self.audit(principal.actor(), "admin.jobs.list", payload, origin).await?;
        Ok(AdminJobsPage { items, totals, next_cursor })
    }

    /// Webhook deliveries that were given up on (admin), newest first.
    pub async fn dead_letters(&self, principal: &Principal, limit: Option<u32>, origin: &Origin) -> Result<Vec<WebhookDelivery>> {
        principal.require_admin()?;
        let limit = check_limit(limit, 50, ADMIN_MAX_LIMIT)?;
        let items = self.store.dead_deliveries(limit).await?;
        self.audit(principal.actor(), "admin.webhooks.dead_letters", serde_json::json!({"returned": items.len()}), origin).await?;
        Ok(items)
    }
}

impl App {
    /// The process's operational metrics (admin), with the queue's depth read now: jobs
    /// queued and under way, counted on each read.
    pub async fn operational_metrics(&self, principal: &Principal) -> Result<&'static crate::telemetry::Metrics> {
        principal.require_admin()?;
        let metrics = crate::telemetry::metrics();
        for status in [JobStatus::Queued, JobStatus::Processing] {
            let filter = AdminJobFilter { status: Some(status), ..Default::default() };
            let depth = self.store.job_totals(&filter).await?.get(&status).copied().unwrap_or(0);
            metrics.set(crate::telemetry::Metric::QueueDepth, &[("status", status.as_str())], depth as f64);
        }
        Ok(metrics)
    }
}
