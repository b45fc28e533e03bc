//! A run's output on its way to the store: numbering, masking, the tail, the size cap and
//! batching. One sink per run, fed by the output readers through a bounded channel, so a
//! script that prints faster than the store writes is slowed down instead of buffered. Its
//! writer stores the batches in order while the sink gathers the next, and then sends each to
//! this node's watchers with its lines and to the other nodes as "stored up to seq N". Writes
//! are fenced by the lease: once the store refuses one, the run is stopped here and nothing
//! more is written.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::hub::{Hub, HubEvent, LiveLines};
use super::mask::Masker;
use crate::domain::{LogLine, LogStream};
use crate::store::{DynFeed, DynStore, Signal};

pub const TAIL_BYTES: usize = 64 * 1024;
const BATCH_LINES: usize = 1000;
const BATCH_BYTES: usize = 128 * 1024;
/// A busy run's lines are stored at most this often (one transaction each); a line arriving
/// after a quiet spell at least this long is stored and sent at once.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
const TAIL_EVERY: Duration = Duration::from_secs(2);
/// Attempts to store a batch, the first retry after `STORE_RETRY_FIRST`, doubling: about
/// 6 s in all before a batch is given up.
const STORE_ATTEMPTS: u32 = 7;
const STORE_RETRY_FIRST: Duration = Duration::from_millis(100);

/// A line as a reader produced it, before numbering.
#[derive(Debug)]
pub struct RawLine {
    pub stream: LogStream,
    pub text: String,
}

/// What the sink knew when its input closed.
#[derive(Debug, Default, Clone)]
pub struct LogSummary {
    pub tail: String,
    pub stored_bytes: i64,
    pub truncated: bool,
}

pub struct LogSink {
    pub run_id: String,
    /// This node's lease on the run; every write names it.
    pub lease: String,
    pub store: DynStore,
    pub feed: DynFeed,
    pub hub: Hub,
    pub masker: Masker,
    pub cap: u64,
    /// Stops the run when the store says this node no longer holds it.
    pub stop: CancellationToken,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// What the sink tracks while it runs.
struct Progress {
    next_seq: i64,
    batch: Vec<LogLine>,
    batch_bytes: usize,
    stored_bytes: u64,
    truncated: bool,
    /// The lease was lost: nothing more is written. Set by the writer.
    fenced: Arc<AtomicBool>,
    tail: Tail,
    flushed_at: std::time::Instant,
}

/// A batch on its way to the writer: all of its lines go to watchers, the first `keep` to the
/// store, and with `marker` its last line (the note that the log was cut) too.
struct Write {
    batch: Vec<LogLine>,
    keep: usize,
    marker: bool,
}

impl LogSink {
    /// Drains `rx` until every sender is gone, flushing by time and size; returns once every
    /// batch is stored.
    pub async fn run(self, mut rx: mpsc::Receiver<Vec<RawLine>>) -> LogSummary {
        let sink = Arc::new(self);
        let fenced = Arc::new(AtomicBool::new(false));
        // One batch waits while one is written: a busy run's next batch is gathered meanwhile,
        // and a slow store still holds the script back.
        let (writes, queue) = mpsc::channel(1);
        let writer = tokio::spawn(sink.clone().write(queue, fenced.clone()));
        let summary = sink.gather(&mut rx, &writes, fenced).await;
        drop(writes);
        let _ = writer.await;
        summary
    }

    async fn gather(
        &self,
        rx: &mut mpsc::Receiver<Vec<RawLine>>,
        writes: &mpsc::Sender<Write>,
        fenced: Arc<AtomicBool>,
    ) -> LogSummary {
        let mut p = Progress {
            next_seq: 1,
            batch: Vec::new(),
            batch_bytes: 0,
            stored_bytes: 0,
            truncated: false,
            fenced,
            tail: Tail::default(),
            // The first line is sent at once.
            flushed_at: std::time::Instant::now()
                .checked_sub(FLUSH_EVERY)
                .unwrap_or_else(std::time::Instant::now),
        };
        let mut flush_tick = tokio::time::interval(FLUSH_EVERY);
        let mut tail_tick = tokio::time::interval(TAIL_EVERY);
        tail_tick.tick().await;
        loop {
            tokio::select! {
                line = rx.recv() => match line {
                    Some(lines) => {
                        // The lines of one read arrived together.
                        let now = Utc::now();
                        for line in lines {
                            self.push(&mut p, line, now);
                        }
                        let full = p.batch.len() >= BATCH_LINES || p.batch_bytes >= BATCH_BYTES;
                        let quiet = rx.is_empty() && p.flushed_at.elapsed() >= FLUSH_EVERY;
                        if full || quiet {
                            self.flush(&mut p, writes).await;
                        }
                    }
                    None => break,
                },
                _ = flush_tick.tick() => self.flush(&mut p, writes).await,
                _ = tail_tick.tick(), if p.tail.unsaved && !p.fenced.load(Ordering::Relaxed) => {
                    p.tail.unsaved = false;
                    let saved = self
                        .store
                        .update_tail(&self.run_id, &self.lease, &p.tail.text(), p.stored_bytes as i64)
                        .await;
                    match saved {
                        Ok(true) => {}
                        Ok(false) => self.fence(&p.fenced),
                        Err(e) => tracing::warn!(run_id = %self.run_id, error = %e, "could not save output tail"),
                    }
                }
            }
        }
        self.flush(&mut p, writes).await;
        LogSummary {
            tail: p.tail.text(),
            stored_bytes: p.stored_bytes as i64,
            truncated: p.truncated,
        }
    }

    fn push(&self, p: &mut Progress, raw: RawLine, ts: chrono::DateTime<Utc>) {
        let text = self.masker.mask(raw.text);
        p.batch_bytes += text.len();
        p.batch.push(LogLine {
            seq: p.next_seq,
            stream: raw.stream,
            line: text,
            ts,
        });
        p.next_seq += 1;
    }

    /// Stores a batch, retrying a failing store a few times with backoff (which also holds
    /// the script back): a database that is briefly unavailable leaves no gap in the log.
    /// A retry after a commit whose answer was lost stores nothing twice (the chunk's key).
    async fn store_batch(&self, lines: &[LogLine]) -> crate::store::StoreResult<bool> {
        // From here on a watcher that arrives must read the store too.
        self.hub.writing(&self.run_id);
        let mut delay = STORE_RETRY_FIRST;
        let mut attempt = 1;
        loop {
            let asked = std::time::Instant::now();
            let stored = self
                .store
                .append_log(&self.run_id, &self.lease, lines)
                .await;
            self.metrics
                .store_call(crate::metrics::StoreCall::AppendLog, asked.elapsed());
            match stored {
                Err(e) if attempt < STORE_ATTEMPTS => {
                    tracing::warn!(run_id = %self.run_id, error = %e, attempt, "could not store log lines; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                done => return done,
            }
        }
    }

    /// Counts a batch's lines and bytes (newlines included) by stream, once per batch.
    fn count_output(&self, batch: &[LogLine]) {
        let mut counts = [(0u64, 0u64); 2];
        for line in batch {
            let c = &mut counts[usize::from(line.stream == LogStream::Stderr)];
            c.0 += 1;
            c.1 += line.line.len() as u64 + 1;
        }
        for (stream, (lines, bytes)) in [LogStream::Stdout, LogStream::Stderr]
            .into_iter()
            .zip(counts)
        {
            if lines > 0 {
                self.metrics.output_read(stream, lines, bytes);
            }
        }
    }

    /// The store refused a write: another node ended this run after its lease ran out.
    fn fence(&self, fenced: &AtomicBool) {
        if !fenced.swap(true, Ordering::Relaxed) {
            tracing::warn!(run_id = %self.run_id, "this node lost the run's lease; stopping it and storing nothing more");
            self.stop.cancel();
        }
    }

    /// Hands the batch to the writer, cut at the cap.
    async fn flush(&self, p: &mut Progress, writes: &mpsc::Sender<Write>) {
        if p.batch.is_empty() || p.fenced.load(Ordering::Relaxed) {
            p.batch.clear();
            return;
        }
        let mut batch = std::mem::take(&mut p.batch);
        p.batch_bytes = 0;
        self.count_output(&batch);
        p.flushed_at = std::time::Instant::now();
        p.tail.extend(&batch);
        let mut keep = 0;
        let mut marker = false;
        if !p.truncated {
            for line in &batch {
                let size = line.line.len() as u64 + 1;
                if p.stored_bytes + size > self.cap {
                    p.truncated = true;
                    // A number of its own, after the batch: the lines it replaces in the store
                    // keep theirs for those who saw them live.
                    batch.push(LogLine {
                        seq: p.next_seq,
                        stream: LogStream::Stderr,
                        line: format!(
                            "[scriptd] log cut at {} bytes; later output was streamed live but not stored",
                            self.cap
                        ),
                        ts: Utc::now(),
                    });
                    p.next_seq += 1;
                    marker = true;
                    break;
                }
                p.stored_bytes += size;
                keep += 1;
            }
        }
        // The writer is gone only if it panicked; the run's end then records what was stored.
        let _ = writes
            .send(Write {
                batch,
                keep,
                marker,
            })
            .await;
    }

    /// Stores each batch (up to the cap), then publishes it: durable first, live second.
    async fn write(self: Arc<Self>, mut queue: mpsc::Receiver<Write>, fenced: Arc<AtomicBool>) {
        while let Some(Write {
            batch,
            keep,
            marker,
        }) = queue.recv().await
        {
            if fenced.load(Ordering::Relaxed) {
                continue;
            }
            let with_marker;
            let to_store: &[LogLine] = if marker {
                with_marker = [&batch[..keep], &batch[batch.len() - 1..]].concat();
                &with_marker
            } else {
                &batch[..keep]
            };
            let stored_to = match to_store.last() {
                None => None,
                Some(last) => match self.store_batch(to_store).await {
                    Ok(true) => {
                        let bytes = to_store.iter().map(|l| l.line.len() as u64 + 1).sum();
                        self.metrics.log_stored(bytes);
                        Some(last.seq)
                    }
                    Ok(false) => {
                        self.fence(&fenced);
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(run_id = %self.run_id, error = %e, "could not store log lines");
                        None
                    }
                },
            };
            self.hub
                .publish(&self.run_id, HubEvent::Lines(LiveLines::new(batch)));
            if let Some(to_seq) = stored_to {
                let signal = Signal::Lines {
                    run_id: self.run_id.clone(),
                    to_seq,
                };
                self.feed.publish(&signal).await;
            }
        }
    }
}

/// What the sink would have known at the end of a run whose node died first, read back from
/// its stored log: the tail, and the size and cut of what was stored. The log-cap marker is
/// the line after a gap in the numbers (the lines it replaced were sent live only); it ends
/// the tail, as it ends the log, and is not counted in the size.
pub async fn stored_summary(
    store: &DynStore,
    run_id: &str,
) -> crate::store::StoreResult<LogSummary> {
    const PAGE: i64 = 5000;
    let mut tail = Tail::default();
    let (mut last, mut bytes, mut truncated) = (0, 0, false);
    loop {
        let chunks = store.read_log_chunks(run_id, last, PAGE).await?;
        if chunks.is_empty() {
            break;
        }
        for chunk in &chunks {
            // Lines are numbered from 1.
            truncated |= chunk.first_seq > last + 1;
            for line in chunk.lines(last) {
                let line = line?;
                let text = line.text()?;
                if !truncated {
                    bytes += text.len() as i64 + 1;
                }
                tail.push(&text);
                last = line.seq;
            }
        }
    }
    Ok(LogSummary {
        tail: tail.text(),
        stored_bytes: bytes,
        truncated,
    })
}

/// The last `TAIL_BYTES` of combined output, kept as whole lines.
#[derive(Default)]
struct Tail {
    /// Whole lines, each ending in a newline: the tail and up to as much again before it,
    /// trimmed in one go when it grows past that, so a line costs no allocation of its own.
    text: String,
    /// Lines arrived since the tail was last written to the store.
    unsaved: bool,
}

impl Tail {
    /// Adds the lines of a batch that can still be in the tail (the last 64 KiB of it).
    fn extend(&mut self, batch: &[LogLine]) {
        let mut size = 0;
        let from = batch
            .iter()
            .rposition(|l| {
                size += l.line.len() + 1;
                size > TAIL_BYTES
            })
            .unwrap_or(0);
        for line in &batch[from..] {
            self.push(&line.line);
        }
    }

    fn push(&mut self, line: &str) {
        self.unsaved = true;
        // Room for the line's newline too, or a line this long would push itself out.
        let line = if line.len() >= TAIL_BYTES {
            let mut cut = line.len() - (TAIL_BYTES - 1);
            while !line.is_char_boundary(cut) {
                cut += 1;
            }
            &line[cut..]
        } else {
            line
        };
        self.text.push_str(line);
        self.text.push('\n');
        if self.text.len() > 2 * TAIL_BYTES {
            let cut = self.start();
            self.text.drain(..cut);
        }
    }

    /// Where the tail begins: the first line start that leaves at most `TAIL_BYTES`.
    fn start(&self) -> usize {
        let Some(excess) = self.text.len().checked_sub(TAIL_BYTES).filter(|e| *e > 0) else {
            return 0;
        };
        self.text.as_bytes()[excess - 1..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.text.len(), |p| excess + p)
    }

    fn text(&self) -> String {
        self.text[self.start()..].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_whole_lines_that_fit() {
        let mut tail = Tail::default();
        for i in 0..100_000 {
            tail.push(&format!("line {i}"));
        }
        let text = tail.text();
        assert!(text.len() <= TAIL_BYTES && text.len() > TAIL_BYTES - 20);
        assert!(text.ends_with("line 99999\n"));
        assert!(
            text.starts_with("line "),
            "starts at a whole line: {}",
            &text[..20]
        );
        let first: usize = text[5..text.find('\n').unwrap()].parse().unwrap();
        let kept = text.lines().count();
        assert_eq!(first + kept, 100_000, "consecutive lines up to the last");
    }

    #[test]
    fn a_line_longer_than_the_tail_keeps_its_end_in_the_tail() {
        let mut tail = Tail::default();
        tail.push("first");
        let long = format!("{}END", "x".repeat(TAIL_BYTES + 10));
        tail.push(&long);
        let text = tail.text();
        assert!(text.ends_with("END\n"));
        assert_eq!(text.len(), TAIL_BYTES);
    }
}
