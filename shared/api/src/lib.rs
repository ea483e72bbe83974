//! The public HTTP API. [`router`] mounts a set of [`Endpoint`]s on shared middleware:
//! `goviral serve` mounts them all, each Lambda under functions/ mounts exactly one.

pub mod dashboard;
pub mod dto;
pub mod error;
pub mod extract;
pub mod handlers;
pub mod local_blobs;
pub mod openapi;
pub mod request_id;
pub mod server;
pub mod tracing_context;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use domain::service::App;
use tower_http::catch_panic::CatchPanicLayer;

pub use extract::ClientIp;
pub use local_blobs::LocalBlobs;

use crate::error::ApiError;
use crate::handlers::*;

/// Largest request body accepted (a caption is at most 10,000 characters).
pub const BODY_LIMIT_BYTES: usize = 256 * 1024;

/// One deployable endpoint: a resource path and the methods on it. Each is one Lambda
/// (`function_name`) and one group of routes in the local server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    AuthToken,
    AuthSession,
    Analyze,
    Compare,
    AnalyzeStatus,
    /// The live stream: a response-streaming Lambda behind a function URL on AWS.
    AnalyzeEvents,
    AnalyzeOutcome,
    /// Posts followed on connected accounts.
    AnalyzePosts,
    Accounts,
    /// The platforms' OAuth redirect, and the dashboard finishing it with the creator's session.
    AccountsCallback,
    UserHistory,
    InsightTemplates,
    AdminJobs,
    AdminDeadLetters,
    /// The model registry's decisions.
    AdminModels,
    HooksCompletion,
    Webhooks,
    Keys,
    Uploads,
    Usage,
    AdminUsage,
    Health,
    OpenApi,
}

impl Endpoint {
    pub const ALL: &'static [Endpoint] = &[
        Endpoint::AuthToken,
        Endpoint::AuthSession,
        Endpoint::Analyze,
        Endpoint::Compare,
        Endpoint::AnalyzeStatus,
        Endpoint::AnalyzeEvents,
        Endpoint::AnalyzeOutcome,
        Endpoint::AnalyzePosts,
        Endpoint::Accounts,
        Endpoint::AccountsCallback,
        Endpoint::UserHistory,
        Endpoint::InsightTemplates,
        Endpoint::AdminJobs,
        Endpoint::AdminDeadLetters,
        Endpoint::AdminModels,
        Endpoint::HooksCompletion,
        Endpoint::Webhooks,
        Endpoint::Keys,
        Endpoint::Uploads,
        Endpoint::Usage,
        Endpoint::AdminUsage,
        Endpoint::Health,
        Endpoint::OpenApi,
    ];

    /// The Lambda package (and function) serving this endpoint.
    pub fn function_name(self) -> &'static str {
        match self {
            Endpoint::AuthToken => "api-auth-token",
            Endpoint::AuthSession => "api-auth-session",
            Endpoint::Analyze => "api-analyze",
            Endpoint::Compare => "api-compare",
            Endpoint::AnalyzeStatus => "api-analyze-status",
            Endpoint::AnalyzeEvents => "api-analyze-events",
            Endpoint::AnalyzeOutcome => "api-analyze-outcome",
            Endpoint::AnalyzePosts => "api-analyze-posts",
            Endpoint::Accounts => "api-accounts",
            Endpoint::AccountsCallback => "api-accounts-callback",
            Endpoint::UserHistory => "api-user-history",
            Endpoint::InsightTemplates => "api-insight-templates",
            Endpoint::AdminJobs => "api-admin-jobs",
            Endpoint::AdminDeadLetters => "api-admin-dead-letters",
            Endpoint::AdminModels => "api-admin-models",
            Endpoint::HooksCompletion => "api-hooks-completion",
            Endpoint::Webhooks => "api-webhooks",
            Endpoint::Keys => "api-keys",
            Endpoint::Uploads => "api-uploads",
            Endpoint::Usage => "api-usage",
            Endpoint::AdminUsage => "api-admin-usage",
            Endpoint::Health => "api-health",
            Endpoint::OpenApi => "api-openapi",
        }
    }

    pub fn from_function_name(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.iter().copied().find(|e| e.function_name() == name)
    }

    /// (method, path) of every route, in OpenAPI path syntax.
    pub fn routes(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Endpoint::AuthToken => &[("POST", "/api/v1/auth/token")],
            Endpoint::AuthSession => {
                &[("POST", "/api/v1/auth/session"), ("GET", "/api/v1/auth/session"), ("DELETE", "/api/v1/auth/session")]
            }
            Endpoint::Analyze => &[("POST", "/api/v1/analyze")],
            Endpoint::Compare => &[("POST", "/api/v1/compare")],
            Endpoint::AnalyzeStatus => &[
                ("GET", "/api/v1/analyze/{job_id}"),
                ("DELETE", "/api/v1/analyze/{job_id}"),
                ("POST", "/api/v1/analyze/{job_id}/stream-token"),
            ],
            Endpoint::AnalyzeEvents => &[("GET", "/api/v1/analyze/{job_id}/events")],
            Endpoint::AnalyzeOutcome => &[("POST", "/api/v1/analyze/{job_id}/outcome"), ("GET", "/api/v1/analyze/{job_id}/outcome")],
            Endpoint::AnalyzePosts => &[("POST", "/api/v1/analyze/{job_id}/posts"), ("GET", "/api/v1/analyze/{job_id}/posts")],
            Endpoint::Accounts => {
                &[("GET", "/api/v1/accounts"), ("POST", "/api/v1/accounts/connect"), ("DELETE", "/api/v1/accounts/{account_id}")]
            }
            Endpoint::AccountsCallback => &[("GET", "/api/v1/accounts/callback"), ("POST", "/api/v1/accounts/callback")],
            Endpoint::UserHistory => &[("GET", "/api/v1/users/{user_id}/history")],
            Endpoint::InsightTemplates => &[("GET", "/api/v1/insights/templates")],
            Endpoint::AdminJobs => &[("GET", "/api/v1/admin/jobs")],
            Endpoint::AdminDeadLetters => &[("GET", "/api/v1/admin/dead-letters")],
            Endpoint::AdminModels => &[
                ("GET", "/api/v1/admin/models"),
                ("POST", "/api/v1/admin/models/{model_version_id}/approve"),
                ("POST", "/api/v1/admin/models/{model_version_id}/reject"),
                ("POST", "/api/v1/admin/models/{model_version_id}/promote"),
                ("POST", "/api/v1/admin/models/rollback"),
            ],
            Endpoint::HooksCompletion => &[("POST", "/api/v1/hooks/completion")],
            Endpoint::Webhooks => &[
                ("POST", "/api/v1/webhooks"),
                ("GET", "/api/v1/webhooks"),
                ("DELETE", "/api/v1/webhooks/{webhook_id}"),
                ("GET", "/api/v1/webhooks/signing-secret"),
                ("POST", "/api/v1/webhooks/signing-secret/rotate"),
            ],
            Endpoint::Keys => &[
                ("POST", "/api/v1/keys"),
                ("GET", "/api/v1/keys"),
                ("POST", "/api/v1/keys/{key_id}/rotate"),
                ("DELETE", "/api/v1/keys/{key_id}"),
            ],
            Endpoint::Uploads => &[("POST", "/api/v1/uploads"), ("GET", "/api/v1/uploads/{upload_id}")],
            Endpoint::Usage => &[("GET", "/api/v1/usage"), ("GET", "/api/v1/usage/current")],
            Endpoint::AdminUsage => &[("GET", "/api/v1/admin/usage"), ("PUT", "/api/v1/admin/users/{user_id}/usage")],
            Endpoint::Health => &[("GET", "/healthz")],
            Endpoint::OpenApi => &[("GET", "/api/v1/openapi.json")],
        }
    }

    fn mount(self, r: Router<Arc<App>>) -> Router<Arc<App>> {
        match self {
            Endpoint::AuthToken => r.route("/api/v1/auth/token", post(auth::token)),
            Endpoint::AuthSession => {
                r.route("/api/v1/auth/session", post(auth::open_session).get(auth::session).delete(auth::close_session))
            }
            Endpoint::Analyze => r.route("/api/v1/analyze", post(analyze::submit)),
            Endpoint::Compare => r.route("/api/v1/compare", post(compare::compare)),
            Endpoint::AnalyzeStatus => r
                .route("/api/v1/analyze/{job_id}", get(analyze::status).delete(analyze::archive))
                .route("/api/v1/analyze/{job_id}/stream-token", post(events::stream_token)),
            Endpoint::AnalyzeEvents => r.route("/api/v1/analyze/{job_id}/events", get(events::events)),
            Endpoint::AnalyzeOutcome => r.route("/api/v1/analyze/{job_id}/outcome", post(outcomes::record).get(outcomes::history)),
            Endpoint::AnalyzePosts => r.route("/api/v1/analyze/{job_id}/posts", post(accounts::track).get(accounts::tracked)),
            Endpoint::Accounts => r
                .route("/api/v1/accounts", get(accounts::list))
                .route("/api/v1/accounts/connect", post(accounts::connect))
                .route("/api/v1/accounts/{account_id}", delete(accounts::disconnect)),
            Endpoint::AccountsCallback => r.route("/api/v1/accounts/callback", get(accounts::callback).post(accounts::finish)),
            Endpoint::UserHistory => r.route("/api/v1/users/{user_id}/history", get(users::history)),
            Endpoint::InsightTemplates => r.route("/api/v1/insights/templates", get(insights::templates)),
            Endpoint::AdminJobs => r.route("/api/v1/admin/jobs", get(admin::jobs)),
            Endpoint::AdminDeadLetters => r.route("/api/v1/admin/dead-letters", get(admin::dead_letters)),
            Endpoint::AdminModels => r
                .route("/api/v1/admin/models", get(models::list))
                .route("/api/v1/admin/models/rollback", post(models::rollback))
                .route("/api/v1/admin/models/{model_version_id}/approve", post(models::approve))
                .route("/api/v1/admin/models/{model_version_id}/reject", post(models::reject))
                .route("/api/v1/admin/models/{model_version_id}/promote", post(models::promote)),
            Endpoint::HooksCompletion => r.route("/api/v1/hooks/completion", post(hooks::completion)),
            Endpoint::Webhooks => r
                .route("/api/v1/webhooks", post(webhooks::create).get(webhooks::list))
                .route("/api/v1/webhooks/{webhook_id}", delete(webhooks::delete))
                .route("/api/v1/webhooks/signing-secret", get(webhooks::signing_secret))
                .route("/api/v1/webhooks/signing-secret/rotate", post(webhooks::rotate_signing_secret)),
            Endpoint::Keys => r
                .route("/api/v1/keys", post(keys::create).get(keys::list))
                .route("/api/v1/keys/{key_id}/rotate", post(keys::rotate))
                .route("/api/v1/keys/{key_id}", delete(keys::revoke)),
            Endpoint::Uploads => {
                r.route("/api/v1/uploads", post(uploads::create)).route("/api/v1/uploads/{upload_id}", get(uploads::status))
            }
            Endpoint::Usage => r.route("/api/v1/usage", get(usage::usage)).route("/api/v1/usage/current", get(usage::usage_current)),
            Endpoint::AdminUsage => r
                .route("/api/v1/admin/usage", get(usage::admin_usage))
                .route("/api/v1/admin/users/{user_id}/usage", axum::routing::put(usage::set_terms)),
            Endpoint::Health => r.route("/healthz", get(health::healthz)),
            Endpoint::OpenApi => r.route("/api/v1/openapi.json", get(openapi::serve)),
        }
    }
}

/// The given endpoints on the shared middleware: request ids, JSON errors for unknown routes,
/// wrong methods, oversized bodies and panics.
pub fn router(app: Arc<App>, endpoints: &[Endpoint]) -> Router {
    shared_middleware(with_404(mount(endpoints).with_state(app)))
}

fn with_404(routes: Router) -> Router {
    routes.fallback(|uri: http::Uri| async move { ApiError::NoRoute(uri.path().to_string()) })
}

fn mount(endpoints: &[Endpoint]) -> Router<Arc<App>> {
    endpoints.iter().fold(Router::new(), |r, e| e.mount(r))
}

/// Everything the embedded default serves: every endpoint, signed blob URLs in place of S3,
/// and the web dashboard at `/` where one is built.
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()`: the peer address is
/// the client address (audit log, failed-authentication throttle).
pub fn local_router(app: Arc<App>, blobs: LocalBlobs, dashboard: Option<Arc<dashboard::Dashboard>>) -> Router {
    let blob_routes = Router::new()
        .route(&format!("{}{{*key}}", goviral_local::signed_urls::ROUTE_PREFIX), axum::routing::put(local_blobs::put).get(local_blobs::get))
        .with_state(blobs);
    // Operational metrics for this process (admin only); the Lambdas print EMF instead.
    let routes = mount(Endpoint::ALL).route("/metrics", get(handlers::metrics::metrics)).merge(blob_routes).with_state(app);
    let routes = match dashboard {
        Some(d) => routes.fallback(move |method: http::Method, uri: http::Uri, headers: http::HeaderMap| async move {
            d.respond(&method, &uri, headers.get(http::header::ACCEPT_ENCODING))
        }),
        None => with_404(routes),
    };
    shared_middleware(routes).layer(axum::middleware::from_fn(peer_ip))
}

async fn peer_ip(mut request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::extract::ConnectInfo;
    if let Some(ConnectInfo(addr)) = request.extensions().get::<ConnectInfo<std::net::SocketAddr>>().copied() {
        request.extensions_mut().insert(ClientIp(addr.ip()));
    }
    next.run(request).await
}

/// The OpenAPI document alone, on the shared middleware: a static document needs no App (its
/// Lambda builds nothing).
pub fn openapi_router() -> Router {
    shared_middleware(with_404(Router::new().route("/api/v1/openapi.json", get(openapi::serve))))
}

/// The shared layers; unknown routes answer the standard 404 unless `routes` has its own
/// fallback (the dashboard).
fn shared_middleware(routes: Router) -> Router {
    routes
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(CatchPanicLayer::custom(|_panic: Box<dyn std::any::Any + Send>| {
            axum::response::IntoResponse::into_response(ApiError::Domain(domain::Error::Internal("handler panicked".into())))
        }))
        .layer(axum::middleware::from_fn(server::reserve_gate))
        .layer(axum::middleware::from_fn(request_id::middleware))
}
