//! A run's notification deliveries, and the Test button of a script's webhooks.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::state::AppState;
use super::views;
use super::{AdminUser, ClientAddr};
use crate::domain::{audit, Action, Author};
use crate::error::{ApiError, ErrorBody};
use crate::notifier::TestResult;
use crate::store::{Delivery, RunFilter};

/// One notification of a run to a webhook.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    id: String,
    #[schema(value_type = crate::domain::webhook::Event)]
    event: String,
    url: String,
    /// `pending` (an attempt is due at `nextAt`), `delivered` or `failed` (no attempt left).
    status: String,
    attempts: i32,
    /// The receiver's last HTTP status; null when it did not answer.
    #[schema(required = true)]
    response: Option<i32>,
    /// Why the last attempt failed.
    #[schema(required = true)]
    error: Option<String>,
    /// When the next attempt is due, while pending.
    #[schema(required = true, format = DateTime)]
    next_at: Option<String>,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        let at = |ms| views::time(crate::store::rows_from_ms(ms));
        Self {
            next_at: (d.status == "pending").then(|| at(d.next_at)),
            updated_at: at(d.updated_at),
            id: d.id,
            event: d.event,
            url: d.url,
            status: d.status,
            attempts: d.attempts,
            response: d.response,
            error: d.error,
        }
    }
}

/// A run's notifications
///
/// What was sent to the script's webhooks about this run, and how each answered.
#[utoipa::path(get, path = "/api/admin/scripts/runs/{runId}/deliveries", operation_id = "listDeliveries",
    tag = "runs",
    params(("runId" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "Its deliveries, oldest first", body = Vec<DeliveryView>),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    state.store.get_run(&run_id).await?;
    let list = state.store.deliveries_of(&run_id).await?;
    Ok(Json(list.into_iter().map(DeliveryView::from).collect()))
}

/// Send a test notification
///
/// Sends a `test` event about the script's latest run to each of its saved webhooks, now, and
/// answers how each one answered (10 s at most each). Nothing is recorded.
#[utoipa::path(post, path = "/api/admin/scripts/{id}/notifications/test", operation_id = "testNotifications",
    tag = "scripts",
    params(("id" = String, Path, description = "The script's id")),
    responses(
        (status = 200, description = "One result per webhook", body = Vec<TestResult>),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 403, description = "A cross-origin request", body = ErrorBody),
        (status = 404, description = "No such script", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn test(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Extension(user): Extension<AdminUser>,
    client: ClientAddr,
) -> Result<Json<Vec<TestResult>>, ApiError> {
    let script = state.store.get_script(&id).await?;
    let audit = Author::admin(&user.0, client).entry(
        Action::NotificationTest,
        audit::script_target(script.code_identifier.as_str()),
        json!({ "webhooks": script.notifications.len() }),
    );
    state.store.append_audit(&audit).await?;
    let latest = state
        .store
        .list_runs(&RunFilter {
            script_id: Some(id),
            limit: 1,
            ..RunFilter::default()
        })
        .await?
        .into_iter()
        .next();
    Ok(Json(state.notifier.test(&script, latest).await))
}
