//! A script's versions: list, read one, compare two, restore one.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::ApiQuery;
use super::state::AppState;
use super::views::{time, ScriptView};
use super::{AdminUser, ClientAddr};
use crate::catalog::{diff, Diff, Edit};
use crate::domain::{Author, ScriptDocument, ValidationError, Version};
use crate::error::{ApiError, ErrorBody};

/// A version of a script. `definition` is present when one version is read.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ScriptVersion)]
pub struct VersionView {
    pub version: i64,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Who made it: `admin:<user>`, `cli:<os user>`, `system`.
    pub author: String,
    pub message: String,
    /// Secrets this version set, changed or removed, by name (`env:KEY`, `webhook:URL`).
    pub secrets_changed: Vec<String>,
    /// Whether it is the script's current definition.
    pub current: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub definition: Option<ScriptDocument>,
}

impl VersionView {
    fn new(v: Version, current: i64) -> Self {
        Self {
            current: v.number == current,
            version: v.number,
            created_at: time(v.created_at),
            author: v.author,
            message: v.message,
            secrets_changed: v.secrets_changed,
            definition: v.document,
        }
    }
}

/// A page of versions, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionList {
    pub versions: Vec<VersionView>,
    /// Pass as `before` for the next page; null when no version is older.
    #[schema(required = true)]
    pub next_before: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only versions older than this number.
    #[param(minimum = 1)]
    before: Option<i64>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// A script's versions
///
/// Newest first; the first is the current definition.
#[utoipa::path(get, path = "/api/admin/scripts/{id}/versions", operation_id = "listVersions",
    tag = "versions",
    params(("id" = String, Path, description = "The script's id"), ListQuery),
    responses(
        (status = 200, description = "A page of versions", body = VersionList),
        (status = 400, description = "A parameter out of range", body = ErrorBody),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 404, description = "No such script", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<VersionList>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ValidationError::new("limit", "must be between 1 and 200").into());
    }
    if q.before.is_some_and(|b| b < 1) {
        return Err(ValidationError::new("before", "must be at least 1").into());
    }
    let script = state.store.get_script(&id).await?;
    let page = state.store.list_versions(&id, q.before, limit + 1).await?;
    let more = page.len() as i64 > limit;
    let versions: Vec<VersionView> = page
        .into_iter()
        .take(limit as usize)
        .map(|v| VersionView::new(v, script.version))
        .collect();
    let next_before = more.then(|| versions.last().map(|v| v.version)).flatten();
    Ok(Json(VersionList {
        versions,
        next_before,
    }))
}

/// One version
///
/// With its whole definition (secret values are never kept: a secret shows only its key).
#[utoipa::path(get, path = "/api/admin/scripts/{id}/versions/{version}", operation_id = "getVersion",
    tag = "versions",
    params(("id" = String, Path, description = "The script's id"),
           ("version" = i64, Path, minimum = 1, description = "The version's number")),
    responses(
        (status = 200, description = "The version", body = VersionView),
        (status = 400, description = "The number is not one", body = ErrorBody),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 404, description = "No such script or version", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Path((id, version)): Path<(String, String)>,
) -> Result<Json<VersionView>, ApiError> {
    let number = version_number("version", &version)?;
    let script = state.store.get_script(&id).await?;
    let v = state.store.get_version(&id, number).await?;
    Ok(Json(VersionView::new(v, script.version)))
}

fn version_number(field: &str, text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| ValidationError::new(field, "must be a version number (1 or more)").into())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The older side.
    #[param(minimum = 1)]
    from: i64,
    /// The newer side; the current version when left out.
    #[param(minimum = 1)]
    to: Option<i64>,
}

/// Compare two versions
///
/// The fields that differ (with both values), the secrets changed in between (by name only),
/// and a unified diff of the script body.
#[utoipa::path(get, path = "/api/admin/scripts/{id}/versions/diff", operation_id = "diffVersions",
    tag = "versions",
    params(("id" = String, Path, description = "The script's id"), DiffQuery),
    responses(
        (status = 200, description = "What differs", body = Diff),
        (status = 400, description = "A version number is missing or not one", body = ErrorBody),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 404, description = "No such script or version", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn compare(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> Result<Json<Diff>, ApiError> {
    let script = state.store.get_script(&id).await?;
    let to = q.to.unwrap_or(script.version);
    if q.from < 1 || to < 1 {
        return Err(ValidationError::new("from", "must be a version number (1 or more)").into());
    }
    let document = |v: Version| v.document.ok_or(ApiError::NotFound("version"));
    let a = document(state.store.get_version(&id, q.from).await?)?;
    let b = document(state.store.get_version(&id, to).await?)?;
    let (low, high) = (q.from.min(to), q.from.max(to));
    let secrets = state.store.secrets_changed_between(&id, low, high).await?;
    Ok(Json(diff((q.from, &a), (to, &b), secrets)))
}

/// The body of a restore: optional.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    /// Kept with the new version (default "restored version N").
    #[schema(max_length = 500)]
    message: Option<String>,
}

/// No body, `null`, or a `RestoreBody` sent as JSON.
fn restore_body(headers: &HeaderMap, body: &[u8]) -> Result<RestoreBody, ApiError> {
    if body.is_empty() {
        return Ok(RestoreBody::default());
    }
    if !super::runs::is_json(headers) {
        return Err(ApiError::UnsupportedMediaType(
            "expected Content-Type: application/json".into(),
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    if value.is_null() {
        return Ok(RestoreBody::default());
    }
    serde_json::from_value(value).map_err(|e| ApiError::Unprocessable(e.to_string()))
}

/// Restore a version
///
/// Makes a new version equal to this one (history is never rewritten). Secrets keep their
/// current values; a secret the old version had and the script no longer holds is refused.
#[utoipa::path(post, path = "/api/admin/scripts/{id}/versions/{version}/restore",
    operation_id = "restoreVersion", tag = "versions",
    params(("id" = String, Path, description = "The script's id"),
           ("version" = i64, Path, minimum = 1, description = "The version to restore")),
    request_body(content = Option<RestoreBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "The script as now stored", body = ScriptView),
        (status = 400, description = "The version cannot be restored as it is; `field` says why", body = ErrorBody),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 403, description = "A cross-origin request", body = ErrorBody),
        (status = 404, description = "No such script or version", body = ErrorBody),
        (status = 409, description = "Its codeIdentifier is now another script's", body = ErrorBody),
        (status = 415, description = "A body not declared as JSON", body = ErrorBody),
        (status = 422, description = "The body is not a restore object", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn restore(
    State(state): State<AppState>,
    Path((id, version)): Path<(String, String)>,
    Extension(user): Extension<AdminUser>,
    client: ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ScriptView>, ApiError> {
    let number = version_number("version", &version)?;
    let body = restore_body(&headers, &body)?;
    let author = Author::admin(&user.0, client);
    let edit = Edit {
        author: &author,
        message: body.message,
    };
    let script = state.catalog().restore(&id, number, edit).await?;
    state.schedule_changed();
    tracing::info!(script_id = %id, restored = number, version = script.version, "version restored");
    Ok(Json(ScriptView::from(&script)))
}
