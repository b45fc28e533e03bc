//! A run's stored output. Appends are fenced: only the process holding the run's lease may
//! add lines, so a node that lost its run cannot write into it afterwards.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::LogLine;

#[async_trait]
pub trait LogStore: Send + Sync {
    /// Appends lines if `lease` still holds the running run; false, with nothing written,
    /// when it does not.
    async fn append_log(&self, run_id: &str, lease: &str, lines: &[LogLine]) -> StoreResult<bool>;
    /// Lines with `seq > after_seq`, in order, at most `limit`.
    async fn read_log(&self, run_id: &str, after_seq: i64, limit: i64)
        -> StoreResult<Vec<LogLine>>;
    /// Saves the output tail of a run `lease` holds; false when it does not.
    async fn update_tail(&self, run_id: &str, lease: &str, tail: &str) -> StoreResult<bool>;
}

macro_rules! impl_log_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::LogStore for $store {
            async fn append_log(
                &self,
                run_id: &str,
                lease: &str,
                lines: &[$crate::domain::LogLine],
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                // Writing the run row first locks it until commit, so a node expiring the
                // lease meanwhile waits for this batch, and no batch lands after it.
                let held = sqlx::query(
                    "UPDATE runs SET owner = owner WHERE id = $1 AND owner = $2 \
                     AND status = 'running'",
                )
                .bind(run_id)
                .bind(lease)
                .execute(&mut *tx)
                .await?;
                if held.rows_affected() == 0 {
                    return Ok(false);
                }
                // Bounded statements keep under every backend's bind-parameter limit.
                for chunk in lines.chunks(500) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO run_logs (run_id, seq, stream, ts, line) ",
                    );
                    qb.push_values(chunk, |mut b, l| {
                        b.push_bind(run_id)
                            .push_bind(l.seq)
                            .push_bind(l.stream.as_str())
                            .push_bind($crate::store::rows::to_ms(l.ts))
                            .push_bind(l.line.clone());
                    });
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn read_log(
                &self,
                run_id: &str,
                after_seq: i64,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::LogLine>> {
                let rows = sqlx::query_as::<_, $crate::store::rows::LogRow>(
                    "SELECT seq, stream, ts, line FROM run_logs WHERE run_id = $1 AND seq > $2 \
                     ORDER BY seq LIMIT $3",
                )
                .bind(run_id)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn update_tail(
                &self,
                run_id: &str,
                lease: &str,
                tail: &str,
            ) -> $crate::store::StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE runs SET output_tail = $3 WHERE id = $1 AND owner = $2 \
                     AND status = 'running'",
                )
                .bind(run_id)
                .bind(lease)
                .bind(tail)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use impl_log_store;
