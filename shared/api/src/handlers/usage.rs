use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use domain::Error;
use domain::service::App;
use domain::service::usage::{CurrentUsage, Granularity, UsageChange};

use super::path_id;
use crate::dto::{
    AdminUsageQuery, AdminUsageResponse, UsageBucketItem, UsageCurrentQuery, UsageCurrentResponse, UsageGranularity, UsageQuery,
    UsageResponse, UsageTermsRequest,
};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Auth, JsonBody, RequestOrigin, ValidQuery};

fn current(u: CurrentUsage) -> UsageCurrentResponse {
    UsageCurrentResponse {
        user_id: u.user_id,
        plan: u.plan,
        period: u.period.key.clone(),
        period_start: u.period.starts_at,
        period_end: u.period.resets_at,
        allowance: u.allowance,
        used: u.used,
        remaining: u.remaining,
        hard_cap: u.hard_cap,
        overage_units: u.overage_units,
        projected_overage_units: u.projected_overage_units,
        overage_cents_per_unit: u.overage_cents_per_unit,
        credits: u.credits,
    }
}

fn date(field: &str, text: &str) -> Result<time::Date, Error> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &format).map_err(|_| Error::validation(field, "must be a date, YYYY-MM-DD"))
}

/// The caller's (or, for an admin, any user's) standing this period.
#[utoipa::path(get, path = "/api/v1/usage/current", tag = "usage",
    params(UsageCurrentQuery),
    responses((status = 200, body = UsageCurrentResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn usage_current(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    ValidQuery(q): ValidQuery<UsageCurrentQuery>,
) -> ApiResult<Json<UsageCurrentResponse>> {
    let user_id = q.user_id.unwrap_or(principal.user.id);
    Ok(Json(current(app.usage_current(&principal, user_id).await?)))
}

/// Usage by day or by month, per kind of content.
#[utoipa::path(get, path = "/api/v1/usage", tag = "usage",
    params(UsageQuery),
    responses((status = 200, body = UsageResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn usage(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    ValidQuery(q): ValidQuery<UsageQuery>,
) -> ApiResult<Json<UsageResponse>> {
    let user_id = q.user_id.unwrap_or(principal.user.id);
    let today = time::OffsetDateTime::now_utc().date();
    let to = q.to.as_deref().map(|t| date("to", t)).transpose()?.unwrap_or(today);
    let from = match q.from.as_deref() {
        Some(f) => date("from", f)?,
        None => to.replace_day(1).expect("the first of a month exists"),
    };
    let name = q.granularity.unwrap_or(UsageGranularity::Day);
    let granularity = match name {
        UsageGranularity::Day => Granularity::Day,
        UsageGranularity::Month => Granularity::Month,
    };
    let buckets = app.usage_history(&principal, user_id, from, to, granularity).await?;
    Ok(Json(UsageResponse {
        user_id,
        granularity: name,
        buckets: buckets
            .into_iter()
            .map(|b| UsageBucketItem {
                start: b.starts_at,
                end: b.ends_at,
                kind: b.kind,
                units: b.units,
                analyses: b.analyses,
                reversed: b.reversed,
            })
            .collect(),
    }))
}

/// Accounts near or past their allowance this period, heaviest first (admin role).
#[utoipa::path(get, path = "/api/v1/admin/usage", tag = "admin",
    params(AdminUsageQuery),
    responses((status = 200, body = AdminUsageResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn admin_usage(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    ValidQuery(q): ValidQuery<AdminUsageQuery>,
) -> ApiResult<Json<AdminUsageResponse>> {
    let accounts = app.usage_near_limit(&principal, q.share.unwrap_or(0.8)).await?;
    Ok(Json(AdminUsageResponse { accounts: accounts.into_iter().map(current).collect() }))
}

/// Sets an account's plan, allowance and prepaid credits, or tops the credits up (admin role; audited).
#[utoipa::path(put, path = "/api/v1/admin/users/{user_id}/usage", tag = "admin", request_body = UsageTermsRequest,
    params(("user_id" = uuid::Uuid, Path)),
    responses((status = 200, body = UsageCurrentResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn set_terms(
    State(app): State<Arc<App>>,
    Auth(principal): Auth,
    RequestOrigin(origin): RequestOrigin,
    Path(user_id): Path<String>,
    JsonBody(body): JsonBody<UsageTermsRequest>,
) -> ApiResult<Json<UsageCurrentResponse>> {
    let terms = domain::usage::AccountChange {
        allowance_override: body.allowance_override,
        credits: body.credits,
        add_credits: body.add_credits,
        stripe_customer_id: body.stripe_customer_id,
    };
    let change = UsageChange { plan: body.plan, terms };
    Ok(Json(current(app.set_usage_terms(&principal, path_id(&user_id, "user")?, change, &origin).await?)))
}
