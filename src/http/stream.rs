//! Live output over Server-Sent Events (SPEC §4). Replays from the store after `since` (or
//! `Last-Event-ID`), then follows the hub, whichever node runs the run: lines of a run here
//! arrive with the event, lines of a run elsewhere are read from the store when the node feed
//! says they are stored. A subscriber that falls behind re-reads the store, and a slow re-read
//! covers a signal that never came. Events are framed here rather than by axum's `Sse` so that
//! a batch of lines goes out as one write instead of one per line.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use utoipa::{IntoParams, ToSchema};

use super::extract::ApiQuery;
use super::state::AppState;
use super::views::time;
use crate::domain::{LogLine, Run, RunOutcome, RunStatus};
use crate::engine::{HubEvent, Subscription};
use crate::error::{ApiError, ErrorBody};
use crate::store::{DynStore, StoreError, StoredLine};

const PAGE: i64 = 2000;
/// A quiet stream re-reads the store this often, in case a signal was lost.
const SAFETY_READ: Duration = Duration::from_secs(5);
const HEARTBEAT: Duration = Duration::from_secs(15);
/// Chunks buffered per client; a slow client holds back only its own stream.
const CLIENT_BUFFER: usize = 16;
/// Events are gathered up to this size before a write.
const CHUNK: usize = 32 * 1024;
/// A chunk's buffer: room for the chunk and the event that fills it, mostly without growing.
const CHUNK_ROOM: usize = CHUNK + CHUNK / 2;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Replay stored lines after this seq (0, the default, replays the whole log).
    /// `Last-Event-ID`, which browsers send on reconnect, takes precedence.
    #[param(minimum = 0)]
    since: Option<i64>,
    /// Replay only the last this-many stored lines (when neither `since` nor `Last-Event-ID`
    /// is given): a big log opens at its end; earlier lines stay in the log download.
    #[param(minimum = 1, maximum = 1000000)]
    tail: Option<i64>,
}

/// Live output over Server-Sent Events
///
/// Events, in order: `log` for each stored line after `since` (or `Last-Event-ID`), then for
/// each live one, with `id: <seq>` so a reconnect resumes without loss or repeat; `status`
/// when the run's status changes; one final `done`, after which the stream ends. Each event's
/// data is compact JSON on one `data:` line: `log` is an `SseLog`, `status` an `SseStatus`,
/// `done` an `SseDone`. Comment lines (`: ping`) keep an idle connection open, and
/// `retry: 1000` asks browsers to reconnect after a second. Any node serves any run's stream.
#[utoipa::path(get, path = "/api/admin/scripts/runs/{runId}/stream", operation_id = "streamRun",
    tag = "runs",
    params(
        ("runId" = String, Path, description = "The run's id"),
        StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, nullable = false,
            description = "The seq of the last event received; set by browsers on reconnect"),
    ),
    responses(
        (status = 200, description = "The event stream", body = String,
            content_type = "text/event-stream",
            example = "retry: 1000\n\nid: 1\nevent: log\ndata: {\"seq\":1,\"stream\":\"stdout\",\"line\":\"hello\",\"ts\":\"2026-11-25T09:14:00.031Z\"}\n\nevent: status\ndata: {\"status\":\"succeeded\",\"ts\":\"2026-11-25T09:14:00.040Z\"}\n\nevent: done\ndata: {\"status\":\"succeeded\",\"exitCode\":0,\"signal\":null,\"error\":null,\"ts\":\"2026-11-25T09:14:00.040Z\"}\n\n"),
        (status = 400, description = "`since` or `tail` out of range", body = ErrorBody),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn stream(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    ApiQuery(q): ApiQuery<StreamQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    if q.since.is_some_and(|s| s < 0) {
        return Err(crate::domain::ValidationError::new("since", "must be 0 or more").into());
    }
    if q.tail.is_some_and(|t| !(1..=1_000_000).contains(&t)) {
        return Err(
            crate::domain::ValidationError::new("tail", "must be between 1 and 1000000").into(),
        );
    }
    let since = match (last_event_id.or(q.since), q.tail) {
        (Some(since), _) => since.max(0),
        (None, Some(tail)) => (state.store.last_log_seq(&run_id).await? - tail).max(0),
        (None, None) => 0,
    };
    // Subscribe before the first read of the store, so nothing falls between the two.
    let live = state.engine.hub().subscribe(&run_id);
    // A run executing here that has stored nothing is all in `live`, subscribed first: there is
    // nothing to read, the run included. A run still queued has nothing stored either.
    let start = match state.engine.hub().unwritten_since(&run_id) {
        Some(started_at) => Start::Live {
            status: RunStatus::Running,
            at: started_at,
            nothing_stored: true,
        },
        None => {
            let run = state.store.get_run(&run_id).await?;
            if run.status.is_terminal() {
                Start::Ended(Box::new(run))
            } else {
                Start::Live {
                    status: run.status,
                    at: run.started_at.unwrap_or(run.queued_at),
                    nothing_stored: run.status == RunStatus::Queued,
                }
            }
        }
    };

    let store = state.store.clone();
    Ok(super::sse::response(
        state.closing.clone(),
        CLIENT_BUFFER,
        |tx| {
            Follower {
                store,
                run_id,
                last: since,
                tx,
                buf: Vec::new(),
                framer: LineFramer::default(),
                live,
                ahead: None,
            }
            .run(start)
        },
    ))
}

/// Where a stream begins, as first seen.
enum Start {
    /// The run as read once it had ended: as it will stay.
    Ended(Box<Run>),
    /// Not ended: its status, since when, and whether nothing of its log can be stored yet.
    Live {
        status: RunStatus,
        at: chrono::DateTime<chrono::Utc>,
        nothing_stored: bool,
    },
}

struct Follower {
    store: DynStore,
    run_id: String,
    last: i64,
    tx: mpsc::Sender<Bytes>,
    /// Events framed but not yet written.
    buf: Vec<u8>,
    framer: LineFramer,
    /// The run's events on this node, from before the first read of the store.
    live: Subscription,
    /// An event taken from `live` while catching up, handled next.
    ahead: Option<HubEvent>,
}

/// The client went away; stop working for it.
struct Gone;

impl Follower {
    /// Streams until the run ends or the client goes away. `start` was learned after `live`
    /// subscribed: a change since then is in `live`.
    ///
    /// This future is what an open stream holds while it waits, so the paths that read the
    /// store (catching up, the end) are boxed where they are awaited: inline, their state
    /// would be part of every stream's for its whole life.
    async fn run(mut self, start: Start) {
        let _ = self.begin(start).await;
    }

    async fn begin(&mut self, start: Start) -> Result<(), Gone> {
        // Browsers reconnect after 3 s by default; a second is plenty.
        self.buf.extend_from_slice(b"retry: 1000\n\n");
        let (status, at, nothing_stored) = match start {
            Start::Ended(run) => return Box::pin(self.finish(Some(run))).await,
            Start::Live {
                status,
                at,
                nothing_stored,
            } => (status, at, nothing_stored),
        };
        if !nothing_stored {
            Box::pin(self.catch_up(Join::Live)).await?;
        }
        self.status(status, at);
        self.flush().await?;
        self.follow().await
    }

    async fn follow(&mut self) -> Result<(), Gone> {
        let mut quiet = Duration::ZERO;
        loop {
            let next = match self.ahead.take() {
                Some(event) => Ok(Ok(event)),
                None => tokio::select! {
                    next = tokio::time::timeout(SAFETY_READ, self.live.recv()) => next,
                    // The client went away: stop now rather than at the next write.
                    _ = self.tx.closed() => return Err(Gone),
                },
            };
            let event = match next {
                Ok(event) => {
                    quiet = Duration::ZERO;
                    event
                }
                Err(_) => {
                    quiet += SAFETY_READ;
                    if quiet >= HEARTBEAT {
                        self.ping().await?;
                        quiet = Duration::ZERO;
                    }
                    if Box::pin(self.reread()).await? {
                        return Box::pin(self.finish(None)).await;
                    }
                    continue;
                }
            };
            match event {
                Ok(HubEvent::Lines(batch)) => {
                    let (Some(first), Some(last)) = (batch.lines.first(), batch.lines.last())
                    else {
                        continue;
                    };
                    if first.seq > self.last + 1 {
                        Box::pin(self.catch_up(Join::At(first.seq))).await?;
                    }
                    if first.seq == self.last + 1 {
                        // In step with the run: the batch goes out as framed once for every
                        // watcher here.
                        let framed = batch.encoded.get_or_init(|| frame_batch(&batch.lines));
                        self.flush().await?;
                        self.last = last.seq;
                        for chunk in framed {
                            self.send(chunk.clone()).await?;
                        }
                    } else {
                        for line in batch.lines.iter() {
                            if line.seq > self.last {
                                self.line(line).await?;
                            }
                        }
                        self.flush().await?;
                    }
                }
                Ok(HubEvent::Stored(to_seq)) => {
                    if to_seq > self.last {
                        Box::pin(self.catch_up(Join::Live)).await?;
                    }
                }
                Ok(HubEvent::Ended(outcome, at)) => {
                    return Box::pin(self.end(&outcome, at, Some(at))).await
                }
                Ok(HubEvent::Status(status, _)) if status.is_terminal() => {
                    return Box::pin(self.finish(None)).await;
                }
                Ok(HubEvent::Status(status, ts)) => {
                    self.status(status, ts);
                    self.flush().await?;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if Box::pin(self.reread()).await? {
                        return Box::pin(self.finish(None)).await;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {
                    if Box::pin(self.reread()).await? {
                        return Box::pin(self.finish(None)).await;
                    }
                    tokio::time::sleep(SAFETY_READ).await;
                }
            }
        }
    }

    /// Catches up from the store; true once the run has ended.
    async fn reread(&mut self) -> Result<bool, Gone> {
        self.catch_up(Join::Live).await?;
        Ok(self.load_run().await?.status.is_terminal())
    }

    /// Sends the rest of the stored log, the final status and `done`, as of the run read once
    /// it had ended (`ended`, or read now).
    async fn finish(&mut self, ended: Option<Box<Run>>) -> Result<(), Gone> {
        self.catch_up(Join::Never).await?;
        let run = match ended {
            Some(run) => *run,
            None => self.load_run().await?,
        };
        let outcome = RunOutcome {
            status: run.status,
            exit_code: run.exit_code,
            signal: run.signal,
            error: run.error,
        };
        let status_at = run.finished_at.unwrap_or(run.queued_at);
        self.end(&outcome, status_at, run.finished_at).await
    }

    /// Sends the final status (as of `status_at`) and `done`.
    async fn end(
        &mut self,
        outcome: &RunOutcome,
        status_at: chrono::DateTime<chrono::Utc>,
        finished_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), Gone> {
        self.status(outcome.status, status_at);
        let data = DoneData {
            status: outcome.status.as_str(),
            exit_code: outcome.exit_code,
            signal: outcome.signal,
            error: outcome.error.as_deref(),
            ts: finished_at.map(time),
        };
        self.event("done", &to_json(&data));
        self.flush().await
    }

    /// Sends what the store holds after the last line sent, to its end or until live events
    /// go on from there (`join`).
    async fn catch_up(&mut self, join: Join) -> Result<(), Gone> {
        loop {
            let lines = match self
                .store
                .read_log_chunks(&self.run_id, self.last, PAGE)
                .await
            {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(run_id = %self.run_id, error = %e, "could not read the log");
                    return Err(Gone);
                }
            };
            let from = self.last;
            let full = lines.iter().map(|c| c.lines_after(from)).sum::<i64>() >= PAGE;
            for line in lines.iter().flat_map(|c| c.lines(from)) {
                let line = match line {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(run_id = %self.run_id, error = %e, "could not read the log");
                        return Err(Gone);
                    }
                };
                self.stored_line(line).await?;
            }
            self.flush().await?;
            let joined = match join {
                Join::Never => false,
                Join::At(seq) => self.last + 1 >= seq,
                Join::Live => self.joins_live(),
            };
            if !full || joined {
                return Ok(());
            }
        }
    }

    /// Whether the next live batch goes on from the last line sent. A run that prints faster
    /// than the store is read would otherwise be followed from the store to its very end,
    /// each line decoded again, while every watcher in step shares one framing of the batch.
    fn joins_live(&mut self) -> bool {
        loop {
            if self.ahead.is_none() {
                match self.live.try_recv() {
                    Some(event) => self.ahead = Some(event),
                    None => return false,
                }
            }
            let Some(HubEvent::Lines(batch)) = &self.ahead else {
                // A change of status: handled once the store is read to its end.
                return false;
            };
            match (batch.lines.first(), batch.lines.last()) {
                (Some(first), Some(last)) if last.seq > self.last => {
                    return first.seq <= self.last + 1
                }
                // Already read from the store.
                _ => self.ahead = None,
            }
        }
    }

    async fn load_run(&self) -> Result<Run, Gone> {
        match self.store.get_run(&self.run_id).await {
            Ok(r) => Ok(r),
            Err(StoreError::NotFound(_)) => Err(Gone),
            Err(e) => {
                tracing::warn!(run_id = %self.run_id, error = %e, "could not read the run");
                Err(Gone)
            }
        }
    }

    /// Frames a `log` event.
    async fn line(&mut self, line: &LogLine) -> Result<(), Gone> {
        self.reserve();
        self.framer.frame(&mut self.buf, line);
        self.framed(line.seq).await
    }

    /// Frames a `log` event for a line read from the store.
    async fn stored_line(&mut self, line: StoredLine<'_>) -> Result<(), Gone> {
        self.reserve();
        self.framer.frame_stored(&mut self.buf, line);
        self.framed(line.seq).await
    }

    /// Room for a whole chunk at once rather than growing to it line by line; flushing hands
    /// the buffer over, so an idle stream holds none.
    fn reserve(&mut self) {
        if self.buf.capacity() == 0 {
            self.buf.reserve(CHUNK_ROOM);
        }
    }

    async fn framed(&mut self, seq: i64) -> Result<(), Gone> {
        self.last = seq;
        if self.buf.len() >= CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    fn status(&mut self, status: RunStatus, ts: chrono::DateTime<chrono::Utc>) {
        let data = StatusData {
            status: status.as_str(),
            ts: time(ts),
        };
        self.event("status", &to_json(&data));
    }

    /// Frames one event. The data is compact JSON, which never contains a newline.
    fn event(&mut self, name: &str, data: &str) {
        use std::io::Write;
        let _ = write!(self.buf, "event: {name}\ndata: {data}\n\n");
    }

    async fn ping(&mut self) -> Result<(), Gone> {
        self.buf.extend_from_slice(b": ping\n\n");
        self.flush().await
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.send(chunk).await
    }

    async fn send(&mut self, chunk: Bytes) -> Result<(), Gone> {
        self.tx.send(chunk).await.map_err(|_| Gone)
    }
}

/// How far a catch-up from the store goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Join {
    /// To the store's end: the run has ended.
    Never,
    /// Until the next live batch follows on, or to the store's end.
    Live,
    /// Until the line with this seq, the first of a live batch in hand, or to the store's end.
    At(i64),
}

/// Frames `log` events, whose data is an `SseLog`. This runs once per line of output, so
/// it writes straight into the buffer and keeps the last line's time as formatted: lines of
/// one burst share their millisecond.
#[derive(Default)]
struct LineFramer {
    last_ts: Option<(i64, String)>,
}

impl LineFramer {
    fn frame(&mut self, buf: &mut Vec<u8>, line: &LogLine) {
        self.frame_with(
            buf,
            line.seq,
            line.stream,
            line.ts.timestamp_millis(),
            |buf| {
                let _ = serde_json::to_writer(buf, line.line.as_str());
            },
        );
    }

    /// A line read from the store, its text sent on as the JSON string it is stored as.
    fn frame_stored(&mut self, buf: &mut Vec<u8>, line: StoredLine<'_>) {
        self.frame_with(buf, line.seq, line.stream, line.ts_ms, |buf| {
            buf.extend_from_slice(line.text_json.as_bytes());
        });
    }

    fn frame_with(
        &mut self,
        buf: &mut Vec<u8>,
        seq: i64,
        stream: crate::domain::LogStream,
        ts_ms: i64,
        text: impl FnOnce(&mut Vec<u8>),
    ) {
        if self.last_ts.as_ref().is_none_or(|(ms, _)| *ms != ts_ms) {
            let at = chrono::DateTime::from_timestamp_millis(ts_ms).unwrap_or_default();
            self.last_ts = Some((ts_ms, time(at)));
        }
        let ts = self.last_ts.as_ref().map_or("", |(_, text)| text.as_str());
        let mut seq_buf = itoa::Buffer::new();
        let seq_text = seq_buf.format(seq);
        buf.extend_from_slice(b"id: ");
        buf.extend_from_slice(seq_text.as_bytes());
        buf.extend_from_slice(b"\nevent: log\ndata: ");
        write_log_json(buf, seq_text, stream, ts, text);
        buf.extend_from_slice(b"\n\n");
    }
}

/// A batch of lines framed, in chunks of about `CHUNK` bytes.
fn frame_batch(lines: &[LogLine]) -> Vec<Bytes> {
    let mut chunks = Vec::new();
    let mut buf = Vec::new();
    let mut framer = LineFramer::default();
    for line in lines {
        if buf.capacity() == 0 {
            buf.reserve(CHUNK_ROOM);
        }
        framer.frame(&mut buf, line);
        if buf.len() >= CHUNK {
            chunks.push(Bytes::from(std::mem::take(&mut buf)));
        }
    }
    if !buf.is_empty() {
        chunks.push(Bytes::from(buf));
    }
    chunks
}

/// The data of a `log` event: one line of output.
#[derive(Serialize, ToSchema)]
#[schema(as = SseLog)]
pub struct LogData<'a> {
    /// The line's number in the run's log, from 1; also the event's `id`.
    #[schema(minimum = 1)]
    seq: i64,
    stream: crate::domain::LogStream,
    /// The line without its newline; a line over 64 KiB is split.
    #[schema(value_type = String)]
    line: &'a str,
    #[schema(value_type = String, format = DateTime)]
    ts: &'a str,
}

impl LogData<'_> {
    /// Writes the same JSON as its `Serialize` straight into `buf`.
    #[cfg(test)]
    fn write_json(&self, buf: &mut Vec<u8>) {
        write_log_json(
            buf,
            itoa::Buffer::new().format(self.seq),
            self.stream,
            self.ts,
            |buf| {
                let _ = serde_json::to_writer(buf, self.line);
            },
        );
    }
}

/// Writes a `LogData`'s JSON, as its `Serialize` would, with the line's text written by `text`
/// as a JSON string: this runs once per line of output, and serde's struct path would escape
/// each key and the fixed strings too. Only the line's text can hold anything to escape.
fn write_log_json(
    buf: &mut Vec<u8>,
    seq: &str,
    stream: crate::domain::LogStream,
    ts: &str,
    text: impl FnOnce(&mut Vec<u8>),
) {
    buf.extend_from_slice(b"{\"seq\":");
    buf.extend_from_slice(seq.as_bytes());
    buf.extend_from_slice(b",\"stream\":\"");
    buf.extend_from_slice(stream.as_str().as_bytes());
    buf.extend_from_slice(b"\",\"line\":");
    text(buf);
    buf.extend_from_slice(b",\"ts\":\"");
    buf.extend_from_slice(ts.as_bytes());
    buf.extend_from_slice(b"\"}");
}

/// The data of a `status` event.
#[derive(Serialize, ToSchema)]
#[schema(as = SseStatus)]
pub struct StatusData {
    #[schema(value_type = RunStatus)]
    status: &'static str,
    #[schema(format = DateTime)]
    ts: String,
}

/// The data of the final `done` event.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SseDone)]
pub struct DoneData<'a> {
    #[schema(value_type = RunStatus)]
    status: &'static str,
    #[schema(required = true)]
    exit_code: Option<i32>,
    #[schema(required = true)]
    signal: Option<i32>,
    #[schema(required = true, value_type = Option<String>)]
    error: Option<&'a str>,
    /// When it ended; null for a run that ended without starting.
    #[schema(required = true, format = DateTime)]
    ts: Option<String>,
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::LogStream;
    use crate::engine::Hub;

    fn lines(seqs: std::ops::RangeInclusive<i64>, source: &str) -> Vec<LogLine> {
        seqs.map(|seq| LogLine {
            seq,
            stream: LogStream::Stdout,
            line: format!("{source} {seq}"),
            ts: chrono::Utc::now(),
        })
        .collect()
    }

    /// A store whose run `r` holds the given lines, one chunk per range.
    async fn store_with(dir: &std::path::Path, chunks: &[Vec<LogLine>]) -> DynStore {
        let rows: Vec<_> = chunks
            .iter()
            .map(|c| {
                let text = crate::store::logs::encode_chunk(c);
                (c[0].seq, c[c.len() - 1].seq, text)
            })
            .collect();
        store_with_rows(dir, &rows).await
    }

    /// A store whose run `r` holds these chunk rows (first seq, last seq, lines) as they are.
    async fn store_with_rows(dir: &std::path::Path, rows: &[(i64, i64, String)]) -> DynStore {
        let url = format!("sqlite://{}", dir.join("t.db").display());
        let key = crate::secrets::MasterKey::generate();
        let codec = crate::store::EnvCodec::new(crate::secrets::SecretBox::new(&key));
        let store = crate::store::connect(&url, codec).await.unwrap();
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        for (first, last, text) in rows {
            sqlx::query(
                "INSERT INTO run_log_chunks (run_id, first_seq, last_seq, lines) \
                 VALUES ('r', $1, $2, $3)",
            )
            .bind(first)
            .bind(last)
            .bind(text)
            .execute(&pool)
            .await
            .unwrap();
        }
        store
    }

    /// Follows run `r` from its start while it runs, given the events already published to
    /// its watchers; returns the `log` lines sent (`"<seq> <text>"`) and whether `done` came.
    async fn follow(store: DynStore, publish: Vec<HubEvent>) -> (Vec<String>, bool) {
        let hub = Hub::default();
        let live = hub.subscribe("r");
        for event in publish {
            hub.publish("r", event);
        }
        let (tx, mut rx) = mpsc::channel(1024);
        let follower = Follower {
            store,
            run_id: "r".into(),
            last: 0,
            tx,
            buf: Vec::new(),
            framer: LineFramer::default(),
            live,
            ahead: None,
        };
        let start = Start::Live {
            status: RunStatus::Running,
            at: chrono::Utc::now(),
            nothing_stored: false,
        };
        let followed = tokio::time::timeout(Duration::from_secs(10), follower.run(start));
        assert!(followed.await.is_ok(), "the stream did not end");
        let mut text = String::new();
        while let Ok(chunk) = rx.try_recv() {
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        let sent = text
            .split("\n\n")
            .filter_map(|event| event.split_once("event: log\ndata: "))
            .map(|(_, data)| {
                let v: serde_json::Value = serde_json::from_str(data).unwrap();
                format!("{} {}", v["seq"], v["line"].as_str().unwrap())
            })
            .collect();
        (sent, text.contains("event: done\n"))
    }

    /// Lines 1 to `last` were sent once each, in order: up to `stored_to` as read from the
    /// store, the rest from the live batches.
    fn assert_stored_then_live(sent: &[String], stored_to: i64, last: i64) {
        let expected: Vec<String> = (1..=last)
            .map(|seq| {
                let source = if seq <= stored_to { "stored" } else { "live" };
                format!("{seq} {source} {seq}")
            })
            .collect();
        assert_eq!(sent.len(), expected.len());
        assert!(
            sent == expected,
            "first differing line {:?}",
            sent.iter().zip(&expected).find(|(a, b)| a != b)
        );
    }

    fn ended() -> HubEvent {
        let outcome = RunOutcome {
            status: RunStatus::Succeeded,
            exit_code: Some(0),
            signal: None,
            error: None,
        };
        HubEvent::Ended(std::sync::Arc::new(outcome), chrono::Utc::now())
    }

    #[tokio::test]
    async fn a_stream_behind_a_busy_run_goes_on_live_once_its_next_batch_follows_on() {
        let dir = tempfile::tempdir().unwrap();
        // Four batches stored; the last two are still in the live channel, as they are for a
        // watcher that subscribed while the run was printing. The store's copies say so.
        let stored: Vec<_> = [1..=1000, 1001..=2000, 2001..=3000, 3001..=4000]
            .into_iter()
            .map(|r| lines(r, "stored"))
            .collect();
        let store = store_with(dir.path(), &stored).await;
        let publish = vec![
            HubEvent::Lines(crate::engine::LiveLines::new(lines(2001..=3000, "live"))),
            HubEvent::Lines(crate::engine::LiveLines::new(lines(3001..=4000, "live"))),
            ended(),
        ];
        let (sent, done) = follow(store, publish).await;
        // A page from the store, then the live batches.
        assert_stored_then_live(&sent, PAGE, 4000);
        assert!(done);
    }

    #[tokio::test]
    async fn a_stream_that_lagged_behind_the_live_batches_reads_the_store_up_to_the_oldest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ranges = [
            1..=1000,
            1001..=2000,
            2001..=3000,
            3001..=4000,
            4001..=5000,
            5001..=6000,
        ];
        let stored: Vec<_> = ranges.iter().map(|r| lines(r.clone(), "stored")).collect();
        let store = store_with(dir.path(), &stored).await;
        // Seven events for a channel that keeps the last four: the first three are lost.
        let publish = ranges
            .iter()
            .map(|r| HubEvent::Lines(crate::engine::LiveLines::new(lines(r.clone(), "live"))))
            .chain([ended()])
            .collect();
        let (sent, done) = follow(store, publish).await;
        // Two pages from the store reach 4000, where the oldest batch kept ends.
        assert_stored_then_live(&sent, 2 * PAGE, 6000);
        assert!(done);
    }

    #[tokio::test]
    async fn a_chunk_holding_fewer_lines_than_its_range_ends_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let ten = crate::store::logs::encode_chunk(&lines(1..=10, "stored"));
        let store = store_with_rows(dir.path(), &[(1, 5000, ten)]).await;
        // Read again and again from line 10 on, it would never end.
        let (sent, done) = follow(store, vec![ended()]).await;
        assert!(sent.is_empty() && !done, "{} lines sent", sent.len());
    }

    #[tokio::test]
    async fn a_live_batch_past_what_the_store_holds_is_sent_after_the_store_is_read() {
        let dir = tempfile::tempdir().unwrap();
        // As past the log cap: later lines go to watchers but not to the store.
        let store = store_with(dir.path(), &[lines(1..=2500, "stored")]).await;
        let publish = vec![
            HubEvent::Lines(crate::engine::LiveLines::new(lines(2600..=2700, "live"))),
            ended(),
        ];
        let (sent, done) = follow(store, publish).await;
        let expected: Vec<String> = (1..=2500)
            .map(|seq| format!("{seq} stored {seq}"))
            .chain((2600..=2700).map(|seq| format!("{seq} live {seq}")))
            .collect();
        assert!(sent == expected, "{} lines sent", sent.len());
        assert!(done);
    }

    #[test]
    fn a_line_read_from_the_store_is_framed_as_it_was_live() {
        let texts = [
            "plain",
            "",
            "quotes \" and \\ backslashes / slash",
            "control \u{1}\u{7f} tab\t and \r",
            "unicode: Größe ✓ \u{1F600} \u{2028}",
        ];
        let lines: Vec<LogLine> = texts
            .iter()
            .zip(1..)
            .map(|(text, seq)| LogLine {
                seq,
                stream: if seq % 2 == 0 {
                    LogStream::Stderr
                } else {
                    LogStream::Stdout
                },
                line: text.to_string(),
                ts: chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + seq / 2).unwrap(),
            })
            .collect();
        let chunk = crate::store::StoredChunk {
            first_seq: 1,
            last_seq: lines.len() as i64,
            text: crate::store::logs::encode_chunk(&lines),
        };
        let (mut live, mut stored) = (Vec::new(), Vec::new());
        let (mut live_framer, mut stored_framer) = (LineFramer::default(), LineFramer::default());
        for line in &lines {
            live_framer.frame(&mut live, line);
        }
        for line in chunk.lines(0) {
            stored_framer.frame_stored(&mut stored, line.unwrap());
        }
        assert_eq!(
            String::from_utf8(stored).unwrap(),
            String::from_utf8(live).unwrap()
        );
    }

    #[test]
    fn a_line_stored_with_another_jsons_escapes_is_sent_as_its_text() {
        // As the migration to chunks wrote them, with PostgreSQL's json_build_array.
        let chunk = crate::store::StoredChunk {
            first_seq: 1,
            last_seq: 1,
            text: r#"[[2, 1700000000123, "a\/b \u0001 \"q\" \u00e9"]]"#.to_string(),
        };
        let mut framed = Vec::new();
        for line in chunk.lines(0) {
            LineFramer::default().frame_stored(&mut framed, line.unwrap());
        }
        let framed = String::from_utf8(framed).unwrap();
        let data = framed
            .split_once("data: ")
            .and_then(|(_, rest)| rest.strip_suffix("\n\n"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["line"], "a/b \u{1} \"q\" é");
        assert_eq!(v["stream"], "stderr");
        assert_eq!(v["ts"], "2023-11-14T22:13:20.123Z");
        assert!(framed.starts_with("id: 1\nevent: log\n"));
    }

    #[test]
    fn a_log_event_is_written_as_its_schema_serializes_it() {
        let ts = time(chrono::Utc::now());
        for (stream, line) in [
            (LogStream::Stdout, "plain"),
            (LogStream::Stderr, ""),
            (LogStream::Stdout, "quotes \" and \\ backslashes"),
            (LogStream::Stderr, "control \u{1}\u{7f} tab\t and \r"),
            (LogStream::Stdout, "unicode: Größe ✓ \u{1F600} \u{2028}"),
        ] {
            let data = LogData {
                seq: 9_007_199_254_740_993,
                stream,
                line,
                ts: &ts,
            };
            let mut written = Vec::new();
            data.write_json(&mut written);
            assert_eq!(
                String::from_utf8(written).unwrap(),
                serde_json::to_string(&data).unwrap()
            );
        }
    }
}
