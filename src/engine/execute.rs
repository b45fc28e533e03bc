//! Executing a claimed run: its runner under supervision, its output into the store and out
//! to watchers, and its end recorded, fenced by this node's lease.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::context::RunContext;
use super::logs::{LogSink, LogSummary};
use super::{isolate, process, Engine, HubEvent, Masker};
use crate::domain::{
    Attempt, Concurrency, Run, RunOutcome, RunStatus, Runner, ScriptDefinition, Trigger,
};
use crate::metrics::StoreCall;
use crate::store::{Claimed, Ended, RetryRun, RunFinish, Signal};

/// How many scripts' definitions a node holds for their next runs.
const HELD_DEFINITIONS: usize = 256;

/// The run that retries `run_id` after it ended with `outcome`, if the script's policy asks for
/// one: the same trigger and input, `meta.retry` naming the chain's first run and the attempt,
/// due after the policy's wait.
fn plan_retry(
    run_id: &str,
    meta: &serde_json::Value,
    trigger: Trigger,
    ctx: &RunContext,
    outcome: &RunOutcome,
) -> Option<RetryRun> {
    let current = meta
        .get("retry")
        .and_then(|r| serde_json::from_value::<Attempt>(r.clone()).ok())
        .unwrap_or_else(|| Attempt {
            of: run_id.to_string(),
            attempt: 1,
            attempts: 1,
        });
    let policy = &ctx.script.retry;
    let next = policy.next_attempt(&current, outcome)?;
    let mut meta = meta.clone();
    let run = Run::queued(
        &ctx.script.id,
        trigger,
        serde_json::Value::Null,
        ctx.input.clone(),
    );
    let due = run.queued_at
        + chrono::Duration::from_std(policy.jittered_delay_before(next.attempt))
            .unwrap_or_default();
    if let Some(m) = meta.as_object_mut() {
        let mut retry = serde_json::to_value(&next).unwrap_or_default();
        retry["dueAt"] = crate::domain::timestamp(due).into();
        retry["after"] = run_id.into();
        m.insert("retry".into(), retry);
    }
    let audit = crate::domain::Author::server("retry").entry(
        crate::domain::Action::RunStart,
        crate::domain::audit::run_target(&run.id),
        serde_json::json!({
            "script": ctx.script.code_identifier.as_str(),
            "version": ctx.script.version,
            "trigger": trigger.as_str(),
            "retryOf": current.of,
            "attempt": next.attempt,
        }),
    );
    Some(RetryRun {
        audit,
        run: Run {
            meta,
            script_version: Some(ctx.script.version),
            ..run
        },
        concurrency: ctx.script.concurrency,
        not_before: due,
    })
}

/// What recording a run's end needs to know of the run.
struct RunEnd<'a> {
    run_id: &'a str,
    trigger: Trigger,
    started_at: Option<DateTime<Utc>>,
}

impl<'a> RunEnd<'a> {
    fn new(run_id: &'a str, trigger: Trigger, started_at: Option<DateTime<Utc>>) -> Self {
        Self {
            run_id,
            trigger,
            started_at,
        }
    }
}

impl Engine {
    /// Executes a claimed run in the background; frees its place here when it is recorded.
    pub(super) fn launch(&self, claimed: Claimed, stop: CancellationToken) {
        // From now on a watcher opening its stream finds it executing here (before its task
        // runs, so a run started by its admission is found by the stream its client opens next).
        let started = claimed.run.started_at.unwrap_or_else(Utc::now);
        self.inner.hub.starting(&claimed.run.id, started);
        let engine = self.clone();
        self.inner.tasks.spawn(async move {
            let Claimed {
                run,
                current_version,
                concurrency,
            } = claimed;
            let run_id = run.id.clone();
            let script_id = run.script_id.clone();
            let (trigger, started_at) = (run.trigger, run.started_at);
            let ran = std::panic::AssertUnwindSafe(engine.execute(run, current_version, stop))
                .catch_unwind()
                .await;
            let ended = match ran {
                Ok(status) => status,
                Err(_) => {
                    tracing::error!(run_id = %run_id, "run supervision panicked");
                    let outcome = RunOutcome::failed("internal error while supervising the run");
                    let end = RunEnd::new(&run_id, trigger, started_at);
                    engine
                        .record_end(end, outcome, LogSummary::default(), None, None)
                        .await
                }
            };
            engine.inner.active.release(&run_id);
            if let Some(status) = ended {
                engine
                    .announce(Signal::Status {
                        run_id: run_id.clone(),
                        status,
                    })
                    .await;
            }
            // The script's next `queue` run may be eligible now, on any node; and this node has
            // room again, which matters only if its last claim left eligible runs behind.
            if concurrency == Concurrency::Queue || !engine.inner.drained.load(Ordering::SeqCst) {
                engine.announce(Signal::Work).await;
            }
            engine.prune(&script_id).await;
        });
    }

    /// Deletes a script's runs beyond the retention count. Done every `keep_runs / 20` runs
    /// of the script on this node rather than after each one: the deletes walk the kept runs,
    /// so doing it every time would cost each run a share of the retention.
    pub(super) async fn prune(&self, script_id: &str) {
        let batch = (self.inner.config.keep_runs / 20).max(1);
        {
            let mut due = self
                .inner
                .prune_due
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let count = due.entry(script_id.to_string()).or_default();
            *count += 1;
            if *count < batch {
                return;
            }
            due.remove(script_id);
        }
        match self
            .inner
            .store
            .prune_runs(script_id, self.inner.config.keep_runs)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(script_id = %script_id, pruned = n, "pruned old runs"),
            Err(e) => {
                tracing::warn!(script_id = %script_id, error = %e, "could not prune old runs")
            }
        }
    }

    /// Runs the script to its end. Returns the final status if it was recorded.
    #[tracing::instrument(skip_all, fields(run_id = %run.id, script = tracing::field::Empty))]
    async fn execute(
        &self,
        run: Run,
        current_version: Option<i64>,
        stop: CancellationToken,
    ) -> Option<RunStatus> {
        let inner = &self.inner;
        let end = RunEnd::new(&run.id, run.trigger, run.started_at);
        let script = match self.definition(&run.script_id, current_version).await {
            Ok(s) => s,
            Err(e) => {
                inner.metrics.start_failed();
                let outcome = RunOutcome::failed(format!("could not start: {e}"));
                return self
                    .record_end(end, outcome, LogSummary::default(), None, None)
                    .await;
            }
        };
        tracing::Span::current().record("script", script.code_identifier.as_str());
        // An edit between the start request and now: the run records what it really runs.
        if run.script_version != Some(script.version) {
            if let Err(e) = inner.store.set_run_version(&run.id, script.version).await {
                tracing::warn!(error = %e, "could not record the version a run runs");
            }
        }
        let started = run.started_at.unwrap_or_else(Utc::now);
        self.announce(Signal::Status {
            run_id: run.id.clone(),
            status: RunStatus::Running,
        })
        .await;
        tracing::info!(script = %script.code_identifier, trigger = run.trigger.as_str(), started = %started, "run started");

        // Each message is one read's lines (at most 32 KiB of output): a few in flight keep
        // the sink busy without holding much of a flood in memory.
        let (tx, rx) = mpsc::channel(4);
        let masker = Masker::new(script.secret_values());
        let sink = LogSink {
            run_id: run.id.clone(),
            lease: inner.owner.lease.clone(),
            store: inner.store.clone(),
            feed: inner.feed.clone(),
            hub: inner.hub.clone(),
            masker: masker.clone(),
            cap: inner.config.max_log_bytes,
            stop: stop.clone(),
            metrics: inner.metrics.clone(),
        };
        let sink_task = tokio::spawn(sink.run(rx));
        let ctx = RunContext {
            env: self.child_env(&run, &script),
            run_id: run.id.clone(),
            timeout: Duration::from_millis(script.timeout_ms.max(1) as u64),
            kill_grace: inner.config.kill_grace,
            launcher: inner.launcher.clone(),
            isolates: inner.isolates.clone(),
            trigger: run.trigger,
            input: run.input,
            script,
            cancel: stop,
            masker,
            metrics: inner.metrics.clone(),
        };
        let (outcome, result) = match ctx.script.runner {
            Runner::Host => (process::run(&ctx, tx).await, None),
            Runner::Isolated => {
                let mb = ctx
                    .script
                    .memory_limit_mb
                    .map_or(inner.config.isolate_memory_mb, |m| m as u64);
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
        let retry = plan_retry(&run.id, &run.meta, run.trigger, &ctx, &outcome);
        let recorded = self.record_end(end, outcome, summary, result, retry).await;
        if ctx.script.runner == Runner::Isolated {
            // Only now: its start (a fork, then its engine made ready) would otherwise
            // compete for the CPU with recording and publishing this run's end.
            inner.isolates.refill();
        }
        if let Some(status) = recorded {
            self.queue_notifications(&ctx.script, &run.id, status).await;
        }
        recorded
    }

    /// The script a claimed run runs: the definition held here when the claim saw that
    /// version, else the store's (then held for the script's next run).
    async fn definition(
        &self,
        script_id: &str,
        current_version: Option<i64>,
    ) -> crate::store::StoreResult<ScriptDefinition> {
        self.held_or_read(script_id, |held| Some(held.version) == current_version)
            .await
    }

    /// The definition held here for `script_id` if `usable` accepts it, else the store's,
    /// held from then on.
    pub(super) async fn held_or_read(
        &self,
        script_id: &str,
        usable: impl Fn(&ScriptDefinition) -> bool,
    ) -> crate::store::StoreResult<ScriptDefinition> {
        let held = self
            .definitions()
            .get(script_id)
            .filter(|d| usable(d))
            .cloned();
        if let Some(script) = held {
            return Ok(script);
        }
        let script = self.inner.store.get_script(script_id).await?;
        self.hold_definition(&script);
        Ok(script)
    }

    /// Keeps a script's definition, as read at its version, for its next runs here.
    pub(super) fn hold_definition(&self, script: &ScriptDefinition) {
        let mut defs = self.definitions();
        if defs
            .get(&script.id)
            .is_some_and(|held| held.version == script.version)
        {
            return;
        }
        // Bounded by forgetting all at once: the next run of each script reads it again.
        if defs.len() >= HELD_DEFINITIONS {
            defs.clear();
        }
        defs.insert(script.id.clone(), script.clone());
    }

    fn definitions(&self) -> std::sync::MutexGuard<'_, HashMap<String, ScriptDefinition>> {
        self.inner
            .definitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Records how a run ended, if this node still holds it. Returns the status recorded.
    async fn record_end(
        &self,
        end: RunEnd<'_>,
        outcome: RunOutcome,
        summary: LogSummary,
        result: Option<serde_json::Value>,
        retry: Option<RetryRun>,
    ) -> Option<RunStatus> {
        let retry_id = retry.as_ref().map(|r| r.run.id.clone());
        let finish = RunFinish {
            retry,
            finished_at: Utc::now(),
            outcome,
            output_tail: summary.tail,
            result,
            log_bytes: summary.stored_bytes,
            log_truncated: summary.truncated,
        };
        let inner = &self.inner;
        let run_id = end.run_id;
        inner.active.finishing(run_id);
        // A watcher arriving from here on reads the run from the store: its end may be recorded
        // and published before that watcher subscribes.
        inner.hub.writing(run_id);
        let asked = Instant::now();
        let recorded = inner
            .store
            .finish_run(run_id, &inner.owner.lease, &finish)
            .await;
        inner.metrics.store_call(StoreCall::Finish, asked.elapsed());
        match recorded {
            Ok(Ended::Recorded { retry_queued }) => {
                inner.hub.publish(
                    run_id,
                    HubEvent::Ended(Arc::new(finish.outcome.clone()), finish.finished_at),
                );
                let ran = end
                    .started_at
                    .and_then(|s| (finish.finished_at - s).to_std().ok());
                inner
                    .metrics
                    .run_finished(finish.outcome.status, end.trigger, ran);
                match (retry_id, &finish.retry) {
                    (Some(retry_id), Some(retry)) if retry_queued => {
                        inner.deferred.store(true, Ordering::SeqCst);
                        tracing::info!(run_id, retry_id = %retry_id, due = %retry.not_before, "retry queued");
                        self.announce(Signal::Status {
                            run_id: retry_id,
                            status: RunStatus::Queued,
                        })
                        .await;
                    }
                    (Some(_), _) => tracing::warn!(
                        run_id,
                        "no retry queued: another run of this one-at-a-time script is active"
                    ),
                    _ => {}
                }
                Some(finish.outcome.status)
            }
            Ok(Ended::NotHeld) => {
                tracing::warn!(run_id, "not recording the end of a run this node no longer holds (another node ended it after its lease ran out)");
                None
            }
            Err(e) => {
                tracing::error!(run_id, error = %e, "could not record the end of a run");
                None
            }
        }
    }

    /// The child's environment: the server's (minus scriptd's settings), unbuffered-output
    /// hints, the script's own variables, then the run's identity.
    fn child_env(&self, run: &Run, script: &ScriptDefinition) -> Vec<(String, String)> {
        let mut env: BTreeMap<String, String> =
            self.inner.config.base_env.iter().cloned().collect();
        // Programs that buffer when stdout is a pipe would hold back live output.
        env.insert("PYTHONUNBUFFERED".into(), "1".into());
        for var in &script.env {
            env.insert(var.key.clone(), var.value.clone());
        }
        env.insert("SCRIPTD_RUN_ID".into(), run.id.clone());
        env.insert("SCRIPTD_SCRIPT_ID".into(), script.id.clone());
        env.insert("SCRIPTD_TRIGGER".into(), run.trigger.as_str().into());
        if let Some(input) = &run.input {
            env.insert("SCRIPTD_INPUT".into(), input.to_string());
        }
        env.into_iter().collect()
    }
}
