//! Node heartbeats: which nodes share the store, when each last checked in, and how many runs
//! it executes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;

/// A node as its last heartbeat described it.
#[derive(Debug, Clone)]
pub struct NodeBeat {
    pub node_id: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// How often the node beats; it is late after a few of these.
    pub every_ms: i64,
    pub running: i64,
    pub version: String,
}

#[async_trait]
pub trait NodeStore: Send + Sync {
    /// Records this node's heartbeat.
    async fn heartbeat(&self, beat: &NodeBeat) -> StoreResult<()>;
    /// The nodes that beat since `since`, by id.
    async fn nodes(&self, since: DateTime<Utc>) -> StoreResult<Vec<NodeBeat>>;
}

macro_rules! impl_node_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::NodeStore for $store {
            async fn heartbeat(
                &self,
                beat: &$crate::store::NodeBeat,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO nodes (node_id, started_at, heartbeat_at, every_ms, running, version) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (node_id) DO UPDATE SET started_at = excluded.started_at, \
                     heartbeat_at = excluded.heartbeat_at, every_ms = excluded.every_ms, \
                     running = excluded.running, version = excluded.version",
                )
                .bind(&beat.node_id)
                .bind(beat.started_at.timestamp_millis())
                .bind(beat.heartbeat_at.timestamp_millis())
                .bind(beat.every_ms)
                .bind(beat.running)
                .bind(&beat.version)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn nodes(
                &self,
                since: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Vec<$crate::store::NodeBeat>> {
                let rows: Vec<(String, i64, i64, i64, i64, String)> = sqlx::query_as(
                    "SELECT node_id, started_at, heartbeat_at, every_ms, running, version \
                     FROM nodes WHERE heartbeat_at >= $1 ORDER BY node_id",
                )
                .bind(since.timestamp_millis())
                .fetch_all(&self.pool)
                .await?;
                let time = |ms: i64| {
                    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
                };
                Ok(rows
                    .into_iter()
                    .map(|(node_id, started, beat, every_ms, running, version)| {
                        $crate::store::NodeBeat {
                            node_id,
                            started_at: time(started),
                            heartbeat_at: time(beat),
                            every_ms,
                            running,
                            version,
                        }
                    })
                    .collect())
            }
        }
    };
}

pub(crate) use impl_node_store;
