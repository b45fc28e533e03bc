//! Leases, recovery and fencing. A node renews the lease on the runs it executes; a run it no
//! longer holds (another node failed it after the lease ran out) is stopped here, and the
//! store refuses its later writes. A node also ends the runs of owners whose lease ran out,
//! and at start fails the runs its previous process left running.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{Engine, EngineError};
use crate::domain::RunStatus;
use crate::store::Signal;

impl Engine {
    pub(super) async fn recover(&self) -> Result<(), EngineError> {
        let swept = super::leftovers::sweep(&std::env::temp_dir());
        if swept > 0 {
            tracing::info!(
                count = swept,
                "removed the run files that stopped server processes left in the temporary directory"
            );
        }
        let failed = self
            .inner
            .store
            .fail_node_runs(
                &self.inner.owner.node_id,
                "scriptd stopped (crash or kill) while this run was running",
                Utc::now(),
            )
            .await?;
        if !failed.is_empty() {
            tracing::warn!(
                count = failed.len(),
                "marked the runs a previous process of this node left running as failed"
            );
        }
        for run_id in failed {
            self.settle_log(&run_id).await;
            self.notify_lost(&run_id, RunStatus::Failed).await;
            self.announce(Signal::Status {
                run_id,
                status: RunStatus::Failed,
            })
            .await;
        }
        Ok(())
    }

    /// Records the tail and size of a run that ended because its node went away, from its
    /// stored log: its node saved the tail only every few seconds, and the size never.
    async fn settle_log(&self, run_id: &str) {
        let store = &self.inner.store;
        let settled = async {
            let s = super::logs::stored_summary(store, run_id).await?;
            store
                .settle_log(run_id, &s.tail, s.stored_bytes, s.truncated)
                .await
        };
        if let Err(e) = settled.await {
            tracing::warn!(run_id = %run_id, error = %e, "could not read back the output of a run its node left");
        }
    }

    /// Queues the notifications of a run that ended because its node went away: the failure
    /// an operator most wants to hear of.
    async fn notify_lost(&self, run_id: &str, status: RunStatus) {
        let Ok(run) = self.inner.store.get_run(run_id).await else {
            return;
        };
        if let Ok(script) = self.inner.store.get_script(&run.script_id).await {
            self.queue_notifications(&script, run_id, status).await;
        }
    }

    /// Renews this node's leases, stops runs it lost or that were canceled elsewhere, and
    /// ends the runs of vanished owners, until `closing`.
    pub async fn keep_leases(&self, closing: CancellationToken) {
        let lease = self.inner.config.run_lease;
        let every = (lease / 6).max(Duration::from_millis(100));
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = closing.cancelled() => return,
            }
            self.renew().await;
            self.expire_others().await;
            self.heartbeat(every).await;
        }
    }

    /// Tells the other nodes (and the dashboard) this node is up and how busy it is.
    async fn heartbeat(&self, every: Duration) {
        let inner = &self.inner;
        let beat = crate::store::NodeBeat {
            node_id: inner.owner.node_id.clone(),
            started_at: inner.started_at,
            heartbeat_at: Utc::now(),
            every_ms: every.as_millis() as i64,
            running: inner.active.len() as i64,
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        if let Err(e) = inner.store.heartbeat(&beat).await {
            tracing::warn!(error = %e, "could not record this node's heartbeat");
        }
    }

    async fn renew(&self) {
        let inner = &self.inner;
        let checked_at = Instant::now();
        let until = Utc::now() + inner.config.lease_span();
        let held = match inner.store.renew_leases(&inner.owner, until).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "could not renew run leases");
                return;
            }
        };
        // A cancel whose signal was lost still arrives here.
        for (run_id, cancel) in &held {
            if *cancel {
                inner.active.cancel(run_id);
            }
        }
        let held: HashSet<String> = held.into_iter().map(|(id, _)| id).collect();
        for run_id in inner.active.held_before(checked_at) {
            if !held.contains(&run_id) {
                tracing::warn!(run_id = %run_id, "this node no longer holds the run (its lease ran out or it ended); stopping it here");
                inner.active.cancel(&run_id);
            }
        }
    }

    async fn expire_others(&self) {
        let inner = &self.inner;
        let ended = match inner.store.expire_leases(&inner.owner, Utc::now()).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "could not check run leases");
                return;
            }
        };
        if ended.is_empty() {
            return;
        }
        tracing::warn!(
            count = ended.len(),
            "ended the runs of a node whose lease ran out"
        );
        for (run_id, status) in ended {
            self.settle_log(&run_id).await;
            if let Ok(run) = inner.store.get_run(&run_id).await {
                inner.metrics.run_finished(status, run.trigger, None);
            }
            self.notify_lost(&run_id, status).await;
            self.announce(Signal::Status { run_id, status }).await;
        }
        self.announce(Signal::Work).await;
    }
}
