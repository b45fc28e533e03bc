//! Every run's status changes as Server-Sent Events, whichever node made them: what keeps an
//! open history, the dashboard and run lists current without polling.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use utoipa::ToSchema;

use super::state::AppState;
use super::views::RunView;
use crate::domain::RunStatus;
use crate::engine::RunEvent;
use crate::error::ErrorBody;

const HEARTBEAT: Duration = Duration::from_secs(15);

/// The data of a `run` event.
#[derive(Serialize, ToSchema)]
pub struct RunChange {
    /// What the run moved to.
    #[schema(value_type = RunStatus)]
    status: &'static str,
    /// The run as read just after, without its output tail.
    run: RunView,
}

/// Run events (Server-Sent Events)
///
/// One `run` event each time a run is queued, starts or ends, on any node (a run its admission
/// started at once, on a node with a free slot, is never queued); its data is a
/// `RunChange`: the status it moved to, and the run as read just after (by then it may have
/// moved on). A client that fell behind gets a `resync` event (no data) and should re-read
/// what it shows. Comment lines (`: ping`) keep an idle connection open. The stream does not
/// end by itself.
#[utoipa::path(get, path = "/api/admin/scripts/events", operation_id = "runEvents", tag = "runs",
    responses(
        (status = 200, description = "The event stream", body = String,
            content_type = "text/event-stream",
            example = "retry: 1000\n\nevent: run\ndata: {\"status\":\"running\",\"run\":{\"id\":\"019a5f1d-0c41-7a3e-b2f0-6d9e4c8a1b27\",\"scriptId\":\"019a5f0c-3b7e-7d21-9a4c-5e0f2b1c7d88\",\"status\":\"running\",\"trigger\":\"api\",…}}\n\n"),
        (status = 401, description = "Admin credentials missing or wrong", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this client", body = ErrorBody),
    ),
    security(("basicAuth" = [])))]
pub async fn run_events(State(state): State<AppState>) -> Response {
    let events = state.engine.run_events();
    let store = state.store.clone();
    super::sse::response(state.closing.clone(), 16, |tx| forward(events, store, tx))
}

/// Sends each event with the run as it now is, until the client goes away.
async fn forward(
    mut events: broadcast::Receiver<RunEvent>,
    store: crate::store::DynStore,
    tx: mpsc::Sender<Bytes>,
) {
    if tx
        .send(Bytes::from_static(b"retry: 1000\n\n"))
        .await
        .is_err()
    {
        return;
    }
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(HEARTBEAT, events.recv()) => next,
            _ = tx.closed() => return,
        };
        let frame = match next {
            Err(_) => Bytes::from_static(b": ping\n\n"),
            Ok(Ok(event)) => match store.get_run(&event.run_id).await {
                Ok(run) => {
                    let change = RunChange {
                        status: event.status.as_str(),
                        run: RunView::summary(&run),
                    };
                    let data = serde_json::to_string(&change).unwrap_or_default();
                    Bytes::from(format!("event: run\ndata: {data}\n\n"))
                }
                // Deleted with its script since: nothing to show.
                Err(_) => continue,
            },
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                Bytes::from_static(b"event: resync\ndata: \n\n")
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => return,
        };
        if tx.send(frame).await.is_err() {
            return;
        }
    }
}
