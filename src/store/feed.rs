//! How the nodes sharing a store tell each other what changed, so none has to poll: a run was
//! queued, a cancel was asked, lines were stored, a run changed status. Signals carry ids and
//! sequence numbers only; the data itself is always read from the store.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::domain::RunStatus;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// A run was queued, or a run ended and may have freed the way for another: try to claim.
    Work,
    /// A schedule was edited.
    Schedules,
    /// Stop this run if you run it.
    Cancel {
        run_id: String,
    },
    /// The run's lines up to `to_seq` are stored.
    Lines {
        run_id: String,
        to_seq: i64,
    },
    Status {
        run_id: String,
        status: RunStatus,
    },
    /// Signals may have been lost (the connection dropped): re-read what matters.
    Resync,
}

#[async_trait]
pub trait Feed: Send + Sync {
    /// Tells the other nodes. A failure is logged, not returned: every signal has a slower
    /// fallback (lease renewals, the claim poll, the streams' safety re-read).
    async fn publish(&self, signal: &Signal);
    /// Signals from the other nodes, never this node's own; `None` when no other node can
    /// share the store.
    fn subscribe(&self) -> Option<broadcast::Receiver<Signal>>;
}

pub type DynFeed = Arc<dyn Feed>;

/// The feed of a store only one node can use (SQLite): everything happens in this process.
pub struct SingleNode;

#[async_trait]
impl Feed for SingleNode {
    async fn publish(&self, _: &Signal) {}

    fn subscribe(&self) -> Option<broadcast::Receiver<Signal>> {
        None
    }
}
