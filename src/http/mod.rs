//! HTTP: the admin API, the public trigger, the dashboard and the health endpoints. Handlers
//! are thin; the rules live in `domain`, the work in `engine`, the data in `store`.

pub mod api_doc;
mod audit;
mod conn;
mod events;
mod extract;
mod list_json;
mod nodes;
mod notifications;
mod ops;
mod run_log;
mod runs;
mod schedule;
mod scripts;
pub mod server;
mod sse;
pub mod state;
mod stream;
mod transfer;
mod trigger;
pub mod ui;
mod versions;
pub mod views;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultMakeSpan, TraceLayer};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use state::AppState;

use crate::auth::Verdict;
use crate::error::ApiError;
use crate::metrics::AuthKind;
use crate::slow_hash::Verification;

/// Request bodies above this are refused with 413 before they are read in full.
const BODY_LIMIT: usize = 3 * 1024 * 1024;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    font-src 'self'; connect-src 'self'; frame-src 'self' blob:; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// No powerful browser feature is needed by any page, the sandboxed browser scripts included.
const PERMISSIONS_POLICY: &str = "camera=(), microphone=(), geolocation=(), usb=(), serial=(), \
    bluetooth=(), payment=(), display-capture=(), midi=(), clipboard-read=()";

/// The signed-in admin, set by the auth middleware.
#[derive(Clone)]
pub struct AdminUser(pub String);

/// The client's address, when the server was started with connect info.
#[derive(Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => write!(f, "{ip}"),
            None => f.write_str("unknown"),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(client_addr(parts))
    }
}

fn client_addr(parts: &Parts) -> ClientAddr {
    parts
        .extensions
        .get::<ClientAddr>()
        .copied()
        .unwrap_or(ClientAddr(None))
}

/// Works out who the client is, once per request: the trusted proxy's header when one is
/// configured, else the peer address.
async fn resolve_client(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let from_proxy = state
        .settings
        .client_ip_header
        .as_ref()
        .and_then(|name| req.headers().get(name))
        .and_then(|v| v.to_str().ok())
        // X-Forwarded-For lists every hop; the last one was added by the trusted proxy.
        .and_then(|v| v.rsplit(',').next())
        .and_then(|v| v.trim().parse::<IpAddr>().ok());
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let client = ClientAddr(from_proxy.or(peer));
    if client.0.is_none()
        && !state
            .warned_no_client
            .swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        tracing::warn!("requests carry no client address (serve the router with connect info, or set --client-ip-header behind a proxy): failed logins are limited for all clients together");
    }
    req.extensions_mut().insert(client);
    next.run(req).await
}

/// The admin API: every route behind the admin login. Each `routes!` entry is a handler with
/// its `#[utoipa::path]`, so what is served here is what the document describes.
fn admin_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(scripts::list, scripts::create))
        .routes(routes!(schedule::preview))
        .routes(routes!(runs::list))
        .routes(routes!(runs::stats))
        .routes(routes!(nodes::list))
        .routes(routes!(events::run_events))
        .routes(routes!(runs::get))
        .routes(routes!(stream::stream))
        .routes(routes!(run_log::log))
        .routes(routes!(run_log::lines))
        .routes(routes!(run_log::search))
        .routes(routes!(notifications::list))
        .routes(routes!(notifications::test))
        .routes(routes!(runs::cancel))
        .routes(routes!(scripts::get, scripts::update, scripts::delete))
        .routes(routes!(runs::start))
        .routes(routes!(trigger::create_token, trigger::revoke_token))
        .routes(routes!(versions::list))
        .routes(routes!(versions::compare))
        .routes(routes!(versions::get))
        .routes(routes!(versions::restore))
        .routes(routes!(transfer::export_one))
        .routes(routes!(transfer::export_many))
        .routes(routes!(transfer::import))
        .routes(routes!(audit::list))
        .routes(routes!(audit::export))
}

fn metrics_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ops::metrics))
}

/// Routes anyone may call: the trigger checks its own token.
fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(trigger::run))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::openapi))
}

/// The Scripts module's router: mount it in a host application, or serve it alone.
pub fn router(state: AppState) -> Router {
    let admin_path = state.settings.admin_path.clone();
    // The dashboard's pages are not API operations: they are the only routes outside the
    // document.
    let pages = Router::new()
        .route(&admin_path, get(ui::dashboard))
        .route(&format!("{admin_path}/"), get(ui::dashboard))
        .route(&format!("{admin_path}/scripts"), get(ui::scripts_page))
        .route(&format!("{admin_path}/runs"), get(ui::runs_page))
        .route(&format!("{admin_path}/audit"), get(ui::audit_page));
    let admin = Router::from(admin_routes())
        .merge(pages)
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));

    // Metrics tell what runs and when: admin-only unless the operator opens them up.
    let metrics_route = Router::from(metrics_routes());
    let metrics_route = if state.settings.public_metrics {
        metrics_route
    } else {
        metrics_route.route_layer(middleware::from_fn_with_state(state.clone(), require_admin))
    };

    Router::new()
        .merge(admin)
        .merge(metrics_route)
        .merge(Router::from(public_routes()))
        .route("/assets/{*path}", get(ui::asset))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            // One layer, not one `Router::layer` each: every call boxes each route once more,
            // and a request clones the boxed route at every level it passes through, so eleven
            // levels cost ~90 clones a request (with their drops, about 6% of the server's
            // instructions for a run of `true`). The first listed is the outermost.
            ServiceBuilder::new()
                // A span per request (method, path), so what a request logs can be told apart.
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO)),
                )
                .layer(middleware::from_fn_with_state(
                    state.clone(),
                    resolve_client,
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_FRAME_OPTIONS,
                    HeaderValue::from_static("DENY"),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::HeaderName::from_static("cross-origin-opener-policy"),
                    HeaderValue::from_static("same-origin"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::HeaderName::from_static("permissions-policy"),
                    HeaderValue::from_static(PERMISSIONS_POLICY),
                ))
                // Answers carry tokens, secrets' presence and run output: no cache keeps them.
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(CSP),
                ))
                .layer(middleware::from_fn(refuse_oversized))
                .layer(DefaultBodyLimit::max(BODY_LIMIT)),
        )
        .with_state(state)
}

/// Basic auth on every admin route and the CSRF guard on state-changing requests. Right
/// credentials are never refused for others' failures; what the failure limit bounds is the
/// work wrong ones cost (each unknown password needs a slow hash, on two threads at most).
async fn require_admin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let client = client_addr(&parts).0;
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let has_credentials = header.is_some();
    let limited = |secs| ApiError::RateLimited {
        retry_after_secs: secs,
    };
    match state.auth.check(header) {
        Verdict::Accepted => {}
        // A browser's first request simply carries no credentials: not a failure.
        Verdict::Rejected if !has_credentials => return ApiError::Unauthorized.into_response(),
        Verdict::Rejected => {
            if let Some(secs) = state.admin_failures.retry_after(client) {
                return limited(secs).into_response();
            }
            state.admin_failures.record_failure(client);
            state.login_failures.failed(client);
            state.metrics.auth_failed(AuthKind::Admin);
            return ApiError::Unauthorized.into_response();
        }
        Verdict::NeedsHash(password) => {
            // Counted before hashing, so parallel guesses cannot all get a hash.
            if let Err(secs) = state.admin_failures.reserve(client) {
                return limited(secs).into_response();
            }
            match state.auth.verify(password).await {
                Verification::Matches => state.admin_failures.forgive(client),
                Verification::DoesNotMatch => {
                    state.login_failures.failed(client);
                    state.metrics.auth_failed(AuthKind::Admin);
                    return ApiError::Unauthorized.into_response();
                }
                Verification::Busy => return limited(1).into_response(),
            }
        }
    }
    if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let h = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let public = state.settings.public_url.as_ref().map(|p| p.origin());
        if crate::auth::is_cross_origin(
            h("sec-fetch-site"),
            h("origin"),
            h("referer"),
            h("host"),
            public,
        ) {
            return ApiError::Forbidden("cross-origin request refused".into()).into_response();
        }
    }
    parts
        .extensions
        .insert(AdminUser(state.auth.user().to_string()));
    next.run(Request::from_parts(parts, body)).await
}

/// Answers 413 from the declared length alone, before any of the body is read; bodies without
/// a length are cut by `DefaultBodyLimit` as they stream.
async fn refuse_oversized(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > BODY_LIMIT as u64) {
        return ApiError::PayloadTooLarge.into_response();
    }
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError::NotFound("route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
