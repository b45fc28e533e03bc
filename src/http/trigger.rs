//! API triggers: issuing and revoking a script's token, and the public endpoint that runs a
//! script for a caller holding it.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::ApiQuery;
use super::runs::{user_agent, MAX_INPUT_BYTES};
use super::state::AppState;
use super::views::{time, RunView};
use super::ClientAddr;
use crate::auth;
use crate::domain::{ScriptType, Trigger};
use crate::engine::RunRequest;
use crate::error::ApiError;
use crate::store::StoreError;

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
#[serde(rename_all = "camelCase")]
pub struct TriggerQuery {
    wait: Option<bool>,
    timeout_ms: Option<u64>,
}

pub async fn run(
    State(state): State<AppState>,
    Path(code): Path<String>,
    ApiQuery(q): ApiQuery<TriggerQuery>,
    client: ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.refuse_if_limited(client)?;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // One answer for a wrong token, a missing one and an unknown script, so nothing can be
    // learnt by probing.
    let script = match state.store.get_script_by_code(&code).await {
        Ok(s) => Some(s),
        Err(StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let stored = match &script {
        Some(s) => state.store.token_hash(&s.id).await?,
        None => None,
    };
    let authorized = match (presented, stored.as_deref()) {
        (Some(token), Some(hash)) => auth::token_matches(token, hash),
        _ => false,
    };
    let Some(script) = script.filter(|_| authorized) else {
        state.count_failure(client);
        return Err(ApiError::Unauthorized);
    };
    if !script.api_trigger_enabled {
        return Err(ApiError::NotFound("trigger"));
    }
    let input = parse_input(&headers, &body)?;
    let meta = json!({
        "caller": "api-token",
        "clientAddress": client.to_string(),
        "userAgent": user_agent(&headers),
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
    let status = if run.status.is_terminal() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(RunView::full(&run))).into_response())
}

/// The body is the run's input: any JSON value, or nothing.
fn parse_input(headers: &HeaderMap, body: &[u8]) -> Result<Option<Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if body.len() > MAX_INPUT_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.starts_with("application/json") || ct.contains("+json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType(
            "the body must be JSON".into(),
        ));
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))
}
