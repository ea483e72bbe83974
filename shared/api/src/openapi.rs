//! The OpenAPI 3 document, generated from the handlers' annotations and the wire types.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::handlers::*;

#[derive(OpenApi)]
#[openapi(
    info(title = "GoViralNow API", description = "Score content for virality, with explained, actionable insights."),
    paths(
        auth::token, analyze::submit, analyze::status, analyze::archive, users::history, insights::templates,
        admin::jobs, admin::dead_letters, hooks::completion, webhooks::create, webhooks::list, webhooks::delete,
        webhooks::signing_secret, webhooks::rotate_signing_secret,
        keys::create, keys::list, keys::rotate, keys::revoke, uploads::create, uploads::status, health::healthz, serve,
    ),
    modifiers(&Security)
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "ops", responses((status = 200, description = "OpenAPI 3 document")))]
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
