//! What operators and tools read: health, metrics and this API's description.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::state::AppState;
use crate::engine::isolate::IsolationLayers;
use crate::error::{ApiError, ErrorBody};

/// A node that can reach its store.
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(value_type = String, pattern = "^ok$")]
    status: &'static str,
    /// This node's id, as its runs record it.
    node: String,
    /// The sandbox layers the isolated runner turns on here, and those the kernel does not
    /// offer; null when isolated runs are unavailable on this machine.
    #[schema(required = true)]
    isolation: Option<IsolationLayers>,
}

/// Health: 200 when the store is reachable
#[utoipa::path(get, path = "/healthz", operation_id = "health", tag = "ops",
    responses(
        (status = 200, description = "This node works", body = Health),
        (status = 503, description = "The store is unreachable", body = ErrorBody),
    ))]
pub async fn healthz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok(Json(Health {
            status: "ok",
            node: state.engine.node_id().to_string(),
            isolation: state.isolation.clone(),
        })),
        Err(e) => {
            tracing::warn!(error = %e, "health check: store unreachable");
            Err(ApiError::Unavailable)
        }
    }
}

/// Prometheus metrics
///
/// Needs the admin credentials unless the server runs with `--public-metrics`.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "ops",
    responses(
        (status = 200, description = "OpenMetrics text format (which Prometheus reads)",
            body = String, content_type = "application/openmetrics-text"),
        (status = 401, description = "Admin credentials missing or wrong (the server does not run with --public-metrics)", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let (running, queued) = state.engine.load().await;
    let body = state
        .metrics
        .render(running, queued, state.engine.hub().subscriber_count());
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}

/// This document
///
/// Generated from the router and the request and response types, so it cannot drift.
#[utoipa::path(get, path = "/api/openapi.json", operation_id = "openapi", tag = "ops",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::api_doc::json(),
    )
        .into_response()
}
