//! Script definitions: list, create, read, update, delete.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use utoipa::IntoParams;

use super::api_doc::blank_or;
use super::extract::{ApiJson, ApiQuery};
use super::state::AppState;
use super::views::ScriptView;
use super::{AdminUser, ClientAddr};

use crate::catalog::Edit;
use crate::domain::{Author, ScriptInput, ScriptType, ValidationError};
use crate::error::{ApiError, ErrorBody};
use crate::store::ScriptFilter;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only scripts whose name, codeIdentifier or description contains this text (any case).
    q: Option<String>,
    #[serde(rename = "type")]
    #[param(schema_with = script_types)]
    script_type: Option<String>,
}

fn script_types() -> utoipa::openapi::schema::Object {
    blank_or(
        ScriptType::ALL.map(ScriptType::as_str),
        "Only scripts of this type; empty means every type.",
    )
}

/// List scripts
///
/// Every script with its newest run, without bodies and env: the editor reads one script.
#[utoipa::path(get, path = "/api/admin/scripts", operation_id = "listScripts", tag = "scripts",
    params(ListQuery),
    responses(
        (status = 200, description = "The scripts, by name", body = [ScriptView]),
        (status = 400, description = "A filter is not one the server knows", body = ErrorBody),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    if let Some(t) = query.script_type.as_deref().filter(|t| !t.is_empty()) {
        if ScriptType::parse(t).is_none() {
            return Err(ValidationError::new("type", "must be one of: bash, node, browser").into());
        }
    }
    let filter = ScriptFilter {
        q: query.q,
        script_type: query.script_type.filter(|t| !t.is_empty()),
    };
    let listings = state.store.list_scripts(&filter).await?;
    let body = state.list_json.write(&listings, filter.is_whole());
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// One script
///
/// The whole definition, its body and env included (secret values are never shown).
#[utoipa::path(get, path = "/api/admin/scripts/{id}", operation_id = "getScript", tag = "scripts",
    params(("id" = String, Path, description = "The script's id")),
    responses(
        (status = 200, description = "The script", body = ScriptView),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 404, description = "No such script", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ScriptView>, ApiError> {
    let script = state.store.get_script(&id).await?;
    Ok(Json(ScriptView::from(&script)))
}

/// A script document, refusing arrays where objects belong: serde would otherwise read a
/// struct from a positional array, so `[…14 values…]` would create a script.
/// Read from the text itself (not a parsed value) so the input form keeps its fields' order.
fn script_input(raw: &RawValue) -> Result<ScriptInput, ApiError> {
    let body: Value =
        serde_json::from_str(raw.get()).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let object_or_null = |v: Option<&Value>| v.is_none_or(|v| v.is_object() || v.is_null());
    let shape_ok = body.is_object()
        && object_or_null(body.get("schedule"))
        && object_or_null(body.get("apiTrigger"))
        && object_or_null(body.get("retry"))
        && body.get("env").is_none_or(|env| match env {
            Value::Array(items) => items.iter().all(Value::is_object),
            other => other.is_null(),
        });
    if !shape_ok {
        return Err(ApiError::Unprocessable(
            "the script, its schedule, its apiTrigger and each env entry must be JSON objects"
                .into(),
        ));
    }
    serde_json::from_str(raw.get()).map_err(|e| ApiError::Unprocessable(e.to_string()))
}

/// Create a script
#[utoipa::path(post, path = "/api/admin/scripts", operation_id = "createScript", tag = "scripts",
    request_body = ScriptInput,
    responses(
        (status = 201, description = "Created", body = ScriptView, links(
            ("GetScript" = (operation_id = "getScript", description = "The script just created.",
                parameters(("id" = "$response.body#/id")))),
            ("UpdateScript" = (operation_id = "updateScript", description = "Edit it.",
                parameters(("id" = "$response.body#/id")))),
            ("RunScript" = (operation_id = "runScript", description = "Start a run of it.",
                parameters(("id" = "$response.body#/id")))),
            ("CreateTriggerToken" = (operation_id = "createTriggerToken",
                description = "Issue its trigger token.", parameters(("id" = "$response.body#/id")))),
            ("DeleteScript" = (operation_id = "deleteScript", description = "Delete it.",
                parameters(("id" = "$response.body#/id")))),
        )),
        (status = 400, description = "A field breaks a rule; `field` names it", body = ErrorBody),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 403, description = "A cross-origin request", body = ErrorBody),
        (status = 409, description = "The codeIdentifier is taken", body = ErrorBody),
        (status = 413, description = "The body or the script is too large", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON", body = ErrorBody),
        (status = 422, description = "The JSON is not a script object", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Extension(user): Extension<AdminUser>,
    client: ClientAddr,
    ApiJson(body): ApiJson<Box<RawValue>>,
) -> Result<(StatusCode, Json<ScriptView>), ApiError> {
    let mut input = script_input(&body)?;
    let author = Author::admin(&user.0, client);
    let edit = Edit {
        author: &author,
        message: input.version_message.take(),
    };
    let script = state.catalog().create(input.parse()?, edit).await?;
    state.schedule_changed();
    tracing::info!(script_id = %script.id, code = %script.code_identifier, "script created");
    Ok((StatusCode::CREATED, Json(ScriptView::from(&script))))
}

/// Replace a script
///
/// Every field is replaced (a field left out takes its default); a secret sent with a `null`
/// value keeps its stored value.
#[utoipa::path(put, path = "/api/admin/scripts/{id}", operation_id = "updateScript", tag = "scripts",
    params(("id" = String, Path, description = "The script's id")),
    request_body = ScriptInput,
    responses(
        (status = 200, description = "The script as now stored", body = ScriptView),
        (status = 400, description = "A field breaks a rule; `field` names it", body = ErrorBody),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 403, description = "A cross-origin request", body = ErrorBody),
        (status = 404, description = "No such script", body = ErrorBody),
        (status = 409, description = "The codeIdentifier is taken by another script", body = ErrorBody),
        (status = 413, description = "The body or the script is too large", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON", body = ErrorBody),
        (status = 422, description = "The JSON is not a script object", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Extension(user): Extension<AdminUser>,
    client: ClientAddr,
    ApiJson(body): ApiJson<Box<RawValue>>,
) -> Result<Json<ScriptView>, ApiError> {
    let mut input = script_input(&body)?;
    let author = Author::admin(&user.0, client);
    let edit = Edit {
        author: &author,
        message: input.version_message.take(),
    };
    let script = state.catalog().update(&id, input.parse()?, edit).await?;
    state.schedule_changed();
    Ok(Json(ScriptView::from(&script)))
}

/// Delete a script
///
/// Cancels its runs and removes its run history.
#[utoipa::path(delete, path = "/api/admin/scripts/{id}", operation_id = "deleteScript", tag = "scripts",
    params(("id" = String, Path, description = "The script's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 403, description = "A cross-origin request", body = ErrorBody),
        (status = 404, description = "No such script", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Extension(user): Extension<AdminUser>,
    client: ClientAddr,
) -> Result<StatusCode, ApiError> {
    let script = state.store.get_script(&id).await?;
    state.engine.cancel_script(&id).await?;
    state
        .catalog()
        .delete(&script, &Author::admin(&user.0, client))
        .await?;
    state.schedule_changed();
    tracing::info!(script_id = %id, "script deleted with its run history");
    Ok(StatusCode::NO_CONTENT)
}
