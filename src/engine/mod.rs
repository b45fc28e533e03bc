//! The run engine. A start request becomes a `queued` run in the store; every node claims
//! queued runs while it has capacity (`queue`), executes them under supervision (`execute`),
//! keeps leases on them (`lease`) and tells the other nodes what changed through the store's
//! feed, so that queueing, concurrency rules, cancels and live output hold across nodes. It
//! knows nothing of HTTP.

mod active;
mod config;
mod context;
mod execute;
mod hub;
pub mod isolate;
pub mod launcher;
mod lease;
mod leftovers;
mod logs;
mod mask;
mod output;
mod process;
mod pty;
mod queue;
pub mod supervise;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::{Run, RunStatus, ScriptDefinition, Trigger};
use crate::metrics::Metrics;
use crate::store::{CancelRequest, DynFeed, DynStore, Owner, Signal, StoreError};
use active::Active;

pub use config::EngineConfig;

/// A run's status changed.
#[derive(Debug, Clone)]
pub struct RunEvent {
    pub run_id: String,
    pub status: RunStatus,
}

/// Status changes kept for a slow reader of `run_events` before it lags.
const RUN_EVENTS_BUFFER: usize = 1024;
pub use context::RunContext;
pub use hub::{Hub, HubEvent, LiveLines, Subscription};
pub use mask::Masker;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the script is disabled")]
    ScriptDisabled,
    #[error("the {0} runner is not allowed on this server")]
    RunnerNotAllowed(&'static str),
    #[error("the script is already running")]
    AlreadyRunning,
    #[error("too many runs are waiting in the queue")]
    QueueFull,
    #[error("the script was edited while the run was being started")]
    DefinitionChanged,
    #[error("browser scripts run only in the admin page")]
    BrowserScript,
    #[error("the run has already finished")]
    AlreadyFinished,
    #[error("run not found")]
    RunNotFound,
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Input(crate::domain::ValidationError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A request to run a script.
pub struct RunRequest {
    pub script: ScriptDefinition,
    pub trigger: Trigger,
    pub meta: serde_json::Value,
    pub input: Option<serde_json::Value>,
    /// Who starts it, for the audit log.
    pub author: crate::domain::Author,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: DynStore,
    feed: DynFeed,
    metrics: Arc<Metrics>,
    config: EngineConfig,
    /// This process's claim on the runs it executes.
    owner: Owner,
    hub: Hub,
    /// When this process started, as its heartbeats say.
    started_at: chrono::DateTime<Utc>,
    /// Every run's status changes, whichever node made them, for the pages that list runs.
    run_events: broadcast::Sender<RunEvent>,
    active: Active,
    launcher: Arc<launcher::Launcher>,
    isolates: Arc<isolate::Spares>,
    /// Runs finished per script since its runs were last pruned here.
    prune_due: std::sync::Mutex<std::collections::HashMap<String, u32>>,
    /// The definitions of scripts run here lately, each at the version it was read at; a
    /// claim says a script's current version, so a run of an unchanged script reads nothing.
    definitions: std::sync::Mutex<std::collections::HashMap<String, ScriptDefinition>>,
    /// Whether a queued run may be waiting for a due time (a retry), so the claim loop must
    /// ask the store when to wake: set when this node queues a retry or another node queues
    /// anything, cleared when the store has none.
    deferred: std::sync::atomic::AtomicBool,
    /// Whether this node's last claim found fewer eligible runs than it had room for, with no
    /// claim begun since: then a run ending here frees room nobody is waiting for.
    drained: std::sync::atomic::AtomicBool,
    tasks: TaskTracker,
    /// Wakes the claim loop: work appeared or capacity freed up.
    work: Notify,
    /// Wakes the scheduler: a schedule changed here or on another node.
    schedules: Arc<Notify>,
    /// Wakes this node's notifier when notifications are queued here.
    deliveries: Arc<Notify>,
}

impl Engine {
    /// Starts the engine, first failing the runs this node was running when its previous
    /// process stopped. Queued runs are left for any node.
    pub async fn start(
        store: DynStore,
        config: EngineConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, EngineError> {
        let owner = Owner {
            node_id: config.node_id.clone(),
            lease: uuid::Uuid::now_v7().to_string(),
        };
        let exe = config.supervisor_exe.clone();
        let launcher = Arc::new(launcher::Launcher::new(
            exe.clone(),
            launcher::Role::Scripts,
        ));
        let engine = Self {
            inner: Arc::new(Inner {
                feed: store.feed(),
                store,
                metrics,
                config,
                owner,
                hub: Hub::default(),
                run_events: broadcast::channel(RUN_EVENTS_BUFFER).0,
                started_at: Utc::now(),
                active: Active::default(),
                isolates: isolate::Spares::new(launcher::Launcher::new(
                    exe,
                    launcher::Role::IsolatedWorkers,
                )),
                launcher,
                prune_due: Default::default(),
                definitions: Default::default(),
                deferred: std::sync::atomic::AtomicBool::new(true),
                drained: std::sync::atomic::AtomicBool::new(false),
                tasks: TaskTracker::new(),
                work: Notify::new(),
                schedules: Arc::new(Notify::new()),
                deliveries: Arc::new(Notify::new()),
            }),
        };
        engine.recover().await?;
        Ok(engine)
    }

    /// This node's identity, as its runs record it.
    pub fn node_id(&self) -> &str {
        &self.inner.owner.node_id
    }

    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// Status changes of every run (queued, running, ended), from this node and the others.
    /// A receiver that falls behind gets `Lagged` and should re-read what it shows.
    pub fn run_events(&self) -> broadcast::Receiver<RunEvent> {
        self.inner.run_events.subscribe()
    }

    /// The sandbox layers this node's isolated workers get (see `isolate::Spares`).
    pub async fn isolation_layers(&self) -> Option<isolate::IsolationLayers> {
        self.inner.isolates.probe_layers().await
    }

    /// What wakes the notifier when this node queues notifications.
    pub fn delivery_wake(&self) -> Arc<Notify> {
        self.inner.deliveries.clone()
    }

    /// Queues the notifications of a run that ended as `status` for the script's webhooks
    /// that asked for them. Never fails the run: a store error is logged.
    pub(crate) async fn queue_notifications(
        &self,
        script: &ScriptDefinition,
        run_id: &str,
        status: RunStatus,
    ) {
        if script.notifications.is_empty() {
            return;
        }
        let previous = match status {
            RunStatus::Succeeded => {
                match self.inner.store.previous_outcome(&script.id, run_id).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(run_id, error = %e, "could not read the previous run: a recovery may go unnoticed");
                        None
                    }
                }
            }
            _ => None,
        };
        let events = crate::domain::webhook::events_for(status, previous);
        let now = crate::store::rows_time(Utc::now());
        let deliveries: Vec<crate::store::Delivery> = script
            .notifications
            .iter()
            .flat_map(|hook| {
                events
                    .iter()
                    .filter(|e| hook.on.contains(e))
                    .map(move |e| crate::store::Delivery {
                        id: uuid::Uuid::now_v7().to_string(),
                        run_id: run_id.to_string(),
                        script_id: script.id.clone(),
                        event: e.as_str().to_string(),
                        url: hook.url.clone(),
                        status: "pending".into(),
                        attempts: 0,
                        next_at: now,
                        response: None,
                        error: None,
                        created_at: now,
                        updated_at: now,
                    })
            })
            .collect();
        if deliveries.is_empty() {
            return;
        }
        match self.inner.store.enqueue_deliveries(&deliveries).await {
            Ok(()) => self.inner.deliveries.notify_one(),
            Err(e) => tracing::warn!(run_id, error = %e, "could not queue the run's notifications"),
        }
    }

    /// What wakes the scheduler when schedules change, here or on another node.
    pub fn schedule_wake(&self) -> Arc<Notify> {
        self.inner.schedules.clone()
    }

    /// A schedule was edited: the schedulers of every node re-read them now.
    pub fn schedules_changed(&self) {
        let engine = self.clone();
        tokio::spawn(async move { engine.announce(Signal::Schedules).await });
    }

    /// Acts on a signal here and tells the other nodes.
    async fn announce(&self, signal: Signal) {
        self.apply(&signal);
        self.inner.feed.publish(&signal).await;
    }

    /// What a signal means on this node, whichever node sent it.
    fn apply(&self, signal: &Signal) {
        let inner = &self.inner;
        match signal {
            Signal::Work => inner.work.notify_one(),
            // A queued run is work too; its signal doubles as the one to claim it.
            Signal::Status {
                run_id,
                status: RunStatus::Queued,
            } => {
                inner.work.notify_one();
                let _ = inner.run_events.send(RunEvent {
                    run_id: run_id.clone(),
                    status: RunStatus::Queued,
                });
            }
            Signal::Schedules => inner.schedules.notify_one(),
            Signal::Cancel { run_id } => inner.active.cancel(run_id),
            Signal::Lines { run_id, to_seq } => {
                inner.hub.publish(run_id, HubEvent::Stored(*to_seq))
            }
            Signal::Status { run_id, status } => {
                inner
                    .hub
                    .publish(run_id, HubEvent::Status(*status, Utc::now()));
                let _ = inner.run_events.send(RunEvent {
                    run_id: run_id.clone(),
                    status: *status,
                });
            }
            Signal::Resync => {
                inner.deferred.store(true, Ordering::SeqCst);
                inner.work.notify_one();
                inner.schedules.notify_one();
            }
        }
    }

    /// Applies the other nodes' signals until `closing`. With one node there are none.
    pub async fn follow_feed(&self, closing: CancellationToken) {
        let Some(mut rx) = self.inner.feed.subscribe() else {
            return;
        };
        loop {
            let signal = tokio::select! {
                s = rx.recv() => s,
                _ = closing.cancelled() => return,
            };
            match signal {
                Ok(s) => {
                    // Another node's queued run may be a retry waiting for its time; this
                    // node's own are known where they are made.
                    if matches!(
                        s,
                        Signal::Status {
                            status: RunStatus::Queued,
                            ..
                        }
                    ) {
                        self.inner.deferred.store(true, Ordering::SeqCst);
                    }
                    self.apply(&s)
                }
                // Too far behind: whatever was dropped is re-read through the fallbacks.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    self.apply(&Signal::Resync)
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Cancels a queued or running run, wherever it runs.
    pub async fn cancel(
        &self,
        run_id: &str,
        author: &crate::domain::Author,
    ) -> Result<(), EngineError> {
        let audit = author.entry(
            crate::domain::Action::RunCancel,
            crate::domain::audit::run_target(run_id),
            serde_json::json!({}),
        );
        match self
            .inner
            .store
            .request_cancel(run_id, Utc::now(), &audit)
            .await?
        {
            CancelRequest::Canceled => {
                // Rare enough that reading the run back for its trigger costs nothing.
                if let Ok(run) = self.inner.store.get_run(run_id).await {
                    self.inner
                        .metrics
                        .run_finished(RunStatus::Canceled, run.trigger, None);
                }
                self.announce(Signal::Status {
                    run_id: run_id.to_string(),
                    status: RunStatus::Canceled,
                })
                .await;
                Ok(())
            }
            CancelRequest::Requested => {
                self.announce(Signal::Cancel {
                    run_id: run_id.to_string(),
                })
                .await;
                Ok(())
            }
            CancelRequest::Finished => Err(EngineError::AlreadyFinished),
            CancelRequest::NotFound => Err(EngineError::RunNotFound),
        }
    }

    /// Cancels every queued and running run of a script (before it is deleted), and waits a
    /// bounded time for the running ones to be recorded, on whichever node they run.
    pub async fn cancel_script(&self, script_id: &str) -> Result<(), EngineError> {
        let (queued, running) = self
            .inner
            .store
            .cancel_script_runs(script_id, Utc::now())
            .await?;
        for run_id in queued {
            self.announce(Signal::Status {
                run_id,
                status: RunStatus::Canceled,
            })
            .await;
        }
        if running.is_empty() {
            return Ok(());
        }
        for run_id in running {
            self.announce(Signal::Cancel { run_id }).await;
        }
        let deadline =
            tokio::time::Instant::now() + self.inner.config.kill_grace + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline {
            if self.inner.store.active_runs(script_id).await? == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Stops claiming, stops the runs executing here and waits for them to be recorded.
    /// Queued runs stay queued for any node (or for this one's next start).
    pub async fn shutdown(&self) {
        self.inner.active.close();
        self.inner.tasks.close();
        let bound = self.inner.config.kill_grace + Duration::from_secs(10);
        if tokio::time::timeout(bound, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some runs did not finish recording before shutdown");
        }
    }

    /// The run once it has finished, or as it is when `bound` runs out.
    pub async fn wait_finished(&self, run_id: &str, bound: Duration) -> Result<Run, EngineError> {
        let deadline = tokio::time::Instant::now() + bound;
        let mut live = self.inner.hub.subscribe(run_id);
        loop {
            let run = self.inner.store.get_run(run_id).await?;
            if run.status.is_terminal() || tokio::time::Instant::now() >= deadline {
                return Ok(run);
            }
            // The re-read is the fallback should a signal be lost.
            let tick = tokio::time::sleep_until(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(500)),
            );
            tokio::select! {
                _ = live.recv() => {}
                _ = tick => {}
            }
        }
    }

    /// Runs executing on this node, and runs waiting in the queue (all nodes).
    pub async fn load(&self) -> (usize, i64) {
        let queued = self.inner.store.queued_runs().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not count queued runs");
            0
        });
        (self.inner.active.len(), queued)
    }
}
