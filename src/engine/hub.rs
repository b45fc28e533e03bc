//! Live fan-out of a run's events to the streams watching it. Only events already written to
//! the store are published, so a subscriber that falls behind re-reads the store instead of
//! the hub holding more.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use crate::domain::{LogLine, RunStatus};

/// Batches in flight per run; with batches capped in size this bounds memory per run.
const CAPACITY: usize = 16;

#[derive(Debug, Clone)]
pub enum HubEvent {
    Lines(Arc<[LogLine]>),
    Status(RunStatus, DateTime<Utc>),
    Done,
}

#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<String, broadcast::Sender<HubEvent>>>,
}

impl Hub {
    /// The sender for a run, created on first use.
    pub fn open(&self, run_id: &str) -> broadcast::Sender<HubEvent> {
        let mut map = self.channels.lock().expect("hub lock");
        map.entry(run_id.to_string())
            .or_insert_with(|| broadcast::channel(CAPACITY).0)
            .clone()
    }

    /// A receiver if the run is live on this node.
    pub fn subscribe(&self, run_id: &str) -> Option<broadcast::Receiver<HubEvent>> {
        let map = self.channels.lock().expect("hub lock");
        map.get(run_id).map(broadcast::Sender::subscribe)
    }

    /// Publishes `Done` and forgets the run.
    pub fn close(&self, run_id: &str) {
        let sender = self.channels.lock().expect("hub lock").remove(run_id);
        if let Some(tx) = sender {
            let _ = tx.send(HubEvent::Done);
        }
    }

    pub fn subscriber_count(&self) -> usize {
        let map = self.channels.lock().expect("hub lock");
        map.values().map(broadcast::Sender::receiver_count).sum()
    }
}
