//! A run's stored log read in parts: the whole of it as a download, a page of lines before or
//! after a place in it (how the page scrolls back through a big log and jumps to a match), and
//! a search through it.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::ApiQuery;
use super::state::AppState;
use super::views;
use crate::domain::{LogLine, LogStream, ValidationError};
use crate::error::{ApiError, ErrorBody};

/// One stored line of a run's output.
#[derive(Serialize, ToSchema)]
#[schema(as = LogLine)]
pub struct LineView {
    /// The line's number in the run's log, from 1.
    #[schema(minimum = 1)]
    seq: i64,
    stream: LogStream,
    line: String,
    #[schema(format = DateTime)]
    ts: String,
}

impl From<LogLine> for LineView {
    fn from(l: LogLine) -> Self {
        Self {
            seq: l.seq,
            stream: l.stream,
            line: l.line,
            ts: views::time(l.ts),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LinesQuery {
    /// The lines after this seq (0, the default, starts at the beginning).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// Instead, the last lines before this seq; not with `after`.
    #[param(minimum = 1)]
    before: Option<i64>,
    /// At most this many lines (default 1000).
    #[param(minimum = 1, maximum = 5000)]
    limit: Option<i64>,
}

/// A page of a run's stored lines, in order.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogPage {
    lines: Vec<LineView>,
    /// Stored lines come before this page.
    has_before: bool,
    /// Stored lines come after this page (now: a running run may store more later).
    has_after: bool,
}

/// A page of the stored log
///
/// The stored lines after `after` or before `before`, in order; a page reading back through a
/// big log asks for the lines before the first one it shows.
#[utoipa::path(get, path = "/api/admin/scripts/runs/{runId}/lines", operation_id = "getRunLines",
    tag = "runs",
    params(("runId" = String, Path, description = "The run's id"), LinesQuery),
    responses(
        (status = 200, description = "The lines", body = LogPage),
        (status = 400, description = "`after`, `before` or `limit` out of range, or both `after` and `before`", body = ErrorBody),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn lines(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    ApiQuery(q): ApiQuery<LinesQuery>,
) -> Result<Json<LogPage>, ApiError> {
    let limit = q.limit.unwrap_or(1000);
    if !(1..=5000).contains(&limit) {
        return Err(ValidationError::new("limit", "must be between 1 and 5000").into());
    }
    if q.after.is_some_and(|a| a < 0) {
        return Err(ValidationError::new("after", "must be 0 or more").into());
    }
    if q.before.is_some_and(|b| b < 1) {
        return Err(ValidationError::new("before", "must be 1 or more").into());
    }
    state.store.get_run(&run_id).await?;
    let lines = match (q.after, q.before) {
        (Some(_), Some(_)) => {
            return Err(
                ValidationError::new("before", "give either after or before, not both").into(),
            )
        }
        (_, Some(before)) => state.store.read_log_before(&run_id, before, limit).await?,
        (after, None) => {
            state
                .store
                .read_log(&run_id, after.unwrap_or(0), limit)
                .await?
        }
    };
    let last = state.store.last_log_seq(&run_id).await?;
    let has_before = match lines.first() {
        Some(first) => first.seq > 1,
        // Nothing after `after` is no sign of anything before; nothing before `before` is
        // the start.
        None => q.before.is_none() && q.after.is_some_and(|a| a > 0) && last > 0,
    };
    let has_after = match lines.last() {
        Some(l) => l.seq < last,
        None => q.before.is_some_and(|b| b <= last),
    };
    Ok(Json(LogPage {
        lines: lines.into_iter().map(LineView::from).collect(),
        has_before,
        has_after,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// The text to find: a plain substring (not a pattern), any case.
    #[param(min_length = 1, max_length = 200)]
    q: String,
    /// Search the lines after this seq: 0 (the default) or the `next` of the previous answer.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// At most this many matches (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// What a search found.
#[derive(Serialize, ToSchema)]
pub struct LogSearchResult {
    /// The matching lines, in order.
    matches: Vec<LineView>,
    /// Pass as `after` to search on: the search stopped at `limit` matches or after reading a
    /// bounded number of lines. Null when it reached the log's end.
    #[schema(required = true)]
    next: Option<i64>,
}

/// Search the stored log
///
/// The stored lines containing `q`, ignoring case. One call reads at most 200 000 lines;
/// a bigger log is searched on with `after=<next>`.
#[utoipa::path(get, path = "/api/admin/scripts/runs/{runId}/log/search", operation_id = "searchRunLog",
    tag = "runs",
    params(("runId" = String, Path, description = "The run's id"), SearchQuery),
    responses(
        (status = 200, description = "The matches", body = LogSearchResult),
        (status = 400, description = "`q` empty or too long, or `after` or `limit` out of range", body = ErrorBody),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn search(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<LogSearchResult>, ApiError> {
    let len = q.q.chars().count();
    if !(1..=200).contains(&len) {
        return Err(ValidationError::new("q", "must be between 1 and 200 characters").into());
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ValidationError::new("limit", "must be between 1 and 500").into());
    }
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(ValidationError::new("after", "must be 0 or more").into());
    }
    state.store.get_run(&run_id).await?;
    let found =
        crate::store::search_log(state.store.as_ref(), &run_id, &q.q, after, limit as usize)
            .await?;
    Ok(Json(LogSearchResult {
        matches: found.matches.into_iter().map(LineView::from).collect(),
        next: found.next,
    }))
}

/// The stored log as a text download
///
/// Every stored line, in order, each ending with a newline; streamed page by page from the
/// store, so any size is fine.
#[utoipa::path(get, path = "/api/admin/scripts/runs/{runId}/log", operation_id = "getRunLog", tag = "runs",
    params(("runId" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The log, as an attachment named `run-<id>.log`",
            body = String, content_type = "text/plain"),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
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
            let page = match store.read_log_chunks(&id, after, 5000).await {
                Ok(chunks) if chunks.is_empty() => return None,
                Ok(chunks) => page_text(&chunks, after),
                Err(e) => Err(e),
            };
            match page {
                Ok((text, last)) => Some((Ok::<_, std::io::Error>(Bytes::from(text)), Some(last))),
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

/// The lines after `after` of stored chunks, each ending with a newline, and the last one's
/// number.
fn page_text(
    chunks: &[crate::store::StoredChunk],
    after: i64,
) -> Result<(String, i64), crate::store::StoreError> {
    let mut text = String::new();
    let mut last = after;
    for line in chunks.iter().flat_map(|c| c.lines(after)) {
        let line = line?;
        text.push_str(&line.text()?);
        text.push('\n');
        last = line.seq;
    }
    Ok((text, last))
}
