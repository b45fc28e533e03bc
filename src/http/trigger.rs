//! API triggers: issuing and revoking a script's token, and the public endpoint that runs a
//! script for a caller holding it.

use std::time::Duration;

use axum::body::to_bytes;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::extract::ApiQuery;
use super::runs::{is_json, user_agent, MAX_INPUT_BYTES};
use super::state::AppState;
use super::views::{time, RunView};
use super::{AdminUser, ClientAddr};
use crate::auth;
use crate::domain::{audit, Action, Author, RunStatus, ScriptType, Trigger};
use crate::engine::RunRequest;
use crate::error::{ApiError, ErrorBody};

const DEFAULT_WAIT: Duration = Duration::from_secs(30);
const MAX_WAIT: Duration = Duration::from_secs(300);

/// A new trigger token: shown here once, only its hash is stored.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "token": "sdt_Bc55kNb5hF-y7dw8K0OsAqqaF_VB2Dsl92Aa43C_9QY",
    "tokenCreatedAt": "2026-11-25T09:20:41.502Z",
    "url": "http://scripts.example.com/api/scripts/nightly-backup/run",
    "curl": "curl -X POST -H 'Authorization: Bearer sdt_Bc55kNb5hF-y7dw8K0OsAqqaF_VB2Dsl92Aa43C_9QY' -H 'Content-Type: application/json' -d '{}' http://scripts.example.com/api/scripts/nightly-backup/run",
    "note": "This is the only time the token is shown; only its hash is stored."
}))]
pub struct TokenIssued {
    pub token: String,
    #[schema(format = DateTime)]
    pub token_created_at: String,
    /// The trigger's URL, built from the request's Host.
    pub url: String,
    /// A command that starts the script with this token.
    pub curl: String,
    pub note: &'static str,
}

/// Create or rotate the trigger token
///
/// Issues a new token (the old one stops working at once) and shows it this once. The trigger
/// also needs `apiTrigger.enabled` on the script.
#[utoipa::path(post, path = "/api/admin/scripts/{id}/api-token", operation_id = "createTriggerToken",
    tag = "trigger",
    params(("id" = String, Path, description = "The script's id")),
    responses(
        (status = 201, description = "Issued", body = TokenIssued),
        (status = 400, description = "A browser script: it cannot be triggered", body = ErrorBody),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 403, description = "A cross-origin request", body = ErrorBody),
        (status = 404, description = "No such script", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Extension(user): Extension<AdminUser>,
    client: ClientAddr,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<TokenIssued>), ApiError> {
    let script = state.store.get_script(&id).await?;
    if script.script_type == ScriptType::Browser {
        return Err(ApiError::BadRequest(
            "browser scripts cannot be triggered by API".into(),
        ));
    }
    let (token, hash) = auth::new_trigger_token();
    let now = Utc::now();
    let action = match script.token_created_at {
        Some(_) => Action::TokenRotate,
        None => Action::TokenCreate,
    };
    let audit = Author::admin(&user.0, client).entry(
        action,
        audit::script_target(script.code_identifier.as_str()),
        json!({}),
    );
    state
        .store
        .set_token(&id, Some(&hash), Some(now), &audit)
        .await?;
    tracing::info!(script_id = %id, "trigger token issued");
    let path = format!("/api/scripts/{}/run", script.code_identifier);
    let url = match &state.settings.public_url {
        Some(public) => public.join(&path),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1:8080");
            format!("http://{host}{path}")
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(TokenIssued {
            curl: format!(
                "curl -X POST -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{{}}' {url}"
            ),
            token,
            token_created_at: time(now),
            url,
            note: "This is the only time the token is shown; only its hash is stored.",
        }),
    ))
}

/// Revoke the trigger token
#[utoipa::path(delete, path = "/api/admin/scripts/{id}/api-token", operation_id = "revokeTriggerToken",
    tag = "trigger",
    params(("id" = String, Path, description = "The script's id")),
    responses(
        (status = 204, description = "Revoked (or there was none)"),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 403, description = "A cross-origin request", body = ErrorBody),
        (status = 404, description = "No such script", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn revoke_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Extension(user): Extension<AdminUser>,
    client: ClientAddr,
) -> Result<StatusCode, ApiError> {
    let script = state.store.get_script(&id).await?;
    let audit = Author::admin(&user.0, client).entry(
        Action::TokenRevoke,
        audit::script_target(script.code_identifier.as_str()),
        json!({ "hadToken": script.token_created_at.is_some() }),
    );
    state.store.set_token(&id, None, None, &audit).await?;
    tracing::info!(script_id = %id, "trigger token revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct TriggerQuery {
    /// Wait for the run to end (up to `timeoutMs`) and answer with the whole run.
    wait: Option<bool>,
    /// How long `wait` waits (default 30000; at most 300000 is used).
    #[param(minimum = 0)]
    timeout_ms: Option<i64>,
}

/// Still going when the wait ran out: the answer a start without `wait` gives, with the status.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerAccepted {
    pub run_id: String,
    /// With `wait=true`: where the run was when the wait ran out.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<RunStatus>, nullable = false)]
    pub status: Option<&'static str>,
}

/// Run a script with its trigger token
///
/// The body, when there is one, is the run's input: any JSON. Without `wait` the answer comes
/// at once (202). With `wait=true` it comes when the run ends (200, the whole run) or when
/// `timeoutMs` runs out (202, like without `wait`). A wrong token and an unknown script get
/// the same 401.
#[utoipa::path(post, path = "/api/scripts/{codeIdentifier}/run", operation_id = "triggerScript",
    tag = "trigger",
    params(
        ("codeIdentifier" = String, Path, description = "The script's codeIdentifier"),
        TriggerQuery,
    ),
    request_body(content = Option<Value>, content_type = "application/json",
        description = "The run's input (any JSON, at most 1 MiB); empty for none",
        example = json!({"since": "2026-11-24", "dryRun": false})),
    responses(
        (status = 200, description = "Finished (with `wait=true`)", body = RunView),
        (status = 202, description = "Queued (or, with `wait=true`, not finished in time)",
            body = TriggerAccepted, example = json!({"runId": "019a5f1d-0c41-7a3e-b2f0-6d9e4c8a1b27"})),
        (status = 400, description = "The body or the query is not valid", body = ErrorBody),
        (status = 401, description = "The token is missing or wrong, or no such script", body = ErrorBody),
        (status = 403, description = "A runner this server does not allow", body = ErrorBody),
        (status = 404, description = "The script's trigger is disabled", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 409, description = "The script is disabled, or `single` and already active", body = ErrorBody),
        (status = 413, description = "The input is over 1 MiB", body = ErrorBody),
        (status = 415, description = "A body declared as something other than JSON", body = ErrorBody),
        (status = 429, description = "Too many failed attempts from this client, or too many runs waiting", body = ErrorBody),
    ),
    security(("bearerAuth" = [])))]
pub async fn run(
    State(state): State<AppState>,
    Path(code): Path<String>,
    client: ClientAddr,
    req: Request,
) -> Result<Response, ApiError> {
    // The token and the failure limit are checked from the headers alone, before anything of
    // the body is read, and a missing script costs the same work as a wrong token, so neither
    // the answer nor its timing tells which scripts exist. As for admin logins, the limit
    // refuses only wrong tokens: callers behind one address (a NAT, a proxy) with the right
    // token are never locked out by another's guesses.
    let (mut parts, body) = req.into_parts();
    let presented = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let (script, stored) = match state.store.script_for_trigger(&code).await? {
        Some((script, hash)) => (Some(script), hash),
        None => (None, None),
    };
    let matches = auth::token_matches(
        presented.unwrap_or_default(),
        stored.as_deref().unwrap_or(auth::NO_TOKEN_HASH),
    );
    let Some(script) = script.filter(|_| matches && presented.is_some() && stored.is_some()) else {
        // Counted unless the budget is spent already, in one step.
        if let Err(secs) = state.trigger_failures.reserve(client.0) {
            return Err(ApiError::RateLimited {
                retry_after_secs: secs,
            });
        }
        state.metrics.auth_failed(crate::metrics::AuthKind::Trigger);
        return Err(ApiError::BadToken);
    };
    if !script.api_trigger_enabled {
        return Err(ApiError::NotFound("trigger"));
    }
    let ApiQuery(q) = ApiQuery::<TriggerQuery>::from_request_parts(&mut parts, &()).await?;
    if q.timeout_ms.is_some_and(|ms| ms < 0) {
        return Err(crate::domain::ValidationError::new("timeoutMs", "must be 0 or more").into());
    }
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
    let author = Author::token(script.code_identifier.as_str(), client);
    let run_id = state
        .engine
        .submit(RunRequest {
            script,
            trigger: Trigger::Api,
            meta,
            input,
            author,
        })
        .await?;
    if !q.wait.unwrap_or(false) {
        return Ok((
            StatusCode::ACCEPTED,
            Json(TriggerAccepted {
                run_id,
                status: None,
            }),
        )
            .into_response());
    }
    let bound = q
        .timeout_ms
        .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or_default()))
        .unwrap_or(DEFAULT_WAIT)
        .min(MAX_WAIT);
    let run = state.engine.wait_finished(&run_id, bound).await?;
    if run.status.is_terminal() {
        return Ok((StatusCode::OK, Json(RunView::full(&run))).into_response());
    }
    // Still going when the wait ran out: the same answer as without `wait`.
    Ok((
        StatusCode::ACCEPTED,
        Json(TriggerAccepted {
            run_id,
            status: Some(run.status.as_str()),
        }),
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

/// The token of an `Authorization: Bearer <token>` header; the scheme's case does not matter
/// (RFC 9110, 11.1).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
