//! Leases on running runs: the owner renews them; any node fails the runs of an owner whose
//! lease ran out (its node died or hangs), and a node fails its own leftovers at start.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Owner, StoreResult};
use crate::domain::RunStatus;

#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Extends to `until` the lease on every run `owner` still holds. Returns them, each with
    /// whether a cancel was asked for it.
    async fn renew_leases(
        &self,
        owner: &Owner,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<(String, bool)>>;
    /// Ends the runs of other owners whose lease ran out before `at`: `canceled` if a cancel
    /// was asked, else `failed`. Returns each with its new status.
    async fn expire_leases(
        &self,
        owner: &Owner,
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<(String, RunStatus)>>;
    /// Fails the runs a node was running when its previous process stopped. Queued runs are
    /// nobody's and stay queued. Returns the ids.
    async fn fail_node_runs(
        &self,
        node_id: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<String>>;
}

pub const EXPIRED_ERROR: &str = "its node stopped (no heartbeat within the run lease)";

macro_rules! impl_lease_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::LeaseStore for $store {
            async fn renew_leases(
                &self,
                owner: &$crate::store::Owner,
                until: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Vec<(String, bool)>> {
                Ok(sqlx::query_as(
                    "UPDATE runs SET lease_until = $2 WHERE owner = $1 AND status = 'running' \
                     RETURNING id, cancel_requested",
                )
                .bind(&owner.lease)
                .bind($crate::store::rows::to_ms(until))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn expire_leases(
                &self,
                owner: &$crate::store::Owner,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Vec<(String, $crate::domain::RunStatus)>> {
                let rows: Vec<(String, String)> = sqlx::query_as(
                    "UPDATE runs SET \
                     status = CASE WHEN cancel_requested THEN 'canceled' ELSE 'failed' END, \
                     error = CASE WHEN cancel_requested THEN NULL ELSE $1 END, finished_at = $2 \
                     WHERE status = 'running' AND lease_until < $2 AND owner <> $3 \
                     RETURNING id, status",
                )
                .bind($crate::store::leases::EXPIRED_ERROR)
                .bind($crate::store::rows::to_ms(at))
                .bind(&owner.lease)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, s)| {
                        let status = $crate::domain::RunStatus::parse(&s)
                            .unwrap_or($crate::domain::RunStatus::Failed);
                        (id, status)
                    })
                    .collect())
            }

            async fn fail_node_runs(
                &self,
                node_id: &str,
                error: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Vec<String>> {
                let rows: Vec<(String,)> = sqlx::query_as(
                    "UPDATE runs SET status = 'failed', error = $1, finished_at = $2 \
                     WHERE node_id = $3 AND status = 'running' RETURNING id",
                )
                .bind(error)
                .bind($crate::store::rows::to_ms(at))
                .bind(node_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|r| r.0).collect())
            }
        }
    };
}

pub(crate) use impl_lease_store;
