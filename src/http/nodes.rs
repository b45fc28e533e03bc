//! The nodes sharing the store, from their heartbeats.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::state::AppState;
use super::views::time;
use crate::error::{ApiError, ErrorBody};

/// A node, as its last heartbeat described it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    /// The node's id, as its runs record it.
    node: String,
    #[schema(format = DateTime)]
    started_at: String,
    #[schema(format = DateTime)]
    heartbeat_at: String,
    /// Runs it was executing at its last heartbeat.
    running: i64,
    version: String,
    /// It missed three heartbeats in a row: stopped, hung or cut off.
    late: bool,
}

/// Nodes
///
/// Every node that checked in during the last 24 hours, with its heartbeat and running count.
#[utoipa::path(get, path = "/api/admin/scripts/nodes", operation_id = "listNodes", tag = "ops",
    responses(
        (status = 200, description = "The nodes, by id", body = [NodeView]),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<NodeView>>, ApiError> {
    let now = chrono::Utc::now();
    let nodes = state.store.nodes(now - chrono::Duration::hours(24)).await?;
    Ok(Json(
        nodes
            .into_iter()
            .map(|n| NodeView {
                late: (now - n.heartbeat_at).num_milliseconds() > 3 * n.every_ms,
                node: n.node_id,
                started_at: time(n.started_at),
                heartbeat_at: time(n.heartbeat_at),
                running: n.running,
                version: n.version,
            })
            .collect(),
    ))
}
