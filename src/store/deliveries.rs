//! Notifications to deliver: one row per run, event and webhook, claimed by whichever node's
//! notifier gets to it first once it is due (a lease like a run's, so a node that dies while
//! sending leaves it to another), and finished with the webhook's answer.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Delivery {
    pub id: String,
    pub run_id: String,
    pub script_id: String,
    pub event: String,
    pub url: String,
    /// pending, delivered or failed.
    pub status: String,
    pub attempts: i32,
    pub next_at: i64,
    pub response: Option<i32>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// How an attempt went, and what comes next.
#[derive(Debug, Clone)]
pub struct Attempted {
    /// delivered, failed (no more attempts) or pending (another one at `next_at`).
    pub status: &'static str,
    pub next_at: DateTime<Utc>,
    pub response: Option<i32>,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

pub const DELIVERY_COLUMNS: &str = "id, run_id, script_id, event, url, status, attempts, \
    next_at, response, error, created_at, updated_at";

#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Records pending deliveries, due at once.
    async fn enqueue_deliveries(&self, deliveries: &[Delivery]) -> StoreResult<()>;
    /// Takes the oldest due delivery no live lease holds, for `owner` until `until`.
    async fn claim_delivery(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Option<Delivery>>;
    /// Records an attempt of a delivery `owner` holds; false when it no longer does.
    async fn finish_delivery(&self, id: &str, owner: &str, a: &Attempted) -> StoreResult<bool>;
    /// A run's deliveries, oldest first.
    async fn deliveries_of(&self, run_id: &str) -> StoreResult<Vec<Delivery>>;
    /// When the earliest pending delivery is (or was) due: a read, so a node with nothing to
    /// send never takes the write lock a claim needs.
    async fn earliest_pending_delivery(&self) -> StoreResult<Option<DateTime<Utc>>>;
}

macro_rules! impl_delivery_store {
    ($store:ty, $claim_lock:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::DeliveryStore for $store {
            async fn enqueue_deliveries(
                &self,
                deliveries: &[$crate::store::Delivery],
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                for d in deliveries {
                    sqlx::query(&format!(
                        "INSERT INTO deliveries ({}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
                        $crate::store::deliveries::DELIVERY_COLUMNS
                    ))
                    .bind(&d.id)
                    .bind(&d.run_id)
                    .bind(&d.script_id)
                    .bind(&d.event)
                    .bind(&d.url)
                    .bind(&d.status)
                    .bind(d.attempts)
                    .bind(d.next_at)
                    .bind(d.response)
                    .bind(&d.error)
                    .bind(d.created_at)
                    .bind(d.updated_at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn claim_delivery(
                &self,
                owner: &str,
                now: chrono::DateTime<chrono::Utc>,
                until: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Option<$crate::store::Delivery>> {
                let sql = format!(
                    "UPDATE deliveries SET owner = $1, lease_until = $3 WHERE id = (\
                       SELECT id FROM deliveries WHERE status = 'pending' AND next_at <= $2 \
                       AND (lease_until IS NULL OR lease_until < $2) \
                       ORDER BY next_at LIMIT 1 {}) \
                     AND status = 'pending' AND (lease_until IS NULL OR lease_until < $2) \
                     RETURNING {}",
                    $claim_lock,
                    $crate::store::deliveries::DELIVERY_COLUMNS
                );
                Ok(sqlx::query_as(&sql)
                    .bind(owner)
                    .bind($crate::store::rows::to_ms(now))
                    .bind($crate::store::rows::to_ms(until))
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn finish_delivery(
                &self,
                id: &str,
                owner: &str,
                a: &$crate::store::deliveries::Attempted,
            ) -> $crate::store::StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE deliveries SET status = $3, attempts = attempts + 1, next_at = $4, \
                     response = $5, error = $6, updated_at = $7, owner = NULL, lease_until = NULL \
                     WHERE id = $1 AND owner = $2 AND status = 'pending'",
                )
                .bind(id)
                .bind(owner)
                .bind(a.status)
                .bind($crate::store::rows::to_ms(a.next_at))
                .bind(a.response)
                .bind(&a.error)
                .bind($crate::store::rows::to_ms(a.at))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn deliveries_of(
                &self,
                run_id: &str,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Delivery>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM deliveries WHERE run_id = $1 ORDER BY id",
                    $crate::store::deliveries::DELIVERY_COLUMNS
                ))
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn earliest_pending_delivery(
                &self,
            ) -> $crate::store::StoreResult<Option<chrono::DateTime<chrono::Utc>>> {
                let (due,): (Option<i64>,) =
                    sqlx::query_as("SELECT MIN(next_at) FROM deliveries WHERE status = 'pending'")
                        .fetch_one(&self.pool)
                        .await?;
                Ok(due.map($crate::store::rows::from_ms))
            }
        }
    };
}

pub(crate) use impl_delivery_store;
