//! Fires scheduled scripts. Every node stays armed for every tick: each sleeps until the next
//! due tick (or until a schedule changes, here or on another node), and all race to claim it
//! through the store, so it fires once across nodes and keeps firing when any node stops. The
//! next tick is computed from *now*, so ticks missed while every node was down, or skipped by
//! a clock jump, are not replayed in a burst; a tick claimed later than its grace is recorded
//! as a skipped run (`missed`), never fired late, unless the script asks for catch-up `last`:
//! then the latest missed tick fires once. A tick a `single` script's active run collides with
//! is recorded as skipped too, naming that run.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::{timestamp, CatchUp, ScriptDefinition, Trigger};
use crate::engine::{Engine, EngineError, RunRequest};
use crate::metrics::Metrics;
use crate::store::{DynStore, RunFilter};

/// The longest a tick may be late and still fire; a frequent schedule's grace is its period
/// (with a floor), so a late tick never runs when the next one is already due.
const MAX_GRACE: chrono::Duration = chrono::Duration::seconds(30);
const MIN_GRACE: chrono::Duration = chrono::Duration::seconds(1);
/// Missed ticks are counted up to this many (an every-second schedule down for a day would
/// otherwise take 86 400 steps to count).
const MAX_MISSED_COUNTED: u32 = 10_000;
/// Re-read schedules at least this often, so other nodes' edits are seen.
const MAX_SLEEP: Duration = Duration::from_secs(30);

pub struct Scheduler {
    store: DynStore,
    engine: Engine,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    /// Each script's next fire time as last computed, with the schedule it was computed for:
    /// a pass reuses it until it is due, instead of searching the calendar again.
    next_fires: std::sync::Mutex<HashMap<String, CachedFire>>,
}

struct CachedFire {
    cron: String,
    timezone: String,
    next: DateTime<Utc>,
}

impl Scheduler {
    pub fn new(store: DynStore, engine: Engine, metrics: Arc<Metrics>, wake: Arc<Notify>) -> Self {
        Self {
            store,
            engine,
            metrics,
            wake,
            next_fires: Default::default(),
        }
    }

    /// The first fire time after `now`, from the cache while it is still ahead.
    fn next_fire(
        &self,
        script: &ScriptDefinition,
        cron: &crate::domain::CronSchedule,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut cache = self.next_fires.lock().expect("scheduler cache lock");
        if let Some(c) = cache.get(&script.id) {
            if c.next > now
                && c.cron == script.schedule.cron
                && c.timezone == script.schedule.timezone
            {
                return Some(c.next);
            }
        }
        let next = cron.next_after(now)?;
        cache.insert(
            script.id.clone(),
            CachedFire {
                cron: script.schedule.cron.clone(),
                timezone: script.schedule.timezone.clone(),
                next,
            },
        );
        Some(next)
    }

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
            let next = self.next_fire(&script, &cron, now);
            // Armed for the next tick whether or not this node wins the current one.
            if let Some(n) = next {
                next_wake = next_wake.min(n);
            }
            match script.next_run_at {
                Some(due) if due <= now => {
                    if !self.store.claim_tick(&script.id, Some(due), next).await? {
                        continue; // another node (or an edit) moved it first
                    }
                    let grace = cron
                        .next_after(due)
                        .map_or(MAX_GRACE, |after| (after - due).clamp(MIN_GRACE, MAX_GRACE));
                    if now - due > grace {
                        self.missed(script, &cron, due, now).await;
                    } else {
                        self.fire(script, due, false).await;
                    }
                }
                Some(due) => next_wake = next_wake.min(due),
                None => {
                    self.store.claim_tick(&script.id, None, next).await?;
                }
            }
        }
        Ok((next_wake - Utc::now()).to_std().unwrap_or(Duration::ZERO))
    }

    /// Ticks from `due` to `now` passed with no node up in time: recorded as one skipped
    /// entry, or with catch-up `last`, one run for the latest of them.
    async fn missed(
        &self,
        script: ScriptDefinition,
        cron: &crate::domain::CronSchedule,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        let (mut latest, mut ticks) = (due, 1u32);
        while let Some(t) = cron.next_after(latest).filter(|t| *t <= now) {
            latest = t;
            ticks += 1;
            if ticks >= MAX_MISSED_COUNTED {
                break;
            }
        }
        self.metrics.schedule_missed();
        tracing::warn!(script = %script.code_identifier, tick = %due, ticks, late_ms = (now - due).num_milliseconds(), "scheduler: ticks missed (no node was up in time)");
        if script.schedule.catch_up == CatchUp::Last {
            self.fire(script, latest, true).await;
        } else {
            self.skipped(
                &script,
                due,
                json!({ "reason": "missed", "ticks": ticks, "lastTick": timestamp(latest) }),
            )
            .await;
        }
    }

    async fn skipped(&self, script: &ScriptDefinition, tick: DateTime<Utc>, why: Value) {
        let meta = json!({ "tick": timestamp(tick), "skipped": why });
        if let Err(e) = self.engine.record_skipped(script, meta).await {
            tracing::warn!(script = %script.code_identifier, error = %e, "scheduler: could not record a skipped tick");
        }
    }

    /// The run a `single` script's tick collided with: its running run, else its queued one.
    async fn active_run(&self, script_id: &str) -> Option<String> {
        for status in ["running", "queued"] {
            let filter = RunFilter {
                script_id: Some(script_id.to_string()),
                status: Some(status.to_string()),
                limit: 1,
                ..RunFilter::default()
            };
            if let Ok(runs) = self.store.list_runs(&filter).await {
                if let Some(run) = runs.into_iter().next() {
                    return Some(run.id);
                }
            }
        }
        None
    }

    async fn fire(&self, script: ScriptDefinition, tick: DateTime<Utc>, catch_up: bool) {
        let code = script.code_identifier.clone();
        let mut meta = json!({ "tick": timestamp(tick) });
        if catch_up {
            meta["catchUp"] = Value::Bool(true);
        }
        let request = RunRequest {
            script: script.clone(),
            trigger: Trigger::Schedule,
            meta,
            input: None,
            author: crate::domain::Author::server("schedule"),
        };
        match self.engine.submit(request).await {
            Ok(run_id) => {
                self.metrics
                    .schedule_fired((Utc::now() - tick).to_std().unwrap_or_default());
                tracing::info!(script = %code, tick = %tick, run_id = %run_id, catch_up, "scheduler: fired");
            }
            Err(EngineError::AlreadyRunning) => {
                self.metrics.schedule_skipped();
                tracing::info!(script = %code, tick = %tick, "scheduler: tick skipped, the script is still running (concurrency single)");
                let run_id = self.active_run(&script.id).await;
                self.skipped(
                    &script,
                    tick,
                    json!({ "reason": "still_running", "runId": run_id }),
                )
                .await;
            }
            Err(EngineError::QueueFull) => {
                self.metrics.schedule_skipped();
                tracing::warn!(script = %code, tick = %tick, "scheduler: tick skipped, the run queue is full");
                self.skipped(&script, tick, json!({ "reason": "queue_full" }))
                    .await;
            }
            Err(e) => {
                self.metrics.schedule_skipped();
                tracing::warn!(script = %code, tick = %tick, error = %e, "scheduler: tick skipped");
            }
        }
    }
}
