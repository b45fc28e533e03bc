//! Open connections: each one's activity, the idle deadline that closes it, and the cap on how
//! many stay open. hyper's own header timeout starts only at a request's first byte, so a
//! socket that sends nothing, or sits idle between keep-alive requests, would otherwise stay
//! open forever and a few thousand of them would use up the process's file descriptors.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

/// What the watchdog knows of one connection.
pub struct Activity {
    opened: Instant,
    /// Milliseconds after `opened` of the last byte read or written.
    last_ms: AtomicU64,
    /// Requests whose response has not been produced yet.
    in_flight: AtomicUsize,
    /// Requests started on this connection.
    started: AtomicUsize,
    close: CancellationToken,
}

impl Activity {
    fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last)
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    /// A request began; the returned guard ends it when dropped (its response is ready).
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        InFlight(self.clone())
    }

    /// Resolves when the connection should close: idle past its limit, or evicted. Sleeps
    /// until the earliest moment that could be, so idle connections cost no wake-ups.
    pub async fn closed(&self, first_request: Duration, keep_alive: Duration) {
        loop {
            let limit = if self.started.load(Ordering::Relaxed) == 0 {
                first_request
            } else {
                keep_alive
            };
            let idle = self.idle_for();
            if !self.busy() && idle >= limit {
                return;
            }
            // A busy connection is looked at again after a full limit: its request may take
            // long (a `wait=true` trigger), and bytes moving keep it fresh anyway.
            let wait = if self.busy() { limit } else { limit - idle };
            tokio::select! {
                _ = tokio::time::sleep(wait.max(Duration::from_millis(50))) => {}
                _ = self.close.cancelled() => return,
            }
        }
    }
}

pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every open connection, and the cap on them.
pub struct Connections {
    cap: usize,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
}

impl Connections {
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Registers a new connection. At the cap, the connection idle the longest is closed to
    /// make room, so new clients (a health check) still get an answer; `None` when every
    /// open connection is busy with a request.
    pub fn admit(self: &Arc<Self>) -> Option<(Arc<Activity>, Registered)> {
        let mut open = self.open.lock().expect("connections lock");
        if open.len() >= self.cap {
            let idlest = open
                .iter()
                .filter(|(_, a)| !a.busy() && !a.close.is_cancelled())
                .max_by_key(|(_, a)| a.idle_for())
                .map(|(id, _)| *id)?;
            if let Some(a) = open.remove(&idlest) {
                a.close.cancel();
            }
        }
        let activity = Arc::new(Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            close: CancellationToken::new(),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        open.insert(id, activity.clone());
        Some((
            activity,
            Registered {
                id,
                all: self.clone(),
            },
        ))
    }
}

/// Removes the connection from the registry when it ends.
pub struct Registered {
    id: u64,
    all: Arc<Connections>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.all
            .open
            .lock()
            .expect("connections lock")
            .remove(&self.id);
    }
}

/// A socket that records when bytes last moved.
pub struct Watched<T> {
    pub io: T,
    pub activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Raises the open-file limit to its hard maximum, so the connection cap, not the kernel,
/// decides when to turn clients away. Returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 1024,
    }
}

/// A connection cap that leaves room for the store, runs' pipes and log files.
pub fn default_cap(fd_limit: u64) -> usize {
    (fd_limit.saturating_sub(256) / 2).clamp(64, 10_000) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_idlest_connection_makes_room_unless_all_are_busy() {
        let conns = Arc::new(Connections::new(2));
        let (a, _ra) = conns.admit().unwrap();
        let (b, _rb) = conns.admit().unwrap();
        let _busy = b.request();
        let (_c, _rc) = conns.admit().expect("the idle one made room");
        assert!(a.close.is_cancelled(), "the idle connection was closed");
        let _busy_c = _c.request();
        assert!(conns.admit().is_none(), "every connection is busy");
        drop(_rb);
        assert_eq!(conns.open.lock().unwrap().len(), 1);
    }
}
