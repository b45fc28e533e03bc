//! Admission and claims. A start request is admitted into the store's queue (where the
//! `single` rule is enforced atomically) and the nodes are told; each node's claim loop takes
//! queued runs while it has capacity. No run is bound to the node that accepted it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{Engine, EngineError, RunRequest};
use crate::domain::{Author, Run, RunStatus, Runner, ScriptDefinition, ScriptType, Trigger};
use crate::store::{Admission, Claimed, Signal, StartHere};

/// The claim loop's safety net should a wake-up be lost; wake-ups do the real work.
const POLL_EVERY: Duration = Duration::from_secs(5);

/// Most runs one claim takes, so that nodes sharing a burst each get a share of it.
const CLAIM_BATCH: usize = 8;

/// How often a start re-reads a script edited while it was being admitted before giving up.
const MAX_REREADS: usize = 3;

impl Engine {
    /// Records a run as `queued` if the script's concurrency rule allows it, or starts it here
    /// at once (see `StartHere`). The request's definition may be one held here: admission
    /// checks that it is still the script's current version, and a refusal it caused (disabled,
    /// not allowed, input not matching its form) counts only once the store's agrees; after an
    /// edit the run is made again from the store's definition.
    pub async fn submit(&self, req: RunRequest) -> Result<String, EngineError> {
        let RunRequest {
            mut script,
            trigger,
            meta,
            input,
            author,
        } = req;
        let mut reads = 0;
        loop {
            let refused = match self.admit(&script, trigger, &meta, &input, &author).await {
                Err(
                    e @ (EngineError::DefinitionChanged
                    | EngineError::ScriptDisabled
                    | EngineError::BrowserScript
                    | EngineError::RunnerNotAllowed(_)
                    | EngineError::Input(_)),
                ) if reads < MAX_REREADS => e,
                done => return done,
            };
            reads += 1;
            let current = self.inner.store.get_script(&script.id).await?;
            self.hold_definition(&current);
            if current.version == script.version
                && !matches!(refused, EngineError::DefinitionChanged)
            {
                return Err(refused);
            }
            script = current;
        }
    }

    /// The definition a start of `script_id` is made from: the one held here if any (its
    /// admission checks that it is current), else the store's.
    pub async fn definition_to_start(
        &self,
        script_id: &str,
    ) -> Result<ScriptDefinition, EngineError> {
        Ok(self.held_or_read(script_id, |_| true).await?)
    }

    async fn admit(
        &self,
        script: &ScriptDefinition,
        trigger: Trigger,
        meta: &serde_json::Value,
        input: &Option<serde_json::Value>,
        author: &Author,
    ) -> Result<String, EngineError> {
        if script.script_type == ScriptType::Browser || script.runner == Runner::Browser {
            return Err(EngineError::BrowserScript);
        }
        if !script.enabled {
            return Err(EngineError::ScriptDisabled);
        }
        if !self.inner.config.allowed_runners.contains(&script.runner) {
            return Err(EngineError::RunnerNotAllowed(script.runner.as_str()));
        }
        if self.inner.active.is_closed() {
            return Err(EngineError::ShuttingDown);
        }
        // With an input form, the script gets the checked input with its defaults filled in.
        let input = match &script.input_schema {
            Some(form) => Some(form.apply(input.as_ref()).map_err(EngineError::Input)?),
            None => input.clone(),
        };
        let mut run = Run::queued(&script.id, trigger, meta.clone(), input);
        run.script_version = Some(script.version);
        // With a slot free here the run may start at once, without waiting for a claim.
        let slot = self
            .inner
            .active
            .reserve(self.inner.config.max_concurrent_runs, 1)
            .pop();
        let now = Utc::now();
        let start = slot.as_ref().map(|_| StartHere {
            owner: &self.inner.owner,
            at: now,
            until: now + self.inner.config.lease_span(),
        });
        let audit = author.entry(
            crate::domain::Action::RunStart,
            crate::domain::audit::run_target(&run.id),
            serde_json::json!({
                "script": script.code_identifier.as_str(),
                "version": script.version,
                "trigger": trigger.as_str(),
            }),
        );
        let admission = self
            .inner
            .store
            .enqueue(
                &run,
                script.concurrency,
                self.inner.config.queue_bounds,
                &audit,
                start,
            )
            .await?;
        match admission {
            Admission::Changed => return Err(EngineError::DefinitionChanged),
            Admission::Busy => return Err(EngineError::AlreadyRunning),
            Admission::Full => return Err(EngineError::QueueFull),
            Admission::Admitted | Admission::Started => {}
        }
        self.inner.metrics.run_submitted(trigger);
        // Only an admission offered a start starts the run.
        if let (Admission::Started, Some(slot)) = (admission, slot) {
            self.inner.metrics.run_claimed(Duration::ZERO);
            let stop = slot.take(&run.id);
            run.status = RunStatus::Running;
            run.started_at = Some(now);
            run.node_id = Some(self.inner.owner.node_id.clone());
            let id = run.id.clone();
            self.hold_definition(script);
            self.launch(
                Claimed {
                    run,
                    current_version: Some(script.version),
                    concurrency: script.concurrency,
                },
                stop,
            );
            // The run's task goes first (it is next on this worker), until it has handed the
            // script to the launcher: the script then starts while the caller is still
            // answering its client, rather than after.
            tokio::task::yield_now().await;
            return Ok(id);
        }
        self.announce(Signal::Status {
            run_id: run.id.clone(),
            status: RunStatus::Queued,
        })
        .await;
        Ok(run.id)
    }

    /// Records a schedule tick that started no run as a `skipped` run of the script, with
    /// `meta` saying which tick and why, so the history shows the gap instead of hiding it.
    pub async fn record_skipped(
        &self,
        script: &ScriptDefinition,
        meta: serde_json::Value,
    ) -> Result<String, EngineError> {
        let mut run = Run::queued(&script.id, Trigger::Schedule, meta, None);
        run.script_version = Some(script.version);
        run.status = RunStatus::Skipped;
        run.finished_at = Some(run.queued_at);
        self.inner.store.record_ended(&run).await?;
        self.queue_notifications(script, &run.id, RunStatus::Skipped)
            .await;
        self.announce(Signal::Status {
            run_id: run.id.clone(),
            status: RunStatus::Skipped,
        })
        .await;
        self.prune(&script.id).await;
        Ok(run.id)
    }

    /// Claims queued runs and starts them, as many as this node has room for, at most a
    /// batch. Returns whether there may be more to claim: it got all it asked for.
    pub async fn claim_batch(&self) -> Result<bool, EngineError> {
        let inner = &self.inner;
        // Cleared before room is counted: a run ending meanwhile sees it cleared and asks for
        // another claim, or its room is counted here.
        inner.drained.store(false, Ordering::SeqCst);
        let slots = inner
            .active
            .reserve(inner.config.max_concurrent_runs, CLAIM_BATCH);
        if slots.is_empty() {
            return Ok(false);
        }
        let want = slots.len();
        let now = Utc::now();
        let until = now + inner.config.lease_span();
        let asked = std::time::Instant::now();
        let claimed = inner
            .store
            .claim(&inner.owner, now, until, want as i64)
            .await;
        inner
            .metrics
            .store_call(crate::metrics::StoreCall::Claim, asked.elapsed());
        let claimed = claimed?;
        let more = claimed.len() == want;
        inner.drained.store(!more, Ordering::SeqCst);
        // The slots no run came for are freed as the rest of `slots` drops.
        for (c, slot) in claimed.into_iter().zip(slots) {
            if let Ok(waited) = (now - c.run.queued_at).to_std() {
                inner.metrics.run_claimed(waited);
            }
            let stop = slot.take(&c.run.id);
            self.launch(c, stop);
        }
        Ok(more)
    }

    /// How long the claim loop may sleep: until the next queued retry is due (the store holds
    /// the due time, so every node wakes for it), and never past the safety-net poll. The
    /// store is asked only while a queued run may be waiting for its time.
    async fn until_next_due(&self) -> Duration {
        if !self.inner.deferred.swap(false, Ordering::SeqCst) {
            return POLL_EVERY;
        }
        let now = Utc::now();
        match self.inner.store.next_due(now).await {
            Ok(Some(due)) => {
                self.inner.deferred.store(true, Ordering::SeqCst);
                (due - now).to_std().unwrap_or_default().min(POLL_EVERY)
            }
            Ok(None) => POLL_EVERY,
            Err(_) => {
                self.inner.deferred.store(true, Ordering::SeqCst);
                POLL_EVERY
            }
        }
    }

    /// Claims runs whenever work appears or capacity frees up, until `closing`.
    pub async fn work(&self, closing: CancellationToken) {
        loop {
            loop {
                match self.claim_batch().await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not claim a run");
                        break;
                    }
                }
            }
            let wait = self.until_next_due().await;
            tokio::select! {
                _ = self.inner.work.notified() => {}
                // The safety net re-reads everything, due times included.
                _ = tokio::time::sleep(wait) => self.inner.deferred.store(true, Ordering::SeqCst),
                _ = closing.cancelled() => return,
            }
        }
    }
}
