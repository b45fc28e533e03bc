//! Scripts as files over the API: export one or many, import with a preview.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::extract::ApiJson;
use super::state::AppState;
use super::{AdminUser, ClientAddr};
use crate::catalog::file;
use crate::catalog::transfer::{self, ImportOptions, ImportPlan, ScriptFile};
use crate::domain::{audit, Action, Author, ScriptDocument, ValidationError};
use crate::error::{ApiError, ErrorBody};

fn attachment(content_type: &'static str, name: &str, body: Vec<u8>) -> Response {
    let mut resp = body.into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// Export a script as a file
///
/// Its `<codeIdentifier>.toml` (the format is in the README); secrets are named, never given.
#[utoipa::path(get, path = "/api/admin/scripts/{id}/export", operation_id = "exportScript",
    tag = "transfer",
    params(("id" = String, Path, description = "The script's id")),
    responses(
        (status = 200, description = "The file", content_type = "application/toml", body = String),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 404, description = "No such script", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn export_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Extension(user): Extension<AdminUser>,
    client: ClientAddr,
) -> Result<Response, ApiError> {
    let script = state.store.get_script(&id).await?;
    let audit = Author::admin(&user.0, client).entry(
        Action::Export,
        audit::script_target(script.code_identifier.as_str()),
        json!({ "scripts": 1, "sealed": false }),
    );
    state.store.append_audit(&audit).await?;
    let text = file::write(&ScriptDocument::of(&script))?;
    Ok(attachment(
        "application/toml",
        &file::file_name(script.code_identifier.as_str()),
        text.into_bytes(),
    ))
}

/// What to export.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ExportBody {
    /// codeIdentifiers; every script when left out or empty.
    #[serde(default)]
    scripts: Vec<String>,
    /// Seals secret values with a key derived from it (at least 12 characters); without one,
    /// secrets are only named.
    #[schema(min_length = 12)]
    passphrase: Option<String>,
}

/// Export scripts as an archive
///
/// A tar archive of one `<codeIdentifier>.toml` per script. A POST so a passphrase never
/// appears in a URL.
#[utoipa::path(post, path = "/api/admin/scripts/export", operation_id = "exportScripts",
    tag = "transfer",
    request_body = ExportBody,
    responses(
        (status = 200, description = "The archive", content_type = "application/x-tar", body = Vec<u8>),
        (status = 400, description = "A passphrase too short", body = ErrorBody),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 403, description = "A cross-origin request", body = ErrorBody),
        (status = 404, description = "No script has one of the codeIdentifiers", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON", body = ErrorBody),
        (status = 422, description = "The JSON is not an export request", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn export_many(
    State(state): State<AppState>,
    Extension(user): Extension<AdminUser>,
    client: ClientAddr,
    ApiJson(body): ApiJson<ExportBody>,
) -> Result<Response, ApiError> {
    let files =
        transfer::export(&state.catalog(), &body.scripts, body.passphrase.as_deref()).await?;
    let audit = Author::admin(&user.0, client).entry(
        Action::Export,
        "export",
        json!({ "scripts": files.len(), "sealed": body.passphrase.is_some() }),
    );
    state.store.append_audit(&audit).await?;
    let archive = tar_of(&files).map_err(ApiError::internal)?;
    Ok(attachment(
        "application/x-tar",
        "scriptd-scripts.tar",
        archive,
    ))
}

/// The files as a tar archive, the same bytes for the same files (no times, no owners).
pub fn tar_of(files: &[ScriptFile]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for f in files {
        let mut head = tar::Header::new_ustar();
        head.set_size(f.text.len() as u64);
        head.set_mode(0o644);
        head.set_mtime(0);
        head.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut head, &f.name, f.text.as_bytes())?;
    }
    builder.into_inner()
}

/// One file of an import.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportFile {
    /// `<codeIdentifier>.toml`
    #[schema(pattern = r"^[a-z0-9_-]{1,100}\.toml$")]
    name: String,
    /// The file's text: a script in the format the README shows, checked by the same rules
    /// as `ScriptInput`.
    content: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportBody {
    #[schema(max_items = 1000)]
    files: Vec<ImportFile>,
    /// Only say what would change (default false).
    #[serde(default)]
    dry_run: bool,
    /// Delete the scripts no file names (default false).
    #[serde(default)]
    prune: bool,
    /// Opens the sealed secrets of an export made with a passphrase.
    passphrase: Option<String>,
}

/// Import scripts from files
///
/// Checks every file first and changes nothing if one is invalid (400 naming the file and
/// field). A script whose file matches it is left alone; a changed one gets a new version
/// saying it was imported. With `dryRun`, only the plan is returned.
#[utoipa::path(post, path = "/api/admin/scripts/import", operation_id = "importScripts",
    tag = "transfer",
    request_body = ImportBody,
    responses(
        (status = 200, description = "The plan, applied unless a dry run", body = ImportPlan),
        (status = 400, description = "A file is invalid (`field` names it), or a sealed secret does not open", body = ErrorBody),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 403, description = "A cross-origin request", body = ErrorBody),
        (status = 409, description = "A codeIdentifier is another script's", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not declared as JSON", body = ErrorBody),
        (status = 422, description = "The JSON is not an import request", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn import(
    State(state): State<AppState>,
    Extension(user): Extension<AdminUser>,
    client: ClientAddr,
    ApiJson(body): ApiJson<ImportBody>,
) -> Result<Json<ImportPlan>, ApiError> {
    if body.files.len() > 1000 {
        return Err(ValidationError::new("files", "at most 1000 files at once").into());
    }
    let files: Vec<ScriptFile> = body
        .files
        .into_iter()
        .map(|f| ScriptFile {
            name: f.name,
            text: f.content,
        })
        .collect();
    let author = Author::admin(&user.0, client);
    let catalog = state.catalog();
    let options = |dry_run| ImportOptions {
        dry_run,
        prune: body.prune,
        passphrase: body.passphrase.clone(),
    };
    if !body.dry_run && body.prune {
        // The scripts to delete stop running first, on whichever node runs them.
        let plan = transfer::import(&catalog, &files, options(true), &author).await?;
        for code in &plan.delete {
            let script = state.store.get_script_by_code(code).await?;
            state.engine.cancel_script(&script.id).await?;
        }
    }
    let plan = transfer::import(&catalog, &files, options(body.dry_run), &author).await?;
    if plan.applied {
        state.schedule_changed();
        tracing::info!(
            created = plan.create.len(),
            updated = plan.update.len(),
            deleted = plan.delete.len(),
            "scripts imported"
        );
    }
    Ok(Json(plan))
}
