//! The dashboard pages: server-rendered templates and static assets, both embedded in the
//! binary (read from disk in debug builds, so editing them needs no recompile). All user text is
//! escaped by the template engine; the pages' scripts insert data as text only.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{context, Environment};
use rust_embed::Embed;

use super::state::AppState;
use crate::error::ApiError;

#[derive(Embed)]
#[folder = "ui/static/"]
struct Assets;

#[derive(Embed)]
#[folder = "ui/templates/"]
struct TemplateFiles;

/// Where browser scripts run: a sandboxed, opaque-origin document that may evaluate code but
/// can reach nothing (no network, no parent DOM). The CSP `sandbox` directive keeps it
/// sandboxed even when opened directly, and `frame-ancestors` lets only the dashboard frame it.
const SANDBOX_CSP: &str = "default-src 'none'; script-src 'self' 'unsafe-eval'; \
    style-src 'self'; img-src data: blob:; connect-src 'none'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'self'; sandbox allow-scripts";

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn new() -> Self {
        Self { env: load() }
    }

    fn render(&self, name: &str, ctx: minijinja::Value) -> Result<Html<String>, ApiError> {
        // Debug builds re-read the templates on every request, so they can be edited live.
        let fresh;
        let env = if cfg!(debug_assertions) {
            fresh = load();
            &fresh
        } else {
            &self.env
        };
        let tpl = env.get_template(name).map_err(ApiError::internal)?;
        tpl.render(ctx).map(Html).map_err(ApiError::internal)
    }
}

fn load() -> Environment<'static> {
    let mut env = Environment::new();
    for name in TemplateFiles::iter() {
        let file = TemplateFiles::get(&name).expect("listed template exists");
        let source = String::from_utf8(file.data.into_owned()).expect("templates are UTF-8");
        env.add_template_owned(name.to_string(), source)
            .expect("embedded templates are valid");
    }
    env
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

pub async fn dashboard(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    state.ui.render(
        "dashboard.html",
        context! { admin_path => state.settings.admin_path, page => "home" },
    )
}

pub async fn runs_page(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    state.ui.render(
        "runs.html",
        context! { admin_path => state.settings.admin_path, page => "runs" },
    )
}

pub async fn audit_page(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    state.ui.render(
        "audit.html",
        context! { admin_path => state.settings.admin_path, page => "audit" },
    )
}

pub async fn scripts_page(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    state.ui.render(
        "scripts.html",
        context! { admin_path => state.settings.admin_path, page => "scripts" },
    )
}

/// Static files under `/assets/`. Browsers revalidate each time (`no-cache` with an `ETag` from
/// the content hash), so an upgraded binary never runs next to a cached older module.
pub async fn asset(Path(path): Path<String>, req_headers: HeaderMap) -> Response {
    match Assets::get(&path) {
        Some(file) => {
            let hash = file.metadata.sha256_hash();
            let etag = format!("\"{}\"", hex(&hash[..16]));
            let fresh = req_headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
            let mut resp = if fresh {
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                (StatusCode::OK, file.data.into_owned()).into_response()
            };
            let headers = resp.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(mime_for(&path)),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            if let Ok(v) = HeaderValue::from_str(&etag) {
                headers.insert(header::ETAG, v);
            }
            if path.starts_with("sandbox/") && path.ends_with(".html") {
                // Replaces the dashboard's CSP (which is only added when none is present).
                headers.insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(SANDBOX_CSP),
                );
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                headers.insert(
                    header::X_FRAME_OPTIONS,
                    HeaderValue::from_static("SAMEORIGIN"),
                );
            }
            resp
        }
        None => ApiError::NotFound("asset").into_response(),
    }
}

fn mime_for(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("ttf") => "font/ttf",
        _ => "application/octet-stream",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
