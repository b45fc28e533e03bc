//! The dashboard pages: server-rendered templates embedded in the binary, with static assets
//! served from the binary too. All user text is escaped by the template engine.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{context, Environment};
use rust_embed::Embed;

use super::state::AppState;
use crate::error::ApiError;

#[derive(Embed)]
#[folder = "ui/static/"]
struct Assets;

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        for (name, source) in [
            (
                "layout.html",
                include_str!("../../ui/templates/layout.html"),
            ),
            (
                "dashboard.html",
                include_str!("../../ui/templates/dashboard.html"),
            ),
            (
                "scripts.html",
                include_str!("../../ui/templates/scripts.html"),
            ),
        ] {
            env.add_template(name, source)
                .expect("embedded templates are valid");
        }
        Self { env }
    }

    fn render(&self, name: &str, ctx: minijinja::Value) -> Result<Html<String>, ApiError> {
        let tpl = self.env.get_template(name).map_err(ApiError::internal)?;
        tpl.render(ctx).map(Html).map_err(ApiError::internal)
    }
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

pub async fn scripts_page(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    state.ui.render(
        "scripts.html",
        context! { admin_path => state.settings.admin_path, page => "scripts" },
    )
}

/// Static files under `/assets/`, with long caching for fingerprint-free but versioned paths.
pub async fn asset(Path(path): Path<String>) -> Response {
    match Assets::get(&path) {
        Some(file) => {
            let mime = mime_for(&path);
            let mut resp = (StatusCode::OK, file.data.into_owned()).into_response();
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
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
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("ttf") => "font/ttf",
        _ => "application/octet-stream",
    }
}
