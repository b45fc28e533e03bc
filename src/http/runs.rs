//! Starting, listing, reading and canceling runs.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::ApiQuery;
use super::state::AppState;
use super::views::RunView;
use super::{AdminUser, ClientAddr};
use crate::domain::{RunStatus, Trigger};
use crate::engine::RunRequest;
use crate::error::ApiError;
use crate::store::RunFilter;

/// Largest `input` a trigger may pass.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;

pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Extension(user): Extension<AdminUser>,
    client: ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input = parse_run_body(&headers, &body)?;
    let script = state.store.get_script(&id).await?;
    let meta = json!({
        "user": user.0,
        "clientAddress": client.to_string(),
        "userAgent": user_agent(&headers),
    });
    let run_id = state
        .engine
        .submit(RunRequest {
            script,
            trigger: Trigger::Manual,
            meta,
            input,
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "runId": run_id }))))
}

/// An empty body, or `{"input": …}` sent as JSON (a form or text/plain body is what a
/// cross-site form could send, so it is refused). Whitespace is not empty: it is not JSON.
fn parse_run_body(headers: &HeaderMap, body: &[u8]) -> Result<Option<Value>, ApiError> {
    if body.is_empty() {
        return Ok(None);
    }
    if body.len() > MAX_INPUT_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType(
            "expected Content-Type: application/json".into(),
        ));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    match value {
        Value::Object(mut map) => Ok(map.remove("input").filter(|v| !v.is_null())),
        _ => Err(ApiError::BadRequest(
            "the body must be a JSON object like {\"input\": …}".into(),
        )),
    }
}

/// Whether the body is declared as JSON.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("application/json")
                || ct
                    .split(';')
                    .next()
                    .is_some_and(|m| m.trim().ends_with("+json"))
        })
}

pub fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(300).collect())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    script_id: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
    before: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = q.status.filter(|s| !s.is_empty());
    if let Some(s) = &status {
        if RunStatus::parse(s).is_none() {
            return Err(crate::domain::ValidationError::new(
                "status",
                "must be one of: queued, running, succeeded, failed, canceled, timed_out",
            )
            .into());
        }
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(
            crate::domain::ValidationError::new("limit", "must be between 1 and 200").into(),
        );
    }
    let runs = state
        .store
        .list_runs(&RunFilter {
            script_id: q.script_id.filter(|s| !s.is_empty()),
            status,
            before: q.before.filter(|s| !s.is_empty()),
            limit,
        })
        .await?;
    let next = (runs.len() as i64 == limit)
        .then(|| runs.last().map(|r| r.id.clone()))
        .flatten();
    let views: Vec<RunView> = runs.iter().map(RunView::summary).collect();
    Ok(Json(json!({ "runs": views, "nextBefore": next })))
}

pub async fn get(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    let run = state.store.get_run(&run_id).await?;
    Ok(Json(RunView::full(&run)))
}

pub async fn cancel(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state.engine.cancel(&run_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "runId": run_id, "canceling": true })),
    ))
}

/// The stored log as a text download, streamed page by page from the store.
pub async fn log(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Response, ApiError> {
    state.store.get_run(&run_id).await?;
    let store = state.store.clone();
    let id = run_id.clone();
    let pages = futures_util::stream::unfold(Some(0i64), move |after| {
        let store = store.clone();
        let id = id.clone();
        async move {
            let after = after?;
            match store.read_log(&id, after, 5000).await {
                Ok(lines) if lines.is_empty() => None,
                Ok(lines) => {
                    let last = lines.last().map(|l| l.seq);
                    let mut text = String::new();
                    for l in &lines {
                        text.push_str(&l.line);
                        text.push('\n');
                    }
                    Some((Ok::<_, std::io::Error>(Bytes::from(text)), last))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"run-{run_id}.log\""),
            ),
        ],
        Body::from_stream(pages),
    )
        .into_response())
}
