//! A run's stored output. Appends are fenced: only the process holding the run's lease may
//! add lines, so a node that lost its run cannot write into it afterwards.

use async_trait::async_trait;
use std::borrow::Cow;

use super::{StoreError, StoreResult};
use crate::domain::{LogLine, LogStream};

/// How many chunks one query fetches: a chunk holds up to a few thousand lines, and a read
/// usually wants a page of about that many.
pub const CHUNKS_PER_READ: i64 = 4;
/// The most chunks one query of a long read asks for.
pub const MAX_CHUNKS_PER_READ: i64 = 512;

#[async_trait]
pub trait LogStore: Send + Sync {
    /// Appends lines if `lease` still holds the running run; false, with nothing written,
    /// when it does not.
    async fn append_log(&self, run_id: &str, lease: &str, lines: &[LogLine]) -> StoreResult<bool>;
    /// Lines with `seq > after_seq`, in order, at most `limit`.
    async fn read_log(&self, run_id: &str, after_seq: i64, limit: i64)
        -> StoreResult<Vec<LogLine>>;
    /// The stored chunks holding the lines with `seq > after_seq`, in order, as stored: at
    /// least `min_lines` such lines when that many are stored, and at most a chunk more. For
    /// readers that go through the lines once and on from the last they got (a stream, a
    /// download, a search), so that no chunk is read twice and no line is decoded for nothing.
    async fn read_log_chunks(
        &self,
        run_id: &str,
        after_seq: i64,
        min_lines: i64,
    ) -> StoreResult<Vec<StoredChunk>>;
    /// Lines with `seq < before_seq`, in order, at most `limit`: the last ones before it.
    async fn read_log_before(
        &self,
        run_id: &str,
        before_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<LogLine>>;
    /// The number of the run's last stored line (0 when none is stored).
    async fn last_log_seq(&self, run_id: &str) -> StoreResult<i64>;
    /// Saves the output tail and the log's size so far of a run `lease` holds; false when it
    /// does not.
    async fn update_tail(
        &self,
        run_id: &str,
        lease: &str,
        tail: &str,
        bytes: i64,
    ) -> StoreResult<bool>;
    /// Records the output tail, size and cut of a run that ended without its node (failed at
    /// its node's restart, or by another node after its lease ran out), read back from its
    /// stored log. A run not ended is left alone.
    async fn settle_log(
        &self,
        run_id: &str,
        tail: &str,
        bytes: i64,
        truncated: bool,
    ) -> StoreResult<()>;
}

/// Stores a batch of consecutive lines in one statement, if the lease still holds: one round
/// trip instead of four (`BEGIN`, a lock on the run row, the insert, `COMMIT`). The run row
/// the lease check reads is locked with `lock` until the statement commits, so a node ending
/// the run meanwhile waits for the batch; and a batch that meets an ending in progress waits
/// for it and, seeing the run ended, stores nothing (PostgreSQL checks the locked row again
/// once the other transaction commits). SQLite, with one writer at a time, needs no clause.
/// A chunk already stored (a retry after a commit whose answer was lost) inserts nothing,
/// like a lost lease: the caller tells them apart.
pub fn append_sql(lock: &str) -> String {
    format!(
        "INSERT INTO run_log_chunks (run_id, first_seq, last_seq, lines) \
         SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM runs WHERE id = $1 AND owner = $5 \
         AND status = 'running'{lock}) ON CONFLICT (run_id, last_seq) DO NOTHING"
    )
}

/// `$append_lock`: how the lease check locks the run row (see `append_sql`).
macro_rules! impl_log_store {
    ($store:ty, $db:ty, $append_lock:expr) => {
        impl $store {
            /// The chunks holding the lines with `seq > after_seq`, until they hold at least
            /// `min_lines` of them or the log ends; the first query asks for `first_batch`.
            async fn fetch_chunks(
                &self,
                run_id: &str,
                after_seq: i64,
                min_lines: i64,
                first_batch: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::StoredChunk>> {
                let mut out = Vec::new();
                let mut lines = 0;
                let mut after = after_seq;
                // A quiet script stores small chunks (a line or two each): the next query asks
                // for as many chunks as the lines still wanted need at the size seen so far,
                // so a long read of small chunks takes a few queries, and one of big chunks
                // fetches hardly more than it returns.
                let mut batch = first_batch;
                while lines < min_lines {
                    let before = lines;
                    let chunks: Vec<(i64, i64, String)> = sqlx::query_as(
                        "SELECT first_seq, last_seq, lines FROM run_log_chunks \
                         WHERE run_id = $1 AND last_seq > $2 ORDER BY last_seq LIMIT $3",
                    )
                    .bind(run_id)
                    .bind(after)
                    .bind(batch)
                    .fetch_all(&self.pool)
                    .await?;
                    let fetched = chunks.len() as i64;
                    for (first_seq, last_seq, text) in chunks {
                        lines += last_seq - first_seq.max(after_seq + 1) + 1;
                        after = last_seq;
                        out.push($crate::store::StoredChunk {
                            first_seq,
                            last_seq,
                            text,
                        });
                        if lines >= min_lines {
                            break;
                        }
                    }
                    if fetched < batch {
                        break;
                    }
                    let per_chunk = ((lines - before) / fetched).max(1);
                    let wanted = (min_lines - lines).max(0) / per_chunk + 1;
                    batch = wanted.clamp(1, $crate::store::logs::MAX_CHUNKS_PER_READ);
                }
                Ok(out)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::LogStore for $store {
            async fn append_log(
                &self,
                run_id: &str,
                lease: &str,
                lines: &[$crate::domain::LogLine],
            ) -> $crate::store::StoreResult<bool> {
                let consecutive = match (lines.first(), lines.last()) {
                    (Some(first), Some(last)) => {
                        Some((first.seq, last.seq)).filter(|(f, l)| l - f + 1 == lines.len() as i64)
                    }
                    _ => None,
                };
                if let Some((first, last)) = consecutive {
                    // Every batch of output passes here: its statement is put together once.
                    static SQL: std::sync::LazyLock<String> =
                        std::sync::LazyLock::new(|| $crate::store::logs::append_sql($append_lock));
                    let stored = sqlx::query(SQL.as_str())
                        .bind(run_id)
                        .bind(first)
                        .bind(last)
                        .bind($crate::store::logs::encode_chunk(lines))
                        .bind(lease)
                        .execute(&self.pool)
                        .await?;
                    if stored.rows_affected() == 1 {
                        return Ok(true);
                    }
                    let (held,): (bool,) = sqlx::query_as(
                        "SELECT EXISTS (SELECT 1 FROM runs WHERE id = $1 AND owner = $2 \
                         AND status = 'running')",
                    )
                    .bind(run_id)
                    .bind(lease)
                    .fetch_one(&self.pool)
                    .await?;
                    return Ok(held);
                }
                let mut tx = self.pool.begin().await?;
                // Writing the run row first locks it until commit, so a node expiring the
                // lease meanwhile waits for this batch, and no batch lands after it.
                let held = sqlx::query(
                    "UPDATE runs SET owner = owner WHERE id = $1 AND owner = $2 \
                     AND status = 'running'",
                )
                .bind(run_id)
                .bind(lease)
                .execute(&mut *tx)
                .await?;
                if held.rows_affected() == 0 {
                    return Ok(false);
                }
                // One row per run of consecutive numbers: a chunk's lines are numbered from
                // its first seq (the log-cap marker comes after a gap).
                for chunk in lines.chunk_by(|a, b| b.seq == a.seq + 1) {
                    // `chunk_by` yields no empty slice.
                    let (first, last) = (&chunk[0], &chunk[chunk.len() - 1]);
                    sqlx::query(
                        "INSERT INTO run_log_chunks (run_id, first_seq, last_seq, lines) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (run_id, last_seq) DO NOTHING",
                    )
                    .bind(run_id)
                    .bind(first.seq)
                    .bind(last.seq)
                    .bind($crate::store::logs::encode_chunk(chunk))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn last_log_seq(&self, run_id: &str) -> $crate::store::StoreResult<i64> {
                // The key (run_id, last_seq) answers this from the index alone.
                let (last,): (Option<i64>,) =
                    sqlx::query_as("SELECT MAX(last_seq) FROM run_log_chunks WHERE run_id = $1")
                        .bind(run_id)
                        .fetch_one(&self.pool)
                        .await?;
                Ok(last.unwrap_or(0))
            }

            async fn read_log(
                &self,
                run_id: &str,
                after_seq: i64,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::LogLine>> {
                let chunks = self
                    .fetch_chunks(run_id, after_seq, limit, $crate::store::logs::CHUNKS_PER_READ)
                    .await?;
                let limit = usize::try_from(limit).unwrap_or(0);
                let mut out = Vec::new();
                for chunk in &chunks {
                    $crate::store::logs::decode_chunk(
                        chunk.first_seq,
                        chunk.last_seq,
                        &chunk.text,
                        after_seq,
                        limit,
                        &mut out,
                    )?;
                }
                Ok(out)
            }

            async fn read_log_chunks(
                &self,
                run_id: &str,
                after_seq: i64,
                min_lines: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::StoredChunk>> {
                self.fetch_chunks(run_id, after_seq, min_lines, 1).await
            }

            async fn read_log_before(
                &self,
                run_id: &str,
                before_seq: i64,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::LogLine>> {
                let limit = usize::try_from(limit).unwrap_or(0);
                // Chunk by chunk from the end backwards, then put back in order.
                let mut pages: Vec<Vec<$crate::domain::LogLine>> = Vec::new();
                let mut got = 0;
                let mut below = before_seq;
                while got < limit {
                    let chunks: Vec<(i64, i64, String)> = sqlx::query_as(
                        "SELECT first_seq, last_seq, lines FROM run_log_chunks \
                         WHERE run_id = $1 AND first_seq < $2 ORDER BY last_seq DESC LIMIT $3",
                    )
                    .bind(run_id)
                    .bind(below)
                    .bind($crate::store::logs::CHUNKS_PER_READ)
                    .fetch_all(&self.pool)
                    .await?;
                    let fetched = chunks.len() as i64;
                    for (first, last, text) in chunks {
                        let mut lines = Vec::new();
                        $crate::store::logs::decode_chunk(
                            first,
                            last,
                            &text,
                            0,
                            usize::MAX,
                            &mut lines,
                        )?;
                        lines.retain(|l| l.seq < before_seq);
                        let take = lines.len().min(limit - got);
                        lines.drain(..lines.len() - take);
                        got += take;
                        pages.push(lines);
                        below = first;
                        if got >= limit {
                            break;
                        }
                    }
                    if fetched < $crate::store::logs::CHUNKS_PER_READ {
                        break;
                    }
                }
                pages.reverse();
                Ok(pages.concat())
            }

            async fn update_tail(
                &self,
                run_id: &str,
                lease: &str,
                tail: &str,
                bytes: i64,
            ) -> $crate::store::StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE runs SET output_tail = $3, log_bytes = $4 WHERE id = $1 \
                     AND owner = $2 AND status = 'running'",
                )
                .bind(run_id)
                .bind(lease)
                .bind(tail)
                .bind(bytes)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn settle_log(
                &self,
                run_id: &str,
                tail: &str,
                bytes: i64,
                truncated: bool,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "UPDATE runs SET output_tail = $2, log_bytes = $3, log_truncated = $4 \
                     WHERE id = $1 AND status NOT IN ('queued', 'running')",
                )
                .bind(run_id)
                .bind(tail)
                .bind(bytes)
                .bind(truncated)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_log_store;

/// How many stored lines one search call reads at most: a search through a huge log goes on
/// in further calls instead of holding one request (and a database connection) for long.
pub const SEARCH_SCAN_LINES: i64 = 200_000;

/// What one search call found.
pub struct LogSearch {
    pub matches: Vec<LogLine>,
    /// Where to go on from (as `after_seq`) when the scan stopped before the log's end.
    pub next: Option<i64>,
}

/// The stored lines after `after_seq` that contain `needle`, ignoring case, at most `limit`;
/// reads at most [`SEARCH_SCAN_LINES`] lines. A plain substring, never a pattern, so no
/// search costs more than reading the lines.
pub async fn search_log<S: LogStore + ?Sized>(
    store: &S,
    run_id: &str,
    needle: &str,
    after_seq: i64,
    limit: usize,
) -> StoreResult<LogSearch> {
    const PAGE: i64 = 5000;
    let needle = needle.to_lowercase();
    let mut matches = Vec::new();
    let mut after = after_seq;
    let mut scanned = 0;
    loop {
        let page = store.read_log_chunks(run_id, after, PAGE).await?;
        let full = page.iter().map(|c| c.lines_after(after)).sum::<i64>() >= PAGE;
        let from = after;
        for line in page.iter().flat_map(|c| c.lines(from)) {
            let line = line?;
            after = line.seq;
            scanned += 1;
            let text = line.text()?;
            if contains_ignoring_case(&text, &needle) {
                matches.push(LogLine {
                    seq: line.seq,
                    stream: line.stream,
                    line: text.into_owned(),
                    ts: super::rows::from_ms(line.ts_ms),
                });
                if matches.len() >= limit {
                    return Ok(LogSearch {
                        matches,
                        next: Some(after),
                    });
                }
            }
        }
        if !full {
            return Ok(LogSearch {
                matches,
                next: None,
            });
        }
        if scanned >= SEARCH_SCAN_LINES {
            return Ok(LogSearch {
                matches,
                next: Some(after),
            });
        }
    }
}

/// Whether `haystack` contains `needle` (already lower-case), ignoring case; without an
/// allocation per line when the needle is ASCII, the usual case.
fn contains_ignoring_case(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if needle.is_ascii() {
        let needle = needle.as_bytes();
        return haystack
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle));
    }
    haystack.to_lowercase().contains(needle)
}

/// A batch of consecutively numbered lines as stored: a JSON array with one entry per line,
/// `[stream (1 stdout, 2 stderr), ts (ms), text]`, shortened to `[stream, text]` when the line
/// has the previous one's time and to `text` alone when it has its stream too. Lines of one
/// read share their time, so a burst of short lines is stored at about a third of the size
/// (written twice, to the WAL and then to the database). Written straight out: this runs for
/// every line a script prints.
pub fn encode_chunk(lines: &[LogLine]) -> String {
    let text: usize = lines.iter().map(|l| l.line.len()).sum();
    let mut out = Vec::with_capacity(text + lines.len() * 4 + 24);
    out.push(b'[');
    let mut previous: Option<(LogStream, i64)> = None;
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let ts = super::rows::to_ms(l.ts);
        let bracket = match previous {
            Some((stream, at)) if at == ts && stream == l.stream => false,
            Some((_, at)) if at == ts => {
                out.extend_from_slice(stream_prefix(l.stream));
                true
            }
            _ => {
                out.extend_from_slice(stream_prefix(l.stream));
                out.extend_from_slice(itoa::Buffer::new().format(ts).as_bytes());
                out.push(b',');
                true
            }
        };
        let _ = serde_json::to_writer(&mut out, l.line.as_str());
        if bracket {
            out.push(b']');
        }
        previous = Some((l.stream, ts));
    }
    out.push(b']');
    // Only ASCII was added around JSON strings serde_json wrote from `str`s: never an empty
    // chunk in place of the batch.
    String::from_utf8(out).expect("a chunk is written as UTF-8")
}

fn stream_prefix(stream: LogStream) -> &'static [u8] {
    match stream {
        LogStream::Stdout => b"[1,",
        LogStream::Stderr => b"[2,",
    }
}

/// Appends to `out` the lines of a stored chunk numbered `first_seq..=last_seq` that come
/// after `after_seq`, until `out` holds `limit`.
pub fn decode_chunk(
    first_seq: i64,
    last_seq: i64,
    text: &str,
    after_seq: i64,
    limit: usize,
    out: &mut Vec<LogLine>,
) -> StoreResult<()> {
    // Lines of one read share their time: it is converted once for all of them.
    let mut time: Option<(i64, chrono::DateTime<chrono::Utc>)> = None;
    for line in ChunkLines::new(first_seq, last_seq, text, after_seq) {
        if out.len() >= limit {
            break;
        }
        let line = line?;
        let ts = match time {
            Some((ms, at)) if ms == line.ts_ms => at,
            _ => {
                let at = super::rows::from_ms(line.ts_ms);
                time = Some((line.ts_ms, at));
                at
            }
        };
        out.push(LogLine {
            seq: line.seq,
            stream: line.stream,
            line: line.text()?.into_owned(),
            ts,
        });
    }
    Ok(())
}

/// A stored chunk as read, for readers that go through its lines once.
#[derive(Debug)]
pub struct StoredChunk {
    pub first_seq: i64,
    pub last_seq: i64,
    /// Its lines, in the form `encode_chunk` describes.
    pub text: String,
}

impl StoredChunk {
    /// Its lines with `seq > after_seq`, in order.
    pub fn lines(&self, after_seq: i64) -> ChunkLines<'_> {
        ChunkLines::new(self.first_seq, self.last_seq, &self.text, after_seq)
    }

    /// How many of its lines come after `after_seq`.
    pub fn lines_after(&self, after_seq: i64) -> i64 {
        (self.last_seq - self.first_seq.max(after_seq + 1) + 1).max(0)
    }
}

/// A stored line, its text still the JSON string it is stored as: a stream sends it on as it
/// is, without decoding and encoding it again.
#[derive(Debug, Clone, Copy)]
pub struct StoredLine<'a> {
    pub seq: i64,
    pub stream: LogStream,
    pub ts_ms: i64,
    /// A JSON string, quotes included, checked to be valid JSON.
    pub text_json: &'a str,
}

impl<'a> StoredLine<'a> {
    /// The line's text.
    pub fn text(&self) -> StoreResult<Cow<'a, str>> {
        let inner = &self.text_json[1..self.text_json.len() - 1];
        if !inner.contains('\\') {
            return Ok(Cow::Borrowed(inner));
        }
        serde_json::from_str(self.text_json)
            .map(Cow::Owned)
            .map_err(|e| StoreError::Corrupt(format!("a stored log line: {e}")))
    }
}

/// The lines of a stored chunk, read in one pass without copying any text: those up to
/// `after_seq` only for their stream and time, which the next entries may take over.
pub struct ChunkLines<'a> {
    text: &'a str,
    at: usize,
    seq: i64,
    /// The number its last entry must have: a chunk that holds more or fewer lines than its
    /// range says is corrupt, rather than read again and again by readers that go on from
    /// the range.
    last_seq: i64,
    after_seq: i64,
    previous: Option<(LogStream, i64)>,
    /// `[` was read: entries follow, each after a comma but the first.
    opened: bool,
    ended: bool,
}

impl<'a> ChunkLines<'a> {
    fn new(first_seq: i64, last_seq: i64, text: &'a str, after_seq: i64) -> Self {
        Self {
            text,
            at: 0,
            seq: first_seq,
            last_seq,
            after_seq,
            previous: None,
            opened: false,
            ended: false,
        }
    }

    fn corrupt(&mut self, what: &str) -> StoreError {
        self.ended = true;
        StoreError::Corrupt(format!("a stored log chunk: {what} at byte {}", self.at))
    }

    fn peek(&mut self) -> Option<u8> {
        let bytes = self.text.as_bytes();
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(self.at) {
            self.at += 1;
        }
        bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn number(&mut self) -> Option<i64> {
        self.peek()?;
        let bytes = self.text.as_bytes();
        let start = self.at;
        if bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        while bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        self.text[start..self.at].parse().ok()
    }

    /// A JSON string, quotes included, whose escapes are valid.
    fn string(&mut self) -> Option<&'a str> {
        if self.peek() != Some(b'"') {
            return None;
        }
        let bytes = self.text.as_bytes();
        let start = self.at;
        let mut at = start + 1;
        loop {
            match *bytes.get(at)? {
                b'"' => break,
                b'\\' => match *bytes.get(at + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => at += 2,
                    b'u' => {
                        let hex = bytes.get(at + 2..at + 6)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        at += 6;
                    }
                    _ => return None,
                },
                0..0x20 => return None,
                _ => at += 1,
            }
        }
        self.at = at + 1;
        Some(&self.text[start..self.at])
    }

    /// One entry: `[stream, ts, text]`, `[stream, text]` or `text`.
    fn entry(&mut self) -> Result<StoredLine<'a>, StoreError> {
        let (stream, ts, text) = if self.eat(b'[') {
            let stream = match self.number() {
                Some(1) => LogStream::Stdout,
                Some(2) => LogStream::Stderr,
                _ => return Err(self.corrupt("a stream that is not 1 or 2")),
            };
            if !self.eat(b',') {
                return Err(self.corrupt("an entry with no text"));
            }
            let ts = if self.peek() == Some(b'"') {
                None
            } else {
                let Some(ts) = self.number() else {
                    return Err(self.corrupt("a time that is not a number"));
                };
                if !self.eat(b',') {
                    return Err(self.corrupt("an entry with no text"));
                }
                Some(ts)
            };
            let Some(text) = self.string() else {
                return Err(self.corrupt("a text that is not a valid string"));
            };
            if !self.eat(b']') {
                return Err(self.corrupt("an entry with more than three parts"));
            }
            (Some(stream), ts, text)
        } else {
            let Some(text) = self.string() else {
                return Err(self.corrupt("an entry that is neither a list nor a string"));
            };
            (None, None, text)
        };
        let (stream, ts_ms) = match (stream, ts, self.previous) {
            (Some(stream), Some(ts), _) => (stream, ts),
            (Some(stream), None, Some((_, ts))) => (stream, ts),
            (None, None, Some(both)) => both,
            _ => {
                return Err(self.corrupt("an entry that takes its time from none before it"));
            }
        };
        self.previous = Some((stream, ts_ms));
        let seq = self.seq;
        self.seq += 1;
        Ok(StoredLine {
            seq,
            stream,
            ts_ms,
            text_json: text,
        })
    }
}

impl<'a> Iterator for ChunkLines<'a> {
    type Item = StoreResult<StoredLine<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.ended {
                return None;
            }
            let more = if self.opened {
                self.eat(b',')
            } else if self.eat(b'[') {
                self.opened = true;
                self.peek() != Some(b']')
            } else {
                return Some(Err(self.corrupt("no list")));
            };
            if !more {
                self.ended = true;
                if !self.eat(b']') || self.peek().is_some() {
                    return Some(Err(self.corrupt("no end of the list where it ends")));
                }
                if self.seq != self.last_seq + 1 {
                    return Some(Err(self.corrupt("fewer lines than its range")));
                }
                return None;
            }
            if self.seq > self.last_seq {
                return Some(Err(self.corrupt("more lines than its range")));
            }
            match self.entry() {
                Ok(line) if line.seq <= self.after_seq => continue,
                done => return Some(done),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: i64, stream: LogStream, text: &str) -> LogLine {
        LogLine {
            seq,
            stream,
            line: text.into(),
            ts: super::super::rows::from_ms(1_700_000_000_000 + seq),
        }
    }

    #[test]
    fn search_ignores_case_in_ascii_and_beyond() {
        assert!(contains_ignoring_case("Build FAILED at step 3", "failed"));
        assert!(contains_ignoring_case("x", ""));
        assert!(!contains_ignoring_case("fail", "failed"));
        assert!(!contains_ignoring_case("", "a"));
        assert!(contains_ignoring_case("Größe: ÄRGER", "ärger"));
        assert!(!contains_ignoring_case("Größe", "ärger"));
    }

    #[test]
    fn a_chunk_is_stored_as_json_of_stream_time_and_text() {
        let lines = vec![
            line(1, LogStream::Stdout, "a \"b\" \\ \u{1}"),
            line(2, LogStream::Stderr, "Größe"),
        ];
        let expected: Vec<(u8, i64, &str)> = lines
            .iter()
            .map(|l| {
                let stream = if l.stream == LogStream::Stderr { 2 } else { 1 };
                (stream, super::super::rows::to_ms(l.ts), l.line.as_str())
            })
            .collect();
        assert_eq!(
            encode_chunk(&lines),
            serde_json::to_string(&expected).unwrap()
        );
        assert_eq!(encode_chunk(&[]), "[]");
    }

    #[test]
    fn a_line_with_the_previous_ones_time_is_stored_without_it() {
        let at = super::super::rows::from_ms(1_700_000_000_123);
        let later = super::super::rows::from_ms(1_700_000_000_124);
        let lines: Vec<LogLine> = [
            (LogStream::Stdout, at, "one"),
            (LogStream::Stdout, at, "two \"2\""),
            (LogStream::Stderr, at, "three"),
            (LogStream::Stderr, at, ""),
            (LogStream::Stderr, later, "five"),
            (LogStream::Stdout, later, "six"),
        ]
        .into_iter()
        .zip(10..)
        .map(|((stream, ts, text), seq)| LogLine {
            seq,
            stream,
            line: text.into(),
            ts,
        })
        .collect();
        let text = encode_chunk(&lines);
        assert_eq!(
            text,
            r#"[[1,1700000000123,"one"],"two \"2\"",[2,"three"],"",[2,1700000000124,"five"],[1,"six"]]"#
        );
        for after in 9..=15 {
            let mut out = Vec::new();
            decode_chunk(10, 15, &text, after, 10, &mut out).unwrap();
            let from = usize::try_from(after - 9).unwrap().min(lines.len());
            assert_eq!(out, lines[from..].to_vec(), "after seq {after}");
        }
        let mut two = Vec::new();
        decode_chunk(10, 15, &text, 11, 2, &mut two).unwrap();
        assert_eq!(
            two,
            lines[2..4].to_vec(),
            "from the middle, taking the skipped lines' time"
        );
    }

    #[test]
    fn chunks_stored_with_every_lines_time_still_read() {
        let text = r#"[[1,1700000000123,"a"],[2,1700000000123,"b"],[1,1700000000200,"c"]]"#;
        let mut out = Vec::new();
        decode_chunk(1, 3, text, 1, 10, &mut out).unwrap();
        let read: Vec<_> = out
            .iter()
            .map(|l| {
                (
                    l.seq,
                    l.stream,
                    super::super::rows::to_ms(l.ts),
                    l.line.as_str(),
                )
            })
            .collect();
        assert_eq!(
            read,
            vec![
                (2, LogStream::Stderr, 1_700_000_000_123, "b"),
                (3, LogStream::Stdout, 1_700_000_000_200, "c")
            ]
        );
    }

    #[test]
    fn chunks_written_by_the_databases_own_json_functions_read_too() {
        // A migration built one-line chunks with json_build_array (PostgreSQL, spaces after
        // commas) and json_array (SQLite), escaping in their own ways.
        let text = " [[1, 1700000000123, \"tab\\there \\u00e9 \\/ \\\"q\\\"\"] , [2, 5, \"\"]]\n";
        let lines: Vec<_> = ChunkLines::new(7, 8, text, 0)
            .collect::<StoreResult<_>>()
            .unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].text().unwrap(), "tab\there \u{e9} / \"q\"");
        assert_eq!(
            (lines[1].seq, lines[1].stream, lines[1].ts_ms),
            (8, LogStream::Stderr, 5)
        );
        assert_eq!(lines[1].text().unwrap(), "");
    }

    #[test]
    fn a_stored_line_is_sent_on_only_as_valid_json() {
        for bad in [
            "[[1, 5, \"bad \\x escape\"]]",
            "[[1, 5, \"short \\u12\"]]",
            "[[1, 5, \"raw\ttab\"]]",
            "[[1, 5, \"unterminated]]",
            "[[1, 5, \"a\"],]",
            "[[1, 5, \"a\"]",
            "[[1, 5, \"a\"]] [",
            "[[3, 5, \"a\"]]",
            "[[1, 5.5, \"a\"]]",
            "{}",
        ] {
            let read: StoreResult<Vec<_>> = ChunkLines::new(1, 1, bad, 0).collect();
            assert!(read.is_err(), "{bad} was read");
        }
        assert!(ChunkLines::new(1, 0, "[]", 0).next().is_none());
        let two = r#"[[1, 5, "a"], "b"]"#;
        assert_eq!(ChunkLines::new(1, 2, two, 0).count(), 2);
        for last in [1, 3, 5000] {
            let read: StoreResult<Vec<_>> = ChunkLines::new(1, last, two, 0).collect();
            assert!(read.is_err(), "two lines read as 1..={last}");
        }
        assert!(ChunkLines::new(1, 0, " [ ] ", 0).next().is_none());
    }

    #[test]
    fn a_chunk_gives_back_its_lines_from_any_point() {
        let lines = vec![
            line(5, LogStream::Stdout, "five"),
            line(6, LogStream::Stderr, "six \"quoted\" \u{1}"),
            line(7, LogStream::Stdout, ""),
        ];
        let text = encode_chunk(&lines);
        let mut all = Vec::new();
        decode_chunk(5, 7, &text, 0, 10, &mut all).unwrap();
        assert_eq!(all, lines);
        let mut rest = Vec::new();
        decode_chunk(5, 7, &text, 5, 1, &mut rest).unwrap();
        assert_eq!(rest, lines[1..2].to_vec(), "after seq 5, at most one");
        let mut tail = Vec::new();
        decode_chunk(5, 7, &text, 6, 10, &mut tail).unwrap();
        assert_eq!(tail, lines[2..].to_vec(), "after seq 6, the rest");
        let mut none = Vec::new();
        decode_chunk(5, 7, &text, 7, 10, &mut none).unwrap();
        assert!(none.is_empty(), "nothing after the last line");
        assert!(decode_chunk(1, 1, "not json", 0, 10, &mut rest).is_err());
        assert!(decode_chunk(1, 1, r#"[[1, 5, "a"]] x"#, 0, 10, &mut rest).is_err());
        assert!(
            decode_chunk(1, 1, r#"[[1, "a"]]"#, 0, 10, &mut rest).is_err(),
            "no time to take over"
        );
        assert!(decode_chunk(1, 1, r#"["a"]"#, 0, 10, &mut rest).is_err());
        assert!(decode_chunk(1, 1, r#"[[1, 5, "a", 1]]"#, 0, 10, &mut rest).is_err());
        assert!(decode_chunk(1, 1, r#"[[1]]"#, 0, 10, &mut rest).is_err());
        assert!(decode_chunk(1, 1, r#"[[1, 5]]"#, 0, 10, &mut rest).is_err());
        assert!(decode_chunk(1, 2, r#"[[1, 5, "a"], 7]"#, 0, 10, &mut rest).is_err());
        assert!(
            decode_chunk(1, 2, r#"[[1, 5, "a"], ["b"]]"#, 0, 10, &mut rest).is_err(),
            "a stream must be a number"
        );
    }
}
