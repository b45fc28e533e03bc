//! Persistence behind one trait, with SQLite (one node, the default) and PostgreSQL (several
//! nodes) behind it. Both run the same SQL where they can (see `sql.rs`).

mod codec;
mod postgres;
mod rows;
mod sql;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{LogLine, Run, RunOutcome, ScriptDefinition};

pub use codec::EnvCodec;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict {
        field: &'static str,
        message: String,
    },
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Backend(#[from] sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Default, Clone)]
pub struct ScriptFilter {
    /// Matches name, codeIdentifier or description, case-insensitively.
    pub q: Option<String>,
    pub script_type: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RunFilter {
    pub script_id: Option<String>,
    pub status: Option<String>,
    /// Only runs older than this run id (ids sort by creation time).
    pub before: Option<String>,
    pub limit: i64,
}

/// What the engine writes when a run ends.
#[derive(Debug, Clone)]
pub struct RunFinish {
    pub outcome: RunOutcome,
    pub finished_at: DateTime<Utc>,
    pub output_tail: String,
    pub result: Option<serde_json::Value>,
    pub log_bytes: i64,
    pub log_truncated: bool,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip, for `/healthz`.
    async fn ping(&self) -> StoreResult<()>;

    async fn list_scripts(&self, filter: &ScriptFilter) -> StoreResult<Vec<ScriptDefinition>>;
    async fn get_script(&self, id: &str) -> StoreResult<ScriptDefinition>;
    async fn get_script_by_code(&self, code: &str) -> StoreResult<ScriptDefinition>;
    /// `Conflict` when the codeIdentifier is taken.
    async fn insert_script(&self, script: &ScriptDefinition) -> StoreResult<()>;
    async fn update_script(&self, script: &ScriptDefinition) -> StoreResult<()>;
    /// Removes the script with its runs and their logs.
    async fn delete_script(&self, id: &str) -> StoreResult<()>;

    /// The stored hash of the script's trigger token, if any.
    async fn token_hash(&self, script_id: &str) -> StoreResult<Option<String>>;
    async fn set_token(
        &self,
        script_id: &str,
        hash: Option<&str>,
        created_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()>;

    /// Scripts whose schedule is enabled.
    async fn scheduled_scripts(&self) -> StoreResult<Vec<ScriptDefinition>>;
    /// Moves a script's next fire time from `expected` to `next` if nobody else did first; the
    /// winner fires the tick, so a tick fires once across nodes.
    async fn claim_tick(
        &self,
        script_id: &str,
        expected: Option<DateTime<Utc>>,
        next: Option<DateTime<Utc>>,
    ) -> StoreResult<bool>;

    /// Records a new run, owned by `node_id`.
    async fn insert_run(&self, run: &Run, node_id: &str) -> StoreResult<()>;
    async fn get_run(&self, id: &str) -> StoreResult<Run>;
    /// Newest first; `output_tail` is left empty to keep lists light.
    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<Run>>;
    /// The newest run of every script that has one, without output tails.
    async fn last_runs(&self) -> StoreResult<Vec<Run>>;
    /// `queued → running`; false when the run was no longer queued.
    async fn mark_running(&self, id: &str, started_at: DateTime<Utc>) -> StoreResult<bool>;
    /// Records the end of a run unless it already ended; false in that case.
    async fn finish_run(&self, id: &str, finish: &RunFinish) -> StoreResult<bool>;
    async fn update_tail(&self, id: &str, tail: &str) -> StoreResult<()>;
    /// Renews the lease on every unfinished run of a node.
    async fn heartbeat(&self, node_id: &str, at: DateTime<Utc>) -> StoreResult<()>;
    /// Marks failed the unfinished runs of other nodes whose lease ran out before `cutoff`:
    /// their node died. Returns how many.
    async fn fail_expired_runs(
        &self,
        node_id: &str,
        cutoff: DateTime<Utc>,
        error: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<u64>;
    /// Marks every `queued` or `running` run of a node failed, e.g. after it crashed.
    /// Returns how many.
    async fn fail_unfinished_runs(
        &self,
        node_id: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<u64>;
    /// Deletes the oldest finished runs of a script beyond `keep`, with their logs.
    async fn prune_runs(&self, script_id: &str, keep: u32) -> StoreResult<u64>;

    async fn append_log(&self, run_id: &str, lines: &[LogLine]) -> StoreResult<()>;
    /// Checks that every stored secret opens with the current master key.
    async fn verify_secrets(&self) -> StoreResult<()>;
    /// Re-seals every secret under `next`, in one transaction. Returns the scripts changed.
    async fn reseal_secrets(&self, next: &EnvCodec) -> StoreResult<u64>;

    /// Lines with `seq > after_seq`, in order, at most `limit`.
    async fn read_log(&self, run_id: &str, after_seq: i64, limit: i64)
        -> StoreResult<Vec<LogLine>>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store a URL names (`sqlite://…` or `postgres://…`) and applies its migrations.
pub async fn connect(url: &str, codec: EnvCodec) -> anyhow::Result<DynStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url, codec).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, codec).await?))
    } else {
        anyhow::bail!("unsupported database URL scheme (use sqlite:// or postgres://)")
    }
}
