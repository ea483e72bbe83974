//! The OpenAPI 3 document, generated from the handlers' annotations and the wire types.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::handlers::*;

#[derive(OpenApi)]
#[openapi(
    info(title = "GoViralNow API", description = "Score content for virality, with explained, actionable insights."),
    paths(
        auth::token, auth::open_session, auth::session, auth::close_session, analyze::submit, compare::compare, analyze::status, analyze::archive, events::events, events::stream_token, outcomes::record, outcomes::history, accounts::track, accounts::tracked, accounts::connect, accounts::callback, accounts::finish, accounts::list, accounts::disconnect, users::history, insights::templates,
        admin::jobs, admin::dead_letters, models::list, models::approve, models::reject, models::promote, models::rollback, hooks::completion, webhooks::create, webhooks::list, webhooks::delete,
        webhooks::signing_secret, webhooks::rotate_signing_secret,
        keys::create, keys::list, keys::rotate, keys::revoke, uploads::create, uploads::status,
        usage::usage_current, usage::usage, usage::admin_usage, usage::set_terms, health::healthz, serve,
    ),
    modifiers(&Security, &SharedResponses, &OperationIds, &Links)
)]
pub struct ApiDoc;

/// Unique operation ids from method and path (`get_analyze_job_id`); the handlers' function
/// names repeat across resources (`create`, `status`), and OpenAPI requires them unique.
struct OperationIds;

impl Modify for OperationIds {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for (path, item) in doc.paths.paths.iter_mut() {
            let tail = path.trim_start_matches("/api/v1").trim_start_matches('/').replace(['{', '}'], "").replace(['/', '-', '.'], "_");
            for (method, operation) in
                [("get", &mut item.get), ("post", &mut item.post), ("put", &mut item.put), ("delete", &mut item.delete)]
            {
                if let Some(operation) = operation {
                    operation.operation_id = Some(format!("{method}_{tail}"));
                }
            }
        }
    }
}

/// What a created resource leads to (OpenAPI links): clients, and schemathesis's stateful
/// phase, follow the id a POST returns into the routes that take it.
struct Links;

impl Modify for Links {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::link::LinkBuilder;
        let links: &[(&str, &str, &str, &[(&str, &str)])] = &[
            ("/api/v1/analyze", "201", "job_id", &[("GetJob", "get_analyze_job_id"), ("ArchiveJob", "delete_analyze_job_id")]),
            ("/api/v1/webhooks", "201", "webhook_id", &[("DeleteWebhook", "delete_webhooks_webhook_id")]),
            ("/api/v1/uploads", "201", "upload_id", &[("GetUpload", "get_uploads_upload_id")]),
        ];
        for (path, status, field, targets) in links {
            let Some(RefOr::T(response)) =
                doc.paths.paths.get_mut(*path).and_then(|i| i.post.as_mut()).and_then(|o| o.responses.responses.get_mut(*status))
            else {
                continue;
            };
            for (name, operation_id) in targets.iter() {
                let link = LinkBuilder::new().operation_id(*operation_id).parameter(*field, format!("$response.body#/{field}")).build();
                response.links.insert(name.to_string(), RefOr::T(link));
            }
        }
    }
}

/// The answers every route of a kind can give, added to each operation so the document says
/// all that is true without each handler repeating it: an authenticated route can be refused
/// (401, 403 for a revoked key or inactive account), throttled (429) or shed (503); a route
/// with a JSON body can get a body that is not JSON (400), stalls (408), is too large (413),
/// of the wrong type (415) or of the wrong shape (422); a path id can name nothing (404).
struct SharedResponses;

impl Modify for SharedResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
                    .build(),
            )
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            for operation in [&mut item.get, &mut item.post, &mut item.put, &mut item.delete].into_iter().flatten() {
                let mut add: Vec<(&str, &str)> = Vec::new();
                if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    add.extend([
                        ("401", "Missing or invalid credentials"),
                        ("403", "Revoked key, inactive account, or not allowed"),
                        ("429", "Rate limited, or too many failed authentications; see Retry-After"),
                        ("503", "Overloaded or a dependency is down; see Retry-After"),
                    ]);
                }
                if operation.request_body.is_some() {
                    add.extend([
                        ("400", "The body is not JSON"),
                        ("408", "The body stopped arriving"),
                        ("413", "The body is too large"),
                        ("415", "The body is not application/json"),
                        ("422", "The body breaks a rule; details name the fields"),
                    ]);
                }
                if path.contains('{') {
                    add.push(("404", "No such resource (or not yours)"));
                }
                if operation.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                    add.push(("422", "A parameter breaks a rule; details name it"));
                }
                for (status, description) in add {
                    operation.responses.responses.entry(status.to_string()).or_insert_with(|| error(description));
                }
            }
        }
    }
}

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
        // The dashboard's session (POST /api/v1/auth/session): accepted wherever a bearer token
        // is, with `X-CSRF-Token` on requests that change state.
        components.add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("gv_session"))));
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as served. utoipa 5.5 writes a link's `operationId` as `operation_id`; the
/// served JSON spells it as OpenAPI does.
pub fn document_json() -> serde_json::Value {
    let mut doc = serde_json::to_value(document()).expect("the document serialises");
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for item in paths.values_mut().filter_map(|i| i.as_object_mut()) {
            for operation in item.values_mut() {
                let Some(responses) = operation.get_mut("responses").and_then(|r| r.as_object_mut()) else { continue };
                for response in responses.values_mut() {
                    let Some(links) = response.get_mut("links").and_then(|l| l.as_object_mut()) else { continue };
                    for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
                        for (from, to) in
                            [("operation_id", "operationId"), ("operation_ref", "operationRef"), ("request_body", "requestBody")]
                        {
                            if let Some(v) = link.remove(from) {
                                link.insert(to.to_string(), v);
                            }
                        }
                    }
                }
            }
        }
    }
    doc
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "ops", responses((status = 200, description = "OpenAPI 3 document")))]
pub async fn serve() -> Json<serde_json::Value> {
    Json(document_json())
}
