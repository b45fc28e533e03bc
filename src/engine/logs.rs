//! A run's output on its way to the store: numbering, masking, the tail, the size cap and
//! batching. One sink per run, fed by the output readers through a bounded channel, so a
//! script that prints faster than the store writes is slowed down instead of buffered.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{broadcast, mpsc};

use super::hub::HubEvent;
use super::mask::Masker;
use crate::domain::{LogLine, LogStream};
use crate::store::DynStore;

pub const TAIL_BYTES: usize = 64 * 1024;
const BATCH_LINES: usize = 1000;
const BATCH_BYTES: usize = 128 * 1024;
const FLUSH_EVERY: Duration = Duration::from_millis(100);
const TAIL_EVERY: Duration = Duration::from_secs(2);

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
    run_id: String,
    store: DynStore,
    hub: broadcast::Sender<HubEvent>,
    masker: Masker,
    cap: u64,
    next_seq: i64,
    batch: Vec<LogLine>,
    batch_bytes: usize,
    stored_bytes: u64,
    truncated: bool,
    tail: Tail,
}

impl LogSink {
    pub fn new(
        run_id: String,
        store: DynStore,
        hub: broadcast::Sender<HubEvent>,
        masker: Masker,
        cap: u64,
    ) -> Self {
        Self {
            run_id,
            store,
            hub,
            masker,
            cap,
            next_seq: 1,
            batch: Vec::new(),
            batch_bytes: 0,
            stored_bytes: 0,
            truncated: false,
            tail: Tail::default(),
        }
    }

    /// Drains `rx` until every sender is gone, flushing by time and size.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Vec<RawLine>>) -> LogSummary {
        let mut flush_tick = tokio::time::interval(FLUSH_EVERY);
        let mut tail_tick = tokio::time::interval(TAIL_EVERY);
        tail_tick.tick().await;
        loop {
            tokio::select! {
                line = rx.recv() => match line {
                    Some(lines) => {
                        for line in lines {
                            self.push(line);
                        }
                        if self.batch.len() >= BATCH_LINES || self.batch_bytes >= BATCH_BYTES {
                            self.flush().await;
                        }
                    }
                    None => break,
                },
                _ = flush_tick.tick() => self.flush().await,
                _ = tail_tick.tick(), if self.tail.unsaved => {
                    self.tail.unsaved = false;
                    if let Err(e) = self.store.update_tail(&self.run_id, &self.tail.text()).await {
                        tracing::warn!(run_id = %self.run_id, error = %e, "could not save output tail");
                    }
                }
            }
        }
        self.flush().await;
        LogSummary {
            tail: self.tail.text(),
            stored_bytes: self.stored_bytes as i64,
            truncated: self.truncated,
        }
    }

    fn push(&mut self, raw: RawLine) {
        let text = self.masker.mask(raw.text);
        self.batch_bytes += text.len();
        self.batch.push(LogLine {
            seq: self.next_seq,
            stream: raw.stream,
            line: text,
            ts: Utc::now(),
        });
        self.next_seq += 1;
    }

    /// Stores the batch (up to the cap), then publishes it: durable first, live second.
    async fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        self.tail.extend(&batch);
        let mut keep = 0;
        let mut marker = None;
        if !self.truncated {
            for line in &batch {
                let size = line.line.len() as u64 + 1;
                if self.stored_bytes + size > self.cap {
                    self.truncated = true;
                    marker = Some(LogLine {
                        seq: line.seq,
                        stream: LogStream::Stderr,
                        line: format!(
                            "[scriptd] log cut at {} bytes; later output was streamed live but not stored",
                            self.cap
                        ),
                        ts: Utc::now(),
                    });
                    break;
                }
                self.stored_bytes += size;
                keep += 1;
            }
        }
        let stored = async {
            if keep > 0 {
                self.store.append_log(&self.run_id, &batch[..keep]).await?;
            }
            if let Some(m) = &marker {
                self.store
                    .append_log(&self.run_id, std::slice::from_ref(m))
                    .await?;
            }
            Ok::<_, crate::store::StoreError>(())
        };
        if let Err(e) = stored.await {
            tracing::error!(run_id = %self.run_id, error = %e, "could not store log lines");
        }
        let _ = self.hub.send(HubEvent::Lines(Arc::from(batch)));
    }
}

/// The last `TAIL_BYTES` of combined output, kept as whole lines.
#[derive(Default)]
struct Tail {
    lines: VecDeque<String>,
    bytes: usize,
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
        let mut line = line.to_string();
        if line.len() > TAIL_BYTES {
            let mut cut = line.len() - TAIL_BYTES;
            while !line.is_char_boundary(cut) {
                cut += 1;
            }
            line.drain(..cut);
        }
        self.bytes += line.len() + 1;
        self.lines.push_back(line);
        while self.bytes > TAIL_BYTES {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.len() + 1;
            }
        }
    }

    fn text(&self) -> String {
        let mut out = String::with_capacity(self.bytes);
        for l in &self.lines {
            out.push_str(l);
            out.push('\n');
        }
        out
    }
}
