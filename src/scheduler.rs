//! Fires scheduled scripts. Sleeps until the next due tick (or until a schedule changes),
//! claims each due tick through the store so it fires once across nodes, and computes the
//! next tick from *now*, so ticks missed while the server was down, or skipped by a clock
//! jump, are not replayed in a burst.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::{ScriptDefinition, Trigger};
use crate::engine::{Engine, EngineError, RunRequest};
use crate::metrics::Metrics;
use crate::store::DynStore;

/// A tick older than this when first seen is a missed one (server down, clock jump), not a
/// late one, and is skipped.
const MISSED_AFTER: chrono::Duration = chrono::Duration::seconds(30);
/// Re-read schedules at least this often, so other nodes' edits are seen.
const MAX_SLEEP: Duration = Duration::from_secs(30);

pub struct Scheduler {
    pub store: DynStore,
    pub engine: Engine,
    pub metrics: Arc<Metrics>,
    pub wake: Arc<Notify>,
}

impl Scheduler {
    pub async fn run(self, closing: CancellationToken) {
        loop {
            let sleep = match self.tick(Utc::now()).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler: could not read schedules");
                    Duration::from_secs(5)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = self.wake.notified() => {}
                _ = closing.cancelled() => return,
            }
        }
    }

    /// Fires whatever is due at `now`; returns how long to sleep until the next tick.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<Duration, crate::store::StoreError> {
        let mut next_wake = now + chrono::Duration::from_std(MAX_SLEEP).unwrap_or_default();
        for script in self.store.scheduled_scripts().await? {
            let Some(cron) = script.schedule.active() else {
                continue;
            };
            let next = cron.next_after(now);
            match script.next_run_at {
                Some(due) if due <= now => {
                    if !self.store.claim_tick(&script.id, Some(due), next).await? {
                        continue; // another node (or an edit) moved it first
                    }
                    if now - due > MISSED_AFTER {
                        tracing::info!(script = %script.code_identifier, tick = %due, "scheduler: tick missed while stopped; not replayed");
                    } else {
                        self.fire(script, due).await;
                    }
                }
                Some(due) => {
                    next_wake = next_wake.min(due);
                    continue;
                }
                None => {
                    self.store.claim_tick(&script.id, None, next).await?;
                }
            }
            if let Some(n) = next {
                next_wake = next_wake.min(n);
            }
        }
        Ok((next_wake - Utc::now()).to_std().unwrap_or(Duration::ZERO))
    }

    async fn fire(&self, script: ScriptDefinition, tick: DateTime<Utc>) {
        let code = script.code_identifier.clone();
        let request = RunRequest {
            script,
            trigger: Trigger::Schedule,
            meta: json!({ "tick": crate::http::views::time(tick) }),
            input: None,
        };
        match self.engine.submit(request).await {
            Ok(run_id) => {
                self.metrics.schedule_fired();
                tracing::info!(script = %code, tick = %tick, run_id = %run_id, "scheduler: fired");
            }
            Err(EngineError::AlreadyRunning) => {
                self.metrics.schedule_skipped();
                tracing::info!(script = %code, tick = %tick, "scheduler: tick skipped, the script is still running (concurrency single)");
            }
            Err(e) => {
                self.metrics.schedule_skipped();
                tracing::warn!(script = %code, tick = %tick, error = %e, "scheduler: tick skipped");
            }
        }
    }
}
