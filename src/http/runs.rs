//! Starting, listing, reading and canceling runs.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::api_doc::blank_or;
use super::extract::ApiQuery;
use super::state::AppState;
use super::views::RunView;
use super::{AdminUser, ClientAddr};
use crate::domain::{Author, Run, RunStatus, Trigger};
use crate::engine::RunRequest;
use crate::error::{ApiError, ErrorBody};
use crate::store::RunFilter;

/// Largest `input` a trigger may pass.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;

/// The body of a manual run: optional, and when sent, a JSON object.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"input": {"dryRun": true}}))]
pub struct RunBody {
    /// Any JSON: the script reads it as `SCRIPTD_INPUT` (host), `input` (isolated and browser).
    input: Option<Value>,
}

/// A run accepted: it is queued, and starts as soon as a node has room for it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunStarted {
    pub run_id: String,
}

/// Start a run
///
/// The body is optional; without one (or with `null`) the script gets no input.
#[utoipa::path(post, path = "/api/admin/scripts/{id}/run", operation_id = "runScript", tag = "runs",
    params(("id" = String, Path, description = "The script's id")),
    request_body(content = Option<RunBody>, content_type = "application/json"),
    responses(
        (status = 202, description = "Queued", body = RunStarted, links(
            ("GetRun" = (operation_id = "getRun", description = "The run just started.",
                parameters(("runId" = "$response.body#/runId")))),
            ("StreamRun" = (operation_id = "streamRun", description = "Its live output.",
                parameters(("runId" = "$response.body#/runId")))),
            ("GetRunLog" = (operation_id = "getRunLog", description = "Its stored log.",
                parameters(("runId" = "$response.body#/runId")))),
            ("CancelRun" = (operation_id = "cancelRun", description = "Cancel it.",
                parameters(("runId" = "$response.body#/runId")))),
        )),
        (status = 400, description = "The body is not JSON, or not an object; or a browser script (it runs in the page)", body = ErrorBody),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 403, description = "A cross-origin request, or a runner this server does not allow", body = ErrorBody),
        (status = 404, description = "No such script", body = ErrorBody),
        (status = 409, description = "The script is disabled, or `single` and already active", body = ErrorBody),
        (status = 413, description = "The input is over 1 MiB", body = ErrorBody),
        (status = 415, description = "A body not declared as JSON", body = ErrorBody),
        (status = 429, description = "Too many failed logins, or too many runs waiting", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Extension(user): Extension<AdminUser>,
    client: ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<RunStarted>), ApiError> {
    let input = parse_run_body(&headers, &body)?;
    let script = state.engine.definition_to_start(&id).await?;
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
            author: Author::admin(&user.0, client),
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(RunStarted { run_id })))
}

/// An empty body or `null`, or `{"input": …}` sent as JSON (a form or text/plain body is what a
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
    if value.is_null() {
        return Ok(None);
    }
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object like {\"input\": …}".into(),
        ));
    }
    let body: RunBody =
        serde_json::from_value(value).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(body.input)
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this script's runs; empty means every script.
    script_id: Option<String>,
    #[param(schema_with = run_statuses)]
    status: Option<String>,
    #[param(schema_with = run_triggers)]
    trigger: Option<String>,
    /// Only runs queued at or after this time; empty means no bound.
    #[param(schema_with = super::api_doc::blank_or_time)]
    from: Option<String>,
    /// Only runs queued before this time; empty means no bound.
    #[param(schema_with = super::api_doc::blank_or_time)]
    to: Option<String>,
    /// At most this many runs (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    #[param(schema_with = super::api_doc::blank_or_id)]
    before: Option<String>,
}

fn run_triggers() -> utoipa::openapi::schema::Object {
    blank_or(
        [Trigger::Manual, Trigger::Schedule, Trigger::Api].map(Trigger::as_str),
        "Only runs started this way; empty means every trigger.",
    )
}

/// A time filter as the run id bound it is; `None` when not given.
fn time_bound(field: &'static str, raw: Option<&str>) -> Result<Option<String>, ApiError> {
    Ok(super::extract::time_param(field, raw)?.map(|at| Run::first_id_at(at.timestamp_millis())))
}

fn run_statuses() -> utoipa::openapi::schema::Object {
    blank_or(
        RunStatus::ALL.map(RunStatus::as_str),
        "Only runs in this status; empty means every status.",
    )
}

/// A page of runs, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunList {
    pub runs: Vec<RunView>,
    /// Pass as `before` for the next page; null when no run is older.
    #[schema(required = true)]
    pub next_before: Option<String>,
}

/// Recent runs, newest first
#[utoipa::path(get, path = "/api/admin/scripts/runs", operation_id = "listRuns", tag = "runs",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of runs (without their output tails)", body = RunList),
        (status = 400, description = "A filter out of range or unknown", body = ErrorBody),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<RunList>, ApiError> {
    let status = q.status.filter(|s| !s.is_empty());
    if let Some(s) = &status {
        if RunStatus::parse(s).is_none() {
            return Err(crate::domain::ValidationError::new(
                "status",
                "must be one of: queued, running, succeeded, failed, canceled, timed_out, skipped",
            )
            .into());
        }
    }
    let trigger = q.trigger.filter(|t| !t.is_empty());
    if trigger
        .as_deref()
        .is_some_and(|t| Trigger::parse(t).is_none())
    {
        return Err(crate::domain::ValidationError::new(
            "trigger",
            "must be one of: manual, schedule, api",
        )
        .into());
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(
            crate::domain::ValidationError::new("limit", "must be between 1 and 200").into(),
        );
    }
    let from_id = time_bound("from", q.from.as_deref())?;
    let to_id = time_bound("to", q.to.as_deref())?;
    // The upper time bound and the page cursor are both "ids below": the smaller one holds.
    let cursor = super::extract::cursor_param("before", q.before.as_deref())?;
    let before = [cursor, to_id].into_iter().flatten().min();
    // One run more than asked tells whether there is a next page.
    let mut runs = state
        .store
        .list_runs(&RunFilter {
            script_id: q.script_id.filter(|s| !s.is_empty()),
            status,
            trigger,
            from_id,
            before,
            limit: limit + 1,
        })
        .await?;
    let next = if runs.len() as i64 > limit {
        runs.truncate(limit as usize);
        runs.last().map(|r| r.id.clone())
    } else {
        None
    };
    Ok(Json(RunList {
        runs: runs.iter().map(RunView::summary).collect(),
        next_before: next,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// How many hours back, counting the current one (default 24).
    #[param(minimum = 1, maximum = 168)]
    hours: Option<i64>,
}

/// Runs queued in one hour, by status.
#[derive(Serialize, ToSchema)]
pub struct HourCounts {
    /// The hour's start.
    #[schema(format = DateTime)]
    start: String,
    /// Runs by their status now (statuses with none are left out).
    counts: std::collections::BTreeMap<String, i64>,
}

/// What the dashboard shows of all runs.
#[derive(Serialize, ToSchema)]
pub struct RunStats {
    /// One entry per hour, oldest first, the current hour last; empty hours included.
    hours: Vec<HourCounts>,
    /// Runs running now, on every node.
    running: i64,
    /// Runs waiting in the queue now.
    queued: i64,
}

/// Run counts: per hour and status, and what is active now
#[utoipa::path(get, path = "/api/admin/scripts/runs/stats", operation_id = "runStats", tag = "runs",
    params(StatsQuery),
    responses(
        (status = 200, description = "The counts", body = RunStats),
        (status = 400, description = "`hours` out of range", body = ErrorBody),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn stats(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<Json<RunStats>, ApiError> {
    const HOUR_MS: i64 = 3_600_000;
    let hours = q.hours.unwrap_or(24);
    if !(1..=168).contains(&hours) {
        return Err(
            crate::domain::ValidationError::new("hours", "must be between 1 and 168").into(),
        );
    }
    let now_hour = chrono::Utc::now().timestamp_millis() / HOUR_MS;
    let first = now_hour - hours + 1;
    let counted = state
        .store
        .run_counts_by_hour(&Run::first_id_at(first * HOUR_MS))
        .await?;
    let (running, queued) = state.store.active_counts().await?;
    let hours = (first..=now_hour)
        .map(|hour| HourCounts {
            start: chrono::DateTime::from_timestamp_millis(hour * HOUR_MS)
                .map(super::views::time)
                .unwrap_or_default(),
            counts: counted
                .iter()
                .filter(|(h, _, _)| *h == hour)
                .map(|(_, status, n)| (status.clone(), *n))
                .collect(),
        })
        .collect();
    Ok(Json(RunStats {
        hours,
        running,
        queued,
    }))
}

/// A run's snapshot
#[utoipa::path(get, path = "/api/admin/scripts/runs/{runId}", operation_id = "getRun", tag = "runs",
    params(("runId" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run, with its output tail", body = RunView),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    let run = state.store.get_run(&run_id).await?;
    Ok(Json(RunView::full(&run)))
}

/// A cancel accepted: a queued run never starts; a running one is stopped (TERM, then KILL
/// after the grace period) by the node that runs it, and ends `canceled`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CancelAccepted {
    pub run_id: String,
    #[schema(value_type = bool, example = true)]
    pub canceling: bool,
}

/// Cancel a queued or running run
#[utoipa::path(post, path = "/api/admin/scripts/runs/{runId}/cancel", operation_id = "cancelRun", tag = "runs",
    params(("runId" = String, Path, description = "The run's id")),
    responses(
        (status = 202, description = "Canceling; the stream's `done` tells when it ended", body = CancelAccepted),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 403, description = "A cross-origin request", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run has already ended", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    Extension(user): Extension<AdminUser>,
    client: ClientAddr,
) -> Result<(StatusCode, Json<CancelAccepted>), ApiError> {
    state
        .engine
        .cancel(&run_id, &Author::admin(&user.0, client))
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(CancelAccepted {
            run_id,
            canceling: true,
        }),
    ))
}
