//! What every Server-Sent Events answer shares: a task writing framed events into a bounded
//! channel until the client goes away or the server closes, and headers that keep caches and
//! proxies from holding the stream back.
//!
//! The task runs the producer alone: the body ends when the server closes, and the producer
//! stops once its receiver is gone. A `select!` of the producer and the shutdown signal in the
//! task would keep a second copy of the producer's state there, doubling what every open
//! stream holds for its whole life.

use std::convert::Infallible;
use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

/// Answers with the events `produce` sends; at most `buffer` chunks wait for a slow client,
/// which holds back only its own stream.
pub fn response<F>(
    closing: CancellationToken,
    buffer: usize,
    produce: impl FnOnce(mpsc::Sender<Bytes>) -> F,
) -> Response
where
    F: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Bytes>(buffer);
    tokio::spawn(produce(tx));
    let body = Body::from_stream(
        ReceiverStream::new(rx)
            .take_until(closing.cancelled_owned())
            .map(Ok::<_, Infallible>),
    );
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            // `no-transform`: a proxy must not compress (and so hold back) the stream.
            (header::CACHE_CONTROL, "no-cache, no-transform"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response()
}
