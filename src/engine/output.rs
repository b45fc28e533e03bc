//! Turns a pipe into lines: split on `\n`, invalid UTF-8 replaced (never dropped), a partial
//! line flushed after a short quiet spell so progress output shows, and no line longer than
//! `MAX_LINE` so memory stays bounded whatever a script prints.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use super::logs::RawLine;
use super::mask::Masker;
use crate::domain::LogStream;

pub const MAX_LINE: usize = 64 * 1024;
pub const PARTIAL_FLUSH: Duration = Duration::from_millis(250);
const READ_SIZE: usize = 32 * 1024;

/// Reads `reader` to its end. `masker` only decides where a partial line may be cut: never
/// inside what could be the start of a secret, so masking (done on whole lines by the sink)
/// still sees the secret whole.
pub async fn read_lines<R: AsyncRead + Unpin>(
    mut reader: R,
    stream: LogStream,
    tx: mpsc::Sender<Vec<RawLine>>,
    masker: Masker,
) {
    let mut pending: Vec<u8> = Vec::new();
    // Small reads keep the lines in flight (at most a channel's worth of reads) few. Read into
    // spare capacity (`read_buf`), not a zeroed buffer: zeroing 32 KiB for each of a run's two
    // pipes was 6% of the server's instructions for a run of `true` (`benches/instructions.sh`).
    let mut buf = Vec::with_capacity(READ_SIZE);
    // A partial line already went out; the newline that ends it must not add an empty line.
    let mut flushed_partial = false;
    loop {
        buf.clear();
        let read = if pending.is_empty() {
            reader.read_buf(&mut buf).await
        } else {
            match tokio::time::timeout(PARTIAL_FLUSH, reader.read_buf(&mut buf)).await {
                Ok(r) => r,
                Err(_) => {
                    let cut = pending.len() - masker.held_back(&pending);
                    if cut == 0 {
                        continue;
                    }
                    let text = decode(&pending[..cut]);
                    pending.drain(..cut);
                    if tx.send(vec![RawLine { stream, text }]).await.is_err() {
                        return;
                    }
                    flushed_partial = true;
                    continue;
                }
            }
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if flushed_partial && buf[0] != b'\n' {
            flushed_partial = false;
        }
        pending.extend_from_slice(&buf[..n]);
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(pos) = pending[start..].iter().position(|&b| b == b'\n') {
            let mut end = start + pos;
            if end > start && pending[end - 1] == b'\r' {
                end -= 1;
            }
            let text = decode(&pending[start..end]);
            if !(flushed_partial && text.is_empty()) {
                lines.push(RawLine { stream, text });
            }
            flushed_partial = false;
            start += pos + 1;
        }
        pending.drain(..start);
        while pending.len() > MAX_LINE {
            let cut = utf8_boundary(&pending, MAX_LINE);
            // Never through a secret: what could be its beginning starts the next piece.
            let held = masker.held_back(&pending[..cut]);
            let cut = if held < cut { cut - held } else { cut };
            lines.push(RawLine {
                stream,
                text: decode(&pending[..cut]),
            });
            pending.drain(..cut);
        }
        if !lines.is_empty() && tx.send(lines).await.is_err() {
            return;
        }
    }
    if !pending.is_empty() {
        let text = decode(&pending);
        let _ = tx.send(vec![RawLine { stream, text }]).await;
    }
}

/// Decodes a line into a right-sized `String`, replacing invalid sequences.
fn decode(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The largest cut at or below `max` that does not split a UTF-8 sequence (when the bytes
/// are valid UTF-8 there).
fn utf8_boundary(bytes: &[u8], max: usize) -> usize {
    let mut cut = max;
    while cut > max.saturating_sub(3) && cut > 0 && (bytes[cut] & 0b1100_0000) == 0b1000_0000 {
        cut -= 1;
    }
    if cut == 0 {
        max
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(input: &'static [u8]) -> Vec<String> {
        let (tx, mut rx) = mpsc::channel(16);
        read_lines(input, LogStream::Stdout, tx, Masker::default()).await;
        let mut out = Vec::new();
        while let Some(batch) = rx.recv().await {
            out.extend(batch.into_iter().map(|l| l.text));
        }
        out
    }

    #[tokio::test]
    async fn lines_are_split_and_bad_bytes_replaced() {
        let lines = collect(b"one\r\ntwo\n\xff\xfebad\nlast").await;
        assert_eq!(lines, vec!["one", "two", "\u{fffd}\u{fffd}bad", "last"]);
    }

    #[tokio::test]
    async fn short_lines_from_a_big_read_do_not_hold_the_read_buffer() {
        let (tx, mut rx) = mpsc::channel(16);
        let input: &'static [u8] =
            Box::leak("line\n".repeat(20_000).into_bytes().into_boxed_slice());
        read_lines(input, LogStream::Stdout, tx, Masker::default()).await;
        let mut count = 0;
        while let Some(batch) = rx.recv().await {
            for l in batch {
                assert!(
                    l.text.capacity() < 64,
                    "a 4-byte line keeps {} bytes",
                    l.text.capacity()
                );
                count += 1;
            }
        }
        assert_eq!(count, 20_000);
    }

    #[tokio::test]
    async fn a_huge_line_is_cut_into_bounded_pieces() {
        let big: &'static [u8] = Box::leak(vec![b'x'; MAX_LINE * 2 + 10].into_boxed_slice());
        let lines = collect(big).await;
        assert!(lines.iter().all(|l| l.len() <= MAX_LINE));
        assert_eq!(
            lines.iter().map(String::len).sum::<usize>(),
            MAX_LINE * 2 + 10
        );
    }

    #[tokio::test]
    async fn the_cut_of_a_huge_line_never_splits_a_secret() {
        let secret = "s3cr3t-value-1234";
        let masker = Masker::new([secret.to_string()]);
        // The secret straddles the 64 KiB mark.
        let mut text = "x".repeat(MAX_LINE - 5).into_bytes();
        text.extend_from_slice(secret.as_bytes());
        text.extend_from_slice(&vec![b'y'; MAX_LINE]);
        let input: &'static [u8] = Box::leak(text.into_boxed_slice());
        let (tx, mut rx) = mpsc::channel(16);
        read_lines(input, LogStream::Stdout, tx, masker.clone()).await;
        let mut masked = Vec::new();
        while let Some(batch) = rx.recv().await {
            masked.extend(batch.into_iter().map(|l| masker.mask(l.text)));
        }
        assert!(masked.iter().all(|l| l.len() <= MAX_LINE));
        assert!(masked.iter().any(|l| l.contains("***")));
        assert!(!masked
            .iter()
            .any(|l| l.contains("s3cr3t") || l.contains("1234y")));
    }
}
