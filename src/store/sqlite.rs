//! The embedded default: one SQLite file in WAL mode, for a single node. Writes are
//! serialized by SQLite itself, so a claim needs no row lock, and with one node there is no
//! one to notify.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::codec::EnvCodec;
use super::feed::SingleNode;
use super::{DynFeed, StoreResult};

pub struct SqliteStore {
    pool: SqlitePool,
    codec: EnvCodec,
    listing: super::listing::ListingCache,
    _checkpoints: DropGuard,
}

impl SqliteStore {
    pub async fn connect(url: &str, codec: EnvCodec) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL survives a process crash; only an OS crash may lose the last
            // transactions, never corrupt the file.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .pragma("wal_autocheckpoint", super::checkpoint::BACKSTOP_PAGES)
            .foreign_keys(true);
        let file = options.get_filename().to_path_buf();
        if let Some(parent) = file.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)?;
            }
        }
        // Created private here rather than with the umask's mode by SQLite, which gives its
        // -wal and -shm files the database file's mode.
        if file != std::path::Path::new(":memory:") && !file.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&file)?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // A connection to a local file cannot go stale; pinging it before each use would
            // double the thread hand-offs every statement costs.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        let stop = CancellationToken::new();
        tokio::spawn(super::checkpoint::run(pool.clone(), file, stop.clone()));
        Ok(Self {
            pool,
            codec,
            listing: Default::default(),
            _checkpoints: stop.drop_guard(),
        })
    }
}

super::scripts::impl_script_store!(
    SqliteStore,
    sqlx::Sqlite,
    "json_group_array(json_array({}))",
    "LEFT JOIN runs r ON r.id = (SELECT MAX(r2.id) FROM runs r2 WHERE r2.script_id = {s}.id)"
);
super::runs::impl_run_store!(SqliteStore, sqlx::Sqlite);
super::queue::impl_queue_store!(
    SqliteStore,
    |candidates| format!("IN ({candidates})"),
    super::queue::sqlite_admission_sql
);
super::leases::impl_lease_store!(SqliteStore);
super::logs::impl_log_store!(SqliteStore, sqlx::Sqlite, "");
super::schedules::impl_schedule_store!(SqliteStore);
super::nodes::impl_node_store!(SqliteStore);
super::versions::impl_version_store!(SqliteStore);
super::audit::impl_audit_store!(SqliteStore, sqlx::Sqlite);
super::deliveries::impl_delivery_store!(SqliteStore, "");

#[async_trait]
impl super::Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn feed(&self) -> DynFeed {
        Arc::new(SingleNode)
    }
}
