//! The audit log: read with filters, page by page, or export as JSON lines.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::api_doc::blank_or;
use super::extract::{cursor_param, time_param, ApiQuery};
use super::state::AppState;
use super::views::time;
use crate::domain::{Action, AuditEntry, ValidationError};
use crate::error::{ApiError, ErrorBody};
use crate::store::AuditFilter;

/// One recorded action.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AuditEntry, example = json!({
    "id": "019ade40-6a55-7c1e-8f3b-0d2c4e6a8b10",
    "at": "2026-12-03T09:12:03.118Z",
    "actor": "admin:admin",
    "client": "192.0.2.10",
    "action": "script.update",
    "target": "script:nightly-backup",
    "summary": {"fields": ["timeoutMs", "script"], "secretsChanged": ["env:PGPASSWORD"], "version": 4},
    "count": 1
}))]
pub struct AuditView {
    pub id: String,
    #[schema(format = DateTime)]
    pub at: String,
    /// `admin:<user>`, `schedule`, `token:<codeIdentifier>`, `cli:<os user>`, `system`, or
    /// `anonymous` (a failed login).
    pub actor: String,
    /// The client's address; empty for the server's own actions.
    pub client: String,
    pub action: Action,
    /// `script:<codeIdentifier>`, `run:<id>`, `settings`, `master-key`, `admin-login`, `import`.
    pub target: String,
    /// What changed: field names, counts, versions; never a secret value or a token.
    #[schema(value_type = Object)]
    pub summary: serde_json::Value,
    /// How many times it happened (failed logins of one client are counted in one entry).
    pub count: i64,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        Self {
            at: time(e.at),
            id: e.id,
            actor: e.actor,
            client: e.client,
            action: e.action,
            target: e.target,
            summary: e.summary,
            count: e.count,
        }
    }
}

/// A page of entries, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditList {
    pub entries: Vec<AuditView>,
    /// Pass as `before` for the next page; null when no entry is older.
    #[schema(required = true)]
    pub next_before: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this actor (`admin:admin`, `schedule`, …); empty means any.
    actor: Option<String>,
    #[param(schema_with = actions)]
    action: Option<String>,
    /// Only this target; one ending in `:` (`script:`) matches every target it starts.
    target: Option<String>,
    /// Only entries at or after this time; empty means no bound.
    #[param(schema_with = super::api_doc::blank_or_time)]
    from: Option<String>,
    /// Only entries before this time; empty means no bound.
    #[param(schema_with = super::api_doc::blank_or_time)]
    to: Option<String>,
    #[param(schema_with = super::api_doc::blank_or_id)]
    before: Option<String>,
    /// At most this many (default 50; the export ignores it).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

fn actions() -> utoipa::openapi::schema::Object {
    blank_or(
        Action::ALL.map(Action::as_str),
        "Only this action; empty means every action.",
    )
}

fn filter(q: AuditQuery) -> Result<AuditFilter, ApiError> {
    let action = match q.action.as_deref().filter(|a| !a.is_empty()) {
        Some(a) => Some(Action::parse(a).ok_or_else(|| {
            ValidationError::new("action", format!("is not an action scriptd records: {a}"))
        })?),
        None => None,
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ValidationError::new("limit", "must be between 1 and 500").into());
    }
    let blank = |v: Option<String>| v.filter(|v| !v.is_empty());
    Ok(AuditFilter {
        from: time_param("from", q.from.as_deref())?,
        to: time_param("to", q.to.as_deref())?,
        actor: blank(q.actor),
        action,
        target: blank(q.target),
        before: cursor_param("before", q.before.as_deref())?,
        limit,
    })
}

/// The audit log
///
/// Every admin action, newest first: script edits, version restores, tokens, runs started
/// and canceled, imports, master-key rotations, settings changed at a start, failed logins.
#[utoipa::path(get, path = "/api/admin/audit", operation_id = "listAudit", tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of entries", body = AuditList),
        (status = 400, description = "A filter out of range or unknown", body = ErrorBody),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditList>, ApiError> {
    let mut f = filter(q)?;
    let limit = f.limit;
    f.limit += 1;
    let mut entries: Vec<AuditView> = state
        .store
        .list_audit(&f)
        .await?
        .into_iter()
        .map(AuditView::from)
        .collect();
    let more = entries.len() as i64 > limit;
    entries.truncate(limit as usize);
    let next_before = more.then(|| entries.last().map(|e| e.id.clone())).flatten();
    Ok(Json(AuditList {
        entries,
        next_before,
    }))
}

/// Export the audit log
///
/// Every entry the filters match, newest first, one JSON object per line
/// (`application/x-ndjson`), read from the store a page at a time as it is sent.
#[utoipa::path(get, path = "/api/admin/audit/export", operation_id = "exportAudit", tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "JSON lines, one `AuditEntry` each", content_type = "application/x-ndjson", body = String),
        (status = 400, description = "A filter out of range or unknown", body = ErrorBody),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn export(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    let mut f = filter(q)?;
    f.limit = 500;
    let pages = stream::unfold(Some(f), move |next| {
        let store = state.store.clone();
        async move {
            let mut f = next?;
            match store.list_audit(&f).await {
                Ok(page) => {
                    let full = page.len() as i64 == f.limit;
                    let mut text = String::new();
                    for e in page {
                        f.before = Some(e.id.clone());
                        if let Ok(line) = serde_json::to_string(&AuditView::from(e)) {
                            text.push_str(&line);
                            text.push('\n');
                        }
                    }
                    Some((Ok::<_, std::io::Error>(text), full.then_some(f)))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    let mut resp = Body::from_stream(pages).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"scriptd-audit.jsonl\""),
    );
    Ok(resp)
}
