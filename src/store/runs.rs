//! Reading runs back: snapshots, history pages, retention.

use async_trait::async_trait;

use super::{RunFilter, StoreResult};
use crate::domain::{Run, RunStatus};

/// Skipped ticks kept per script, apart from its runs' retention.
pub const SKIPPED_KEPT: i64 = 50;

#[async_trait]
pub trait RunStore: Send + Sync {
    async fn get_run(&self, id: &str) -> StoreResult<Run>;
    /// Records the script version a run runs, when it differs from the one it was queued with.
    async fn set_run_version(&self, id: &str, version: i64) -> StoreResult<()>;
    /// Newest first; `output_tail` is left empty to keep lists light.
    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<Run>>;
    /// Runs of a script that are queued or running, on any node.
    async fn active_runs(&self, script_id: &str) -> StoreResult<i64>;
    /// Runs waiting in the queue, across all nodes.
    async fn queued_runs(&self) -> StoreResult<i64>;
    /// Runs queued since `since_id` (a run id bound: ids sort by creation time), counted by
    /// the hour they were queued in (hours since the epoch) and their status.
    async fn run_counts_by_hour(&self, since_id: &str) -> StoreResult<Vec<(i64, String, i64)>>;
    /// Runs running and queued now, on every node.
    async fn active_counts(&self) -> StoreResult<(i64, i64)>;
    /// Deletes the oldest finished runs of a script beyond `keep`, with their logs.
    async fn prune_runs(&self, script_id: &str, keep: u32) -> StoreResult<u64>;
    /// How the script's last run before `run_id` that succeeded, failed or timed out ended.
    async fn previous_outcome(
        &self,
        script_id: &str,
        run_id: &str,
    ) -> StoreResult<Option<RunStatus>>;
}

macro_rules! impl_run_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::RunStore for $store {
            async fn set_run_version(
                &self,
                id: &str,
                version: i64,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query("UPDATE runs SET script_version = $2 WHERE id = $1")
                    .bind(id)
                    .bind(version)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn get_run(&self, id: &str) -> $crate::store::StoreResult<$crate::domain::Run> {
                let sql = format!(
                    "SELECT {} FROM runs WHERE id = $1",
                    $crate::store::rows::RUN_COLUMNS
                );
                sqlx::query_as::<_, $crate::store::rows::RunRow>(&sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or($crate::store::StoreError::NotFound("run"))?
                    .try_into()
            }

            async fn list_runs(
                &self,
                f: &$crate::store::RunFilter,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::Run>> {
                // Only the filters given, so the (script_id, id) index serves a script's page.
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM runs WHERE TRUE",
                    $crate::store::rows::RUN_SUMMARY_COLUMNS
                ));
                if let Some(s) = &f.script_id {
                    qb.push(" AND script_id = ").push_bind(s.clone());
                }
                if let Some(s) = &f.status {
                    qb.push(" AND status = ").push_bind(s.clone());
                }
                if let Some(t) = &f.trigger {
                    qb.push(" AND trigger_kind = ").push_bind(t.clone());
                }
                if let Some(from) = &f.from_id {
                    qb.push(" AND id >= ").push_bind(from.clone());
                }
                if let Some(b) = &f.before {
                    qb.push(" AND id < ").push_bind(b.clone());
                }
                qb.push(" ORDER BY id DESC LIMIT ").push_bind(f.limit);
                let rows = qb
                    .build_query_as::<$crate::store::rows::RunRow>()
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn active_runs(&self, script_id: &str) -> $crate::store::StoreResult<i64> {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM runs WHERE script_id = $1 \
                     AND status IN ('queued', 'running')",
                )
                .bind(script_id)
                .fetch_one(&self.pool)
                .await?;
                Ok(n)
            }

            async fn queued_runs(&self) -> $crate::store::StoreResult<i64> {
                let (n,): (i64,) =
                    sqlx::query_as("SELECT COUNT(*) FROM runs WHERE status = 'queued'")
                        .fetch_one(&self.pool)
                        .await?;
                Ok(n)
            }

            async fn run_counts_by_hour(
                &self,
                since_id: &str,
            ) -> $crate::store::StoreResult<Vec<(i64, String, i64)>> {
                // The bound is on the id, so the primary key finds the range.
                Ok(sqlx::query_as(
                    "SELECT queued_at / 3600000 AS hour, status, COUNT(*) FROM runs \
                     WHERE id >= $1 GROUP BY queued_at / 3600000, status",
                )
                .bind(since_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn active_counts(&self) -> $crate::store::StoreResult<(i64, i64)> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT status, COUNT(*) FROM runs \
                     WHERE status IN ('queued', 'running') GROUP BY status",
                )
                .fetch_all(&self.pool)
                .await?;
                let count = |s: &str| rows.iter().find(|r| r.0 == s).map_or(0, |r| r.1);
                Ok((count("running"), count("queued")))
            }

            async fn previous_outcome(
                &self,
                script_id: &str,
                run_id: &str,
            ) -> $crate::store::StoreResult<Option<$crate::domain::RunStatus>> {
                let row: Option<(String,)> = sqlx::query_as(
                    "SELECT status FROM runs WHERE script_id = $1 AND id < $2 \
                     AND status IN ('succeeded', 'failed', 'timed_out') ORDER BY id DESC LIMIT 1",
                )
                .bind(script_id)
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.and_then(|(s,)| $crate::domain::RunStatus::parse(&s)))
            }

            async fn prune_runs(
                &self,
                script_id: &str,
                keep: u32,
            ) -> $crate::store::StoreResult<u64> {
                // Two single statements rather than a read-then-write transaction: SQLite in
                // WAL mode cannot upgrade a read snapshot to a write while others commit.
                // Skipped ticks are counted apart, with a cap of their own, so a long run
                // of them never pushes real runs (and their logs) out of the history.
                let ended = "SELECT id FROM runs WHERE script_id = $1 \
                     AND status NOT IN ('queued', 'running', 'skipped') ORDER BY id DESC LIMIT 1000000 OFFSET $2";
                let skipped = "SELECT id FROM runs WHERE script_id = $1 \
                     AND status = 'skipped' ORDER BY id DESC LIMIT 1000000 OFFSET $2";
                let skipped_keep = i64::from(keep).min($crate::store::runs::SKIPPED_KEPT);
                let mut pruned = 0;
                for (old, keep) in [(ended, i64::from(keep)), (skipped, skipped_keep)] {
                    for table in ["run_log_chunks", "deliveries"] {
                        sqlx::query(&format!("DELETE FROM {table} WHERE run_id IN ({old})"))
                            .bind(script_id)
                            .bind(keep)
                            .execute(&self.pool)
                            .await?;
                    }
                    let done = sqlx::query(&format!("DELETE FROM runs WHERE id IN ({old})"))
                        .bind(script_id)
                        .bind(keep)
                        .execute(&self.pool)
                        .await?;
                    pruned += done.rows_affected();
                }
                Ok(pruned)
            }
        }
    };
}

pub(crate) use impl_run_store;
