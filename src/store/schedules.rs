//! Schedule ticks, claimed by compare-and-set so each fires once across nodes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::ScriptDefinition;

#[async_trait]
pub trait ScheduleStore: Send + Sync {
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
}

macro_rules! impl_schedule_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::ScheduleStore for $store {
            async fn scheduled_scripts(
                &self,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::ScriptDefinition>> {
                let sql = format!(
                    "SELECT {} FROM scripts WHERE schedule_enabled AND enabled",
                    $crate::store::rows::SCRIPT_COLUMNS
                );
                let rows = sqlx::query_as::<_, $crate::store::rows::ScriptRow>(&sql)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(|row| self.codec.open(row)).collect()
            }

            async fn claim_tick(
                &self,
                script_id: &str,
                expected: Option<chrono::DateTime<chrono::Utc>>,
                next: Option<chrono::DateTime<chrono::Utc>>,
            ) -> $crate::store::StoreResult<bool> {
                let done = match expected {
                    Some(due) => sqlx::query(
                        "UPDATE scripts SET next_fire_at = $3 WHERE id = $1 AND next_fire_at = $2",
                    )
                    .bind(script_id)
                    .bind($crate::store::rows::to_ms(due)),
                    None => sqlx::query(
                        "UPDATE scripts SET next_fire_at = $2 WHERE id = $1 AND next_fire_at IS NULL",
                    )
                    .bind(script_id),
                }
                .bind(next.map($crate::store::rows::to_ms))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use impl_schedule_store;
