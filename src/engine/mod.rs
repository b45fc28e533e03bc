//! The run engine: takes run requests, queues them under the concurrency rules, supervises
//! each run through its runner, records what happened and fans output out to live streams.
//! It knows nothing of HTTP.

mod config;
mod context;
mod hub;
pub mod isolate;
mod logs;
mod mask;
mod output;
mod process;
mod slots;
pub mod supervise;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::FutureExt;
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::{
    Concurrency, Run, RunOutcome, RunStatus, Runner, ScriptDefinition, ScriptType, Trigger,
};
use crate::metrics::Metrics;
use crate::store::{DynStore, RunFinish, StoreError};
use slots::{Pending, Slots};

pub use config::EngineConfig;
pub use context::RunContext;
pub use hub::{Hub, HubEvent};
pub use mask::Masker;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the script is disabled")]
    ScriptDisabled,
    #[error("the script is already running")]
    AlreadyRunning,
    #[error("browser scripts run only in the admin page")]
    BrowserScript,
    #[error("the run has already finished")]
    AlreadyFinished,
    #[error("run not found")]
    RunNotFound,
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A request to run a script.
pub struct RunRequest {
    pub script: ScriptDefinition,
    pub trigger: Trigger,
    pub meta: serde_json::Value,
    pub input: Option<serde_json::Value>,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: DynStore,
    metrics: Arc<Metrics>,
    config: EngineConfig,
    hub: Hub,
    slots: Mutex<Slots>,
    tasks: TaskTracker,
}

impl Engine {
    /// Starts the engine, first marking failed whatever a previous process of this node left
    /// unfinished.
    pub async fn start(
        store: DynStore,
        config: EngineConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, EngineError> {
        let orphaned = store
            .fail_unfinished_runs(
                &config.node_id,
                "scriptd stopped (crash or kill) while this run was queued or running",
                Utc::now(),
            )
            .await?;
        if orphaned > 0 {
            tracing::warn!(
                count = orphaned,
                "marked runs left unfinished by a previous process as failed"
            );
        }
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                metrics,
                config,
                hub: Hub::default(),
                slots: Mutex::new(Slots::default()),
                tasks: TaskTracker::new(),
            }),
        })
    }

    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// The executable providing the hidden `__supervise` and `__isolate` subcommands.
    pub fn helper_exe(&self) -> &std::path::Path {
        &self.inner.config.supervisor_exe
    }

    /// Records a run as `queued` and starts it when the concurrency rules allow.
    pub async fn submit(&self, req: RunRequest) -> Result<String, EngineError> {
        if req.script.script_type == ScriptType::Browser || req.script.runner == Runner::Browser {
            return Err(EngineError::BrowserScript);
        }
        if !req.script.enabled {
            return Err(EngineError::ScriptDisabled);
        }
        let mut slots = self.inner.slots.lock().await;
        if slots.closed {
            return Err(EngineError::ShuttingDown);
        }
        let script_id = req.script.id.clone();
        if req.script.concurrency == Concurrency::Single && slots.is_busy(&script_id) {
            return Err(EngineError::AlreadyRunning);
        }
        let run = Run {
            id: uuid::Uuid::now_v7().to_string(),
            script_id,
            status: RunStatus::Queued,
            trigger: req.trigger,
            meta: req.meta,
            input: req.input.clone(),
            queued_at: Utc::now(),
            started_at: None,
            finished_at: None,
            exit_code: None,
            signal: None,
            error: None,
            output_tail: String::new(),
            result: None,
            log_bytes: 0,
            log_truncated: false,
        };
        self.inner
            .store
            .insert_run(&run, &self.inner.config.node_id)
            .await?;
        self.inner.hub.open(&run.id);
        self.inner.metrics.run_submitted(req.trigger);
        slots.enqueue(Pending {
            run_id: run.id.clone(),
            script: req.script,
            trigger: req.trigger,
            input: req.input,
        });
        self.pump(&mut slots);
        Ok(run.id)
    }

    /// Starts every pending run the limits allow, in order.
    fn pump(&self, slots: &mut Slots) {
        for (p, token) in slots.take_ready(self.inner.config.max_concurrent_runs) {
            let engine = self.clone();
            self.inner
                .tasks
                .spawn(async move { engine.execute(p, token).await });
        }
    }

    /// Runs one script to its end and frees its slot, whatever happens inside.
    async fn execute(self, p: Pending, cancel: CancellationToken) {
        let run_id = p.run_id.clone();
        let script_id = p.script.id.clone();
        let ran = std::panic::AssertUnwindSafe(self.run_one(p, cancel))
            .catch_unwind()
            .await;
        if ran.is_err() {
            tracing::error!(run_id = %run_id, "run supervision panicked");
            self.record_end(
                &run_id,
                RunOutcome::failed("internal error while supervising the run"),
                Default::default(),
            )
            .await;
        }
        let mut slots = self.inner.slots.lock().await;
        slots.release(&run_id, &script_id);
        if !slots.closed {
            self.pump(&mut slots);
        }
        drop(slots);
        match self
            .inner
            .store
            .prune_runs(&script_id, self.inner.config.keep_runs)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(script_id = %script_id, pruned = n, "pruned old runs"),
            Err(e) => {
                tracing::warn!(script_id = %script_id, error = %e, "could not prune old runs")
            }
        }
    }

    #[tracing::instrument(skip_all, fields(run_id = %p.run_id, script = %p.script.code_identifier))]
    async fn run_one(&self, p: Pending, cancel: CancellationToken) {
        let store = &self.inner.store;
        let started = Utc::now();
        match store.mark_running(&p.run_id, started).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                self.record_end(
                    &p.run_id,
                    RunOutcome::failed(format!("could not start: {e}")),
                    Default::default(),
                )
                .await;
                return;
            }
        }
        let hub_tx = self.inner.hub.open(&p.run_id);
        let _ = hub_tx.send(HubEvent::Status(RunStatus::Running, started));
        tracing::info!(trigger = p.trigger.as_str(), "run started");

        let (tx, rx) = mpsc::channel(32);
        let masker = Masker::new(p.script.secret_values());
        let sink = logs::LogSink::new(
            p.run_id.clone(),
            store.clone(),
            hub_tx,
            masker.clone(),
            self.inner.config.max_log_bytes,
        );
        let sink_task = tokio::spawn(sink.run(rx));
        let ctx = RunContext {
            env: self.child_env(&p),
            run_id: p.run_id.clone(),
            timeout: Duration::from_millis(p.script.timeout_ms.max(1) as u64),
            kill_grace: self.inner.config.kill_grace,
            supervisor_exe: self.inner.config.supervisor_exe.clone(),
            trigger: p.trigger,
            input: p.input,
            script: p.script,
            cancel,
            masker,
        };
        let (outcome, result) = match ctx.script.runner {
            Runner::Host => (process::run(&ctx, tx).await, None),
            Runner::Isolated => {
                let mb = ctx
                    .script
                    .memory_limit_mb
                    .map_or(self.inner.config.isolate_memory_mb, |m| m as u64);
                isolate::run(&ctx, tx, mb as usize * 1024 * 1024).await
            }
            Runner::Browser => {
                drop(tx);
                (
                    RunOutcome::failed("browser scripts run only in the admin page"),
                    None,
                )
            }
        };
        let summary = sink_task.await.unwrap_or_default();
        tracing::info!(status = outcome.status.as_str(), exit_code = ?outcome.exit_code, "run ended");
        self.record_end_with(&ctx.run_id, outcome, summary, result)
            .await;
    }

    async fn record_end(&self, run_id: &str, outcome: RunOutcome, summary: logs::LogSummary) {
        self.record_end_with(run_id, outcome, summary, None).await;
    }

    async fn record_end_with(
        &self,
        run_id: &str,
        outcome: RunOutcome,
        summary: logs::LogSummary,
        result: Option<serde_json::Value>,
    ) {
        let finish = RunFinish {
            finished_at: Utc::now(),
            outcome,
            output_tail: summary.tail,
            result,
            log_bytes: summary.stored_bytes,
            log_truncated: summary.truncated,
        };
        match self.inner.store.finish_run(run_id, &finish).await {
            Ok(true) => self.inner.metrics.run_finished(finish.outcome.status),
            Ok(false) => {}
            Err(e) => tracing::error!(run_id, error = %e, "could not record the end of a run"),
        }
        // Streams read the final status from the store once they see `Done`.
        self.inner.hub.close(run_id);
    }

    /// The child's environment: the server's (minus scriptd's settings), unbuffered-output
    /// hints, the script's own variables, then the run's identity.
    fn child_env(&self, p: &Pending) -> Vec<(String, String)> {
        let mut env: BTreeMap<String, String> =
            self.inner.config.base_env.iter().cloned().collect();
        // Programs that buffer when stdout is a pipe would hold back live output.
        env.insert("PYTHONUNBUFFERED".into(), "1".into());
        for var in &p.script.env {
            env.insert(var.key.clone(), var.value.clone());
        }
        env.insert("SCRIPTD_RUN_ID".into(), p.run_id.clone());
        env.insert("SCRIPTD_SCRIPT_ID".into(), p.script.id.clone());
        env.insert("SCRIPTD_TRIGGER".into(), p.trigger.as_str().into());
        if let Some(input) = &p.input {
            env.insert("SCRIPTD_INPUT".into(), input.to_string());
        }
        env.into_iter().collect()
    }

    /// Cancels a queued or running run.
    pub async fn cancel(&self, run_id: &str) -> Result<(), EngineError> {
        let mut slots = self.inner.slots.lock().await;
        if slots.remove_pending(run_id) {
            drop(slots);
            self.record_end(run_id, canceled(None), Default::default())
                .await;
            return Ok(());
        }
        if slots.cancel_active(run_id) {
            return Ok(());
        }
        drop(slots);
        let run = self
            .inner
            .store
            .get_run(run_id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => EngineError::RunNotFound,
                other => EngineError::Store(other),
            })?;
        if run.status.is_terminal() {
            return Err(EngineError::AlreadyFinished);
        }
        // Unfinished in the store but not live here: its node is gone or it is elsewhere.
        self.record_end(
            run_id,
            canceled(Some("canceled while not active on this node")),
            Default::default(),
        )
        .await;
        Ok(())
    }

    /// Cancels every queued and running run of a script (before it is deleted).
    pub async fn cancel_script(&self, script_id: &str) {
        let dropped = self.inner.slots.lock().await.cancel_script(script_id);
        for p in dropped {
            self.record_end(
                &p.run_id,
                canceled(Some("script deleted")),
                Default::default(),
            )
            .await;
        }
        // Wait for the runs to be recorded so nothing writes after the script is gone.
        let deadline =
            tokio::time::Instant::now() + self.inner.config.kill_grace + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline {
            if !self.inner.slots.lock().await.has_active(script_id) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops taking runs, cancels queued and running ones, and waits for them to be recorded.
    pub async fn shutdown(&self) {
        let pending = self.inner.slots.lock().await.close();
        for p in pending {
            self.record_end(
                &p.run_id,
                canceled(Some("server shutting down")),
                Default::default(),
            )
            .await;
        }
        self.inner.tasks.close();
        let bound = self.inner.config.kill_grace + Duration::from_secs(10);
        if tokio::time::timeout(bound, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some runs did not finish recording before shutdown");
        }
    }

    /// Renews this node's lease on its unfinished runs and fails the runs of nodes whose lease
    /// ran out (they died mid-run), until `closing`. With one node this only keeps its own
    /// leases fresh.
    pub async fn keep_leases(&self, closing: CancellationToken) {
        let lease = self.inner.config.run_lease;
        let mut tick = tokio::time::interval((lease / 6).max(Duration::from_millis(100)));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = closing.cancelled() => return,
            }
            let store = &self.inner.store;
            let now = Utc::now();
            if let Err(e) = store.heartbeat(&self.inner.config.node_id, now).await {
                tracing::warn!(error = %e, "could not renew run leases");
            }
            let cutoff = now - chrono::Duration::from_std(lease).unwrap_or_default();
            let error = "its node stopped (no heartbeat within the run lease)";
            match store
                .fail_expired_runs(&self.inner.config.node_id, cutoff, error, now)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::warn!(count = n, "marked runs of a vanished node as failed"),
                Err(e) => tracing::warn!(error = %e, "could not check run leases"),
            }
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
            let tick = tokio::time::sleep_until(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(250)),
            );
            match live.as_mut() {
                Some(rx) => {
                    tokio::select! {
                        event = rx.recv() => if event.is_err() { live = None },
                        _ = tick => {}
                    }
                }
                None => tick.await,
            }
        }
    }

    /// Runs currently holding a slot, and runs waiting for one.
    pub async fn load(&self) -> (usize, usize) {
        self.inner.slots.lock().await.load()
    }
}

fn canceled(error: Option<&str>) -> RunOutcome {
    RunOutcome {
        status: RunStatus::Canceled,
        exit_code: None,
        signal: None,
        error: error.map(str::to_string),
    }
}
