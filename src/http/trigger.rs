//! API triggers: issuing and revoking a script's token, and the public endpoint that runs a
//! script for a caller holding it.

use std::time::Duration;

use axum::body::to_bytes;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::ApiQuery;
use super::runs::{is_json, user_agent, MAX_INPUT_BYTES};
use super::state::AppState;
use super::views::{time, RunView};
use super::ClientAddr;
use crate::auth;
use crate::domain::{ScriptType, Trigger};
use crate::engine::RunRequest;
use crate::error::ApiError;

const DEFAULT_WAIT: Duration = Duration::from_secs(30);
const MAX_WAIT: Duration = Duration::from_secs(300);

pub async fn create_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let script = state.store.get_script(&id).await?;
    if script.script_type == ScriptType::Browser {
        return Err(ApiError::BadRequest(
            "browser scripts cannot be triggered by API".into(),
        ));
    }
    let (token, hash) = auth::new_trigger_token();
    let now = Utc::now();
    state.store.set_token(&id, Some(&hash), Some(now)).await?;
    tracing::info!(script_id = %id, "trigger token issued");
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    let url = format!("http://{host}/api/scripts/{}/run", script.code_identifier);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": token,
            "tokenCreatedAt": time(now),
            "url": url,
            "curl": format!(
                "curl -X POST -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{{}}' {url}"
            ),
            "note": "This is the only time the token is shown; only its hash is stored.",
        })),
    ))
}

pub async fn revoke_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.set_token(&id, None, None).await?;
    tracing::info!(script_id = %id, "trigger token revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct TriggerQuery {
    wait: Option<bool>,
    timeout_ms: Option<u64>,
}

/// The public trigger. The failure limit and the token are checked from the headers alone,
/// before anything of the body is read, and a missing script costs the same work as a wrong
/// token, so neither the answer nor its timing tells which scripts exist.
pub async fn run(
    State(state): State<AppState>,
    Path(code): Path<String>,
    client: ClientAddr,
    req: Request,
) -> Result<Response, ApiError> {
    if let Some(secs) = state.trigger_failures.retry_after(client.0) {
        return Err(ApiError::RateLimited {
            retry_after_secs: secs,
        });
    }
    let (mut parts, body) = req.into_parts();
    let presented = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let (script, stored) = match state.store.script_for_trigger(&code).await? {
        Some((script, hash)) => (Some(script), hash),
        None => (None, None),
    };
    let matches = auth::token_matches(
        presented.unwrap_or_default(),
        stored.as_deref().unwrap_or(auth::NO_TOKEN_HASH),
    );
    let Some(script) = script.filter(|_| matches && presented.is_some() && stored.is_some()) else {
        state.trigger_failures.record_failure(client.0);
        return Err(ApiError::BadToken);
    };
    if !script.api_trigger_enabled {
        return Err(ApiError::NotFound("trigger"));
    }
    let ApiQuery(q) = ApiQuery::<TriggerQuery>::from_request_parts(&mut parts, &()).await?;
    let body = match tokio::time::timeout(
        state.settings.body_read_timeout,
        to_bytes(body, MAX_INPUT_BYTES),
    )
    .await
    {
        Err(_) => return Err(ApiError::RequestTimeout),
        Ok(Err(e)) if is_too_large(&e) => return Err(ApiError::PayloadTooLarge),
        Ok(Err(e)) => {
            return Err(ApiError::BadRequest(format!(
                "could not read the body: {e}"
            )))
        }
        Ok(Ok(b)) => b,
    };
    let headers = &parts.headers;
    let input = parse_input(headers, &body)?;
    let meta = json!({
        "caller": "api-token",
        "clientAddress": client.to_string(),
        "userAgent": user_agent(headers),
    });
    let run_id = state
        .engine
        .submit(RunRequest {
            script,
            trigger: Trigger::Api,
            meta,
            input,
        })
        .await?;
    if !q.wait.unwrap_or(false) {
        return Ok((StatusCode::ACCEPTED, Json(json!({ "runId": run_id }))).into_response());
    }
    let bound = q
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_WAIT)
        .min(MAX_WAIT);
    let run = state.engine.wait_finished(&run_id, bound).await?;
    if run.status.is_terminal() {
        return Ok((StatusCode::OK, Json(RunView::full(&run))).into_response());
    }
    // Still going when the wait ran out: the same answer as without `wait`.
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "runId": run_id, "status": run.status.as_str() })),
    )
        .into_response())
}

/// Whether reading the body failed because it passed the limit.
fn is_too_large(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// The body is the run's input: any JSON value, or nothing (an empty body).
fn parse_input(headers: &HeaderMap, body: &[u8]) -> Result<Option<Value>, ApiError> {
    if body.is_empty() {
        return Ok(None);
    }
    if body.len() > MAX_INPUT_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    // A caller that names no type (curl -d without -H) still means JSON.
    if headers.contains_key(header::CONTENT_TYPE) && !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType(
            "the body must be JSON".into(),
        ));
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))
}
