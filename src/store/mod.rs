//! Persistence, split by capability (scripts, runs, the queue, leases, logs, schedules), with
//! SQLite (one node, the default) and PostgreSQL (several nodes) behind each. Both backends
//! run the same portable SQL; each capability's module stamps its queries out for both, and
//! what only PostgreSQL does (`SKIP LOCKED`, `LISTEN/NOTIFY`) lives in `postgres.rs` and
//! `pg_feed.rs`.

mod audit;
mod checkpoint;
mod codec;
mod deliveries;
mod feed;
mod leases;
mod listing;
pub(crate) mod logs;
mod nodes;
mod pg_feed;
mod postgres;
mod queue;
mod rows;
mod runs;
mod schedules;
mod scripts;
mod sqlite;
mod versions;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::RunOutcome;

pub use audit::{AuditFilter, AuditStore};
pub use codec::EnvCodec;
pub use deliveries::{Attempted, Delivery, DeliveryStore};
pub use feed::{DynFeed, Feed, Signal};
pub use leases::LeaseStore;
pub use logs::{search_log, LogSearch, LogStore, StoredChunk, StoredLine};
pub use nodes::{NodeBeat, NodeStore};
pub use postgres::PgStore;
pub use queue::{Admission, CancelRequest, Claimed, Ended, QueueBounds, QueueStore, StartHere};
pub use rows::{from_ms as rows_from_ms, to_ms as rows_time};
pub use runs::RunStore;
pub use schedules::ScheduleStore;
pub use scripts::{ScriptChange, ScriptStore};
pub use sqlite::SqliteStore;
pub use versions::VersionStore;

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

/// A scripts-list entry.
pub struct ScriptListing {
    pub script: std::sync::Arc<crate::domain::ScriptDefinition>,
    /// Its newest run, summarised (no tail, meta, input or result).
    pub last_run: Option<crate::domain::Run>,
}

#[derive(Debug, Default, Clone)]
pub struct ScriptFilter {
    /// Matches name, codeIdentifier or description, case-insensitively.
    pub q: Option<String>,
    pub script_type: Option<String>,
}

impl ScriptFilter {
    /// No filter: every script.
    pub fn is_whole(&self) -> bool {
        self.q.as_deref().is_none_or(str::is_empty) && self.script_type.is_none()
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub script_id: Option<String>,
    pub status: Option<String>,
    pub trigger: Option<String>,
    /// Only runs with an id at or after this one (a time bound, see `Run::first_id_at`).
    pub from_id: Option<String>,
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
    /// The next attempt, queued in the same transaction as this end.
    pub retry: Option<RetryRun>,
}

/// A retry to queue: a new run, due at `not_before`.
#[derive(Debug, Clone)]
pub struct RetryRun {
    pub run: crate::domain::Run,
    pub concurrency: crate::domain::Concurrency,
    pub not_before: DateTime<Utc>,
    /// Its start, for the audit log, recorded with it.
    pub audit: crate::domain::AuditEntry,
}

/// Who holds a claimed run: the node, and the lease token of this process of it. Every
/// change to a running run names the lease, so a process that lost it changes nothing.
#[derive(Debug, Clone)]
pub struct Owner {
    pub node_id: String,
    pub lease: String,
}

/// Everything the engine and the handlers need from storage.
#[async_trait]
pub trait Store:
    ScriptStore
    + RunStore
    + QueueStore
    + LeaseStore
    + LogStore
    + ScheduleStore
    + NodeStore
    + DeliveryStore
    + VersionStore
    + AuditStore
    + 'static
{
    /// Cheap round trip, for `/healthz`.
    async fn ping(&self) -> StoreResult<()>;
    /// How nodes sharing this store tell each other what changed.
    fn feed(&self) -> DynFeed;
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
