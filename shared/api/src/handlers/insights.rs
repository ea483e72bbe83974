use axum::Json;
use domain::model::InsightCategory;

use crate::dto::{Category, TemplatesResponse};
use crate::error::ErrorBody;
use crate::extract::Auth;

/// The five insight categories every analysis reports on.
#[utoipa::path(get, path = "/api/v1/insights/templates", tag = "analysis",
    responses((status = 200, body = TemplatesResponse), (status = 401, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn templates(_caller: Auth) -> Json<TemplatesResponse> {
    Json(TemplatesResponse { categories: InsightCategory::ALL.iter().map(|c| Category { id: *c, label: c.label() }).collect() })
}
