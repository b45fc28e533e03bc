//! The accept loop. axum's `serve` sets no timer, so hyper cannot time out a client that
//! sends its headers slowly (slow loris); this loop configures hyper directly: a header read
//! timeout, a bounded header buffer, TCP_NODELAY for live output, the client address for the
//! handlers, idle connections closed and open ones capped (see `conn`), and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1::Builder;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::conn::{default_cap, raise_fd_limit, Connections, Watched};

/// Largest request head (request line and headers) accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long open connections get to finish after shutdown begins.
const DRAIN: Duration = Duration::from_secs(10);
/// Repeated accept failures are logged at most this often.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);

/// How long connections may sit, and how many may be open.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// To send a request's head, and for a new connection to start its first request.
    pub header_timeout: Duration,
    /// Between requests on a kept-alive connection.
    pub keep_alive_idle: Duration,
    /// Open connections; `None` derives it from the open-file limit.
    pub max_connections: Option<usize>,
}

pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    closing: CancellationToken,
) {
    let fd_limit = raise_fd_limit();
    let cap = limits
        .max_connections
        .unwrap_or_else(|| default_cap(fd_limit));
    tracing::debug!(fd_limit, max_connections = cap, "connection limits");
    let connections = Arc::new(Connections::new(cap));
    // HTTP/1.1 only: nothing here needs HTTP/2 in clear text, and an h2c connection could
    // otherwise idle past every HTTP/1 timer. hyper's HTTP/1 connection is served directly,
    // not through hyper-util's version-sniffing one: the bytes that sniff reads are handed back
    // to hyper as a first short read, which makes hyper grow its 8 KiB read buffer to 16 KiB
    // on every connection (most of it copied, so resident), a subscriber's largest cost.
    let mut builder = Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let graceful = GracefulShutdown::new();
    let mut backoff = Duration::from_millis(10);
    let mut last_warning: Option<Instant> = None;
    loop {
        let (tcp, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, and say so once in a
                    // while rather than on every attempt.
                    if last_warning.is_none_or(|t| t.elapsed() >= ACCEPT_WARN_EVERY) {
                        tracing::warn!(error = %e, "accept failed; backing off (repeats are not logged for 10 s)");
                        last_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            _ = closing.cancelled() => break,
        };
        backoff = Duration::from_millis(10);
        let Some((activity, registered)) = connections.admit() else {
            // Every open connection is in the middle of a request: turn this one away.
            drop(tcp);
            continue;
        };
        // Live output is many small writes: without TCP_NODELAY, Nagle's algorithm holds them
        // back for tens of milliseconds.
        let _ = tcp.set_nodelay(true);
        let service = {
            let router = router.clone();
            let activity = activity.clone();
            tower::service_fn(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(addr));
                let in_flight = activity.request();
                let router = router.clone();
                async move {
                    let response = router.oneshot(req).await;
                    drop(in_flight);
                    response
                }
            })
        };
        let io = Watched {
            io: tcp,
            activity: activity.clone(),
        };
        let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _registered = registered;
            tokio::select! {
                _ = conn => {}
                _ = activity.closed(limits.header_timeout, limits.keep_alive_idle) => {}
            }
        });
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after the drain period");
    }
}
