//! The runs table as the queue every node shares: admission under the concurrency rules,
//! claims, cancels, and the fenced final write of a run.
//!
//! Admission of a `single` script is atomic through a unique partial index (at most one
//! queued-or-running `single` run per script), so two nodes accepting at once cannot both
//! win. A claim takes the oldest eligible queued runs in one statement; with PostgreSQL the
//! candidate rows are locked `FOR UPDATE SKIP LOCKED`, so concurrent claimers never wait on
//! each other and never take the same run. A `queue` run is eligible only when no run of its
//! script is running and no older one is queued, so its runs take turns in order wherever
//! they were accepted.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Owner, RunFinish, StoreResult};
use crate::domain::{AuditEntry, Concurrency, Run};

#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Queued, for any node to claim.
    Admitted,
    /// Admitted and already running under the lease the admission offered (see `StartHere`).
    Started,
    /// A `single` script already has a queued or running run.
    Busy,
    /// The queue is at its bound, in all or for this script.
    Full,
    /// The run was made from a version of its script that is no longer current (or the
    /// script is gone): nothing was written.
    Changed,
}

/// How many runs may wait in the queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueBounds {
    pub total: i64,
    pub per_script: i64,
}

/// A node's offer to run what it admits at once, from one of its free slots: the run is then
/// written as running under this lease instead of queued, when no queued run is due before it
/// and its script is not `queue` (whose runs take turns through claims). Saves the claim a run
/// would otherwise wait for.
#[derive(Debug, Clone, Copy)]
pub struct StartHere<'a> {
    pub owner: &'a Owner,
    pub at: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum CancelRequest {
    /// It was still queued: now canceled, and it will never start.
    Canceled,
    /// It is running: its owner has been asked to stop it.
    Requested,
    Finished,
    NotFound,
}

#[async_trait]
pub trait QueueStore: Send + Sync {
    /// Records a `queued` run, unless the concurrency rule or the queue's bounds refuse it; or,
    /// offered `start` and allowed by it, a run already running under its lease. `audit` is
    /// recorded with it, in the same statement, when it is admitted. Nothing is written when
    /// `run.script_version` is not the script's current version (`Changed`).
    async fn enqueue(
        &self,
        run: &Run,
        concurrency: Concurrency,
        bounds: QueueBounds,
        audit: &AuditEntry,
        start: Option<StartHere<'_>>,
    ) -> StoreResult<Admission>;
    /// Records a run that ended as it was made (a skipped tick): never queued, never claimed.
    async fn record_ended(&self, run: &Run) -> StoreResult<()>;
    /// Takes up to `max` of the oldest eligible queued runs for `owner` (one statement) and
    /// marks them running, leased until `until`.
    async fn claim(
        &self,
        owner: &Owner,
        at: DateTime<Utc>,
        until: DateTime<Utc>,
        max: i64,
    ) -> StoreResult<Vec<Claimed>>;
    /// `audit` is recorded with the cancel or the request, in the same transaction.
    async fn request_cancel(
        &self,
        run_id: &str,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<CancelRequest>;
    /// Cancels a script's queued runs and asks for its running ones to stop. Returns the ids
    /// of each.
    async fn cancel_script_runs(
        &self,
        script_id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<(Vec<String>, Vec<String>)>;
    /// The earliest time a queued run waiting for it (a retry) is due after `now`.
    async fn next_due(&self, now: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>>;
    /// Records the end of a run `lease` still holds, and queues its retry if it has one;
    /// false, with nothing changed, when the lease no longer holds (another node took the run
    /// after the lease ran out, or it already ended).
    async fn finish_run(&self, id: &str, lease: &str, finish: &RunFinish) -> StoreResult<Ended>;
}

/// A run a claim took.
#[derive(Debug)]
pub struct Claimed {
    pub run: Run,
    /// Its script's version when it was claimed (`None` if the script is gone), so the
    /// executor knows without another read whether a definition it holds is still current.
    pub current_version: Option<i64>,
    /// The script's rule when the run was admitted, which its claims followed.
    pub concurrency: Concurrency,
}

/// What recording a run's end did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The lease no longer held: nothing changed.
    NotHeld,
    /// The end is recorded, and its retry queued when it had one.
    Recorded { retry_queued: bool },
}

/// The test that a queued run `q` has its turn, besides being due: a `queue` run only when no
/// run of its script is running and none older is queued.
const ELIGIBLE: &str = "AND (q.concurrency <> 'queue' OR NOT EXISTS (\
    SELECT 1 FROM runs o WHERE o.script_id = q.script_id \
    AND o.status IN ('queued', 'running') AND (o.status = 'running' OR o.id < q.id)))";

/// The claim statement; `pick` makes the test of a run's id against the candidates' query,
/// which the backend may lock. The candidates are chosen once, before any run is changed, so a
/// claim never takes more runs than it asks for, and a `queue` script's second run is never
/// eligible beside its first.
pub fn claim_sql(pick: fn(&str) -> String) -> String {
    let candidates = format!(
        "SELECT q.id FROM runs q WHERE q.status = 'queued' \
         AND (q.not_before IS NULL OR q.not_before <= $3) {ELIGIBLE} ORDER BY q.id LIMIT $5"
    );
    format!(
        "UPDATE runs SET status = 'running', owner = $1, node_id = $2, started_at = $3, \
         lease_until = $4 WHERE status = 'queued' AND id {} \
         RETURNING {}, concurrency, \
           (SELECT s.version FROM scripts s WHERE s.id = runs.script_id) AS current_version",
        pick(&candidates),
        super::rows::RUN_COLUMNS
    )
}

/// Binds a run's `RUN_COLUMNS`, in their order, to a query.
macro_rules! bind_run {
    ($query:expr, $run:expr) => {{
        let r = $run;
        $query
            .bind(&r.id)
            .bind(&r.script_id)
            .bind(r.status.as_str())
            .bind(r.trigger.as_str())
            .bind(r.meta.to_string())
            .bind(r.input.as_ref().map(|v| v.to_string()))
            .bind($crate::store::rows::to_ms(r.queued_at))
            .bind(r.started_at.map($crate::store::rows::to_ms))
            .bind(r.finished_at.map($crate::store::rows::to_ms))
            .bind(r.exit_code)
            .bind(r.signal)
            .bind(&r.error)
            .bind(&r.output_tail)
            .bind(r.result.as_ref().map(|v| v.to_string()))
            .bind(r.log_bytes)
            .bind(r.log_truncated)
            .bind(&r.node_id)
            .bind(r.script_version)
    }};
}

pub(crate) use bind_run;

/// The text of a full queue's refusal where the backend raises one (SQLite's admission
/// trigger, see its migration `one_statement_admission`).
pub const QUEUE_FULL: &str = "scriptd: queue full";
/// The same for a run made from a definition that is no longer current.
pub const DEFINITION_CHANGED: &str = "scriptd: definition changed";

/// Binds an admission's parameters, in the order both backends' statements number them: the
/// run's `RUN_COLUMNS`, its concurrency, the queue's bounds, its start's audit entry, then the
/// lease of a start offered here (all NULL when none is).
macro_rules! bind_admission {
    ($query:expr, $run:expr, $concurrency:expr, $bounds:expr, $audit:expr, $start:expr) => {{
        let start: Option<$crate::store::StartHere<'_>> = $start;
        $crate::store::audit::bind_entry!(
            $crate::store::queue::bind_run!($query, $run)
                .bind($concurrency.as_str())
                .bind($bounds.total)
                .bind($bounds.per_script),
            $audit
        )
        .bind(start.map(|s| s.owner.lease.as_str()))
        .bind(start.map(|s| s.owner.node_id.as_str()))
        .bind(start.map(|s| $crate::store::rows::to_ms(s.at)))
        .bind(start.map(|s| $crate::store::rows::to_ms(s.until)))
    }};
}

pub(crate) use bind_admission;

/// PostgreSQL's admission: a data-modifying `WITH` writes the run when the queue has room and
/// its definition is current, running under the offered lease when `here` allows it, and the
/// entry only with it; the status written comes back, `changed` when the definition is not
/// current, and no row means a full queue.
pub fn pg_admission_sql() -> String {
    format!(
        "WITH here AS (SELECT \
           EXISTS (SELECT 1 FROM scripts WHERE id = $2 AND version = $18) AS current, \
           $30::text IS NOT NULL AND $19 <> 'queue' AND NOT EXISTS (\
             SELECT 1 FROM runs q WHERE q.status = 'queued' \
             AND (q.not_before IS NULL OR q.not_before <= $32) {ELIGIBLE}) AS go), \
         r AS (INSERT INTO runs ({}, concurrency, owner, lease_until) \
           SELECT $1, $2, CASE WHEN go THEN 'running' ELSE $3 END, $4, $5, $6, $7, \
             CASE WHEN go THEN $32 ELSE $8 END, $9, $10, $11, $12, $13, $14, $15, $16, \
             CASE WHEN go THEN $31 ELSE $17 END, $18, $19, \
             CASE WHEN go THEN $30 END, CASE WHEN go THEN $33 END FROM here \
           WHERE current \
           AND (SELECT COUNT(*) FROM runs WHERE status = 'queued') < $20 \
           AND (SELECT COUNT(*) FROM runs WHERE script_id = $2 AND status = 'queued') < $21 \
           RETURNING id, status), \
         a AS (INSERT INTO audit_log (id, at, actor, client, action, target, summary, count) \
           SELECT $22, $23, $24, $25, $26, $27, $28, $29 FROM r) \
         SELECT status FROM r UNION ALL SELECT 'changed' FROM here WHERE NOT current",
        super::rows::RUN_COLUMNS
    )
}

/// SQLite's admission: an insert into the `run_admissions` view, whose trigger checks the
/// definition (raising `DEFINITION_CHANGED`) and the bounds (raising `QUEUE_FULL`), writes the run (started under the offered lease when it may
/// be, see its migration `admission_starts_here`) and the entry. The trigger's changes are not
/// the statement's own, so the status it wrote is read back in `RETURNING`.
pub fn sqlite_admission_sql() -> String {
    format!(
        "INSERT INTO run_admissions ({}, concurrency, queue_total, queue_per_script, \
           audit_id, audit_at, audit_actor, audit_client, audit_action, audit_target, \
           audit_summary, audit_count, start_owner, start_node, start_at, start_until) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,\
           $22,$23,$24,$25,$26,$27,$28,$29,$30,$31,$32,$33) \
         RETURNING (SELECT a.status FROM runs a WHERE a.id = $1)",
        super::rows::RUN_COLUMNS
    )
}

/// `$claim_pick` tests a run against a claim's candidates (see `claim_sql`); `$admission_sql`
/// writes a run and its start's audit entry in one statement (one round trip, all or
/// nothing) and returns the status written: no row, or the `QUEUE_FULL` error, when the queue
/// is full.
macro_rules! impl_queue_store {
    ($store:ty, $claim_pick:expr, $admission_sql:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::QueueStore for $store {
            async fn enqueue(
                &self,
                r: &$crate::domain::Run,
                concurrency: $crate::domain::Concurrency,
                bounds: $crate::store::QueueBounds,
                audit: &$crate::domain::AuditEntry,
                start: Option<$crate::store::StartHere<'_>>,
            ) -> $crate::store::StoreResult<$crate::store::Admission> {
                use $crate::store::Admission;
                // Every run passes here: its statement is put together once.
                static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new($admission_sql);
                let done: Result<Option<(Option<String>,)>, sqlx::Error> =
                    $crate::store::queue::bind_admission!(
                        sqlx::query_as(SQL.as_str()),
                        r,
                        concurrency,
                        bounds,
                        audit,
                        start
                    )
                    .fetch_optional(&self.pool)
                    .await;
                match done {
                    Ok(None) => Ok(Admission::Full),
                    Ok(Some((Some(status),))) if status == "running" => Ok(Admission::Started),
                    Ok(Some((Some(status),))) if status == "changed" => Ok(Admission::Changed),
                    Ok(Some(_)) => Ok(Admission::Admitted),
                    Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                        Ok(Admission::Busy)
                    }
                    Err(sqlx::Error::Database(db))
                        if db.message().contains($crate::store::queue::QUEUE_FULL) =>
                    {
                        Ok(Admission::Full)
                    }
                    Err(sqlx::Error::Database(db))
                        if db.message().contains($crate::store::queue::DEFINITION_CHANGED) =>
                    {
                        Ok(Admission::Changed)
                    }
                    Err(e) => Err(e.into()),
                }
            }

            async fn record_ended(
                &self,
                r: &$crate::domain::Run,
            ) -> $crate::store::StoreResult<()> {
                debug_assert!(r.status.is_terminal());
                let sql = format!(
                    "INSERT INTO runs ({}) \
                     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)",
                    $crate::store::rows::RUN_COLUMNS
                );
                $crate::store::queue::bind_run!(sqlx::query(&sql), r)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn claim(
                &self,
                owner: &$crate::store::Owner,
                at: chrono::DateTime<chrono::Utc>,
                until: chrono::DateTime<chrono::Utc>,
                max: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Claimed>> {
                static SQL: std::sync::LazyLock<String> =
                    std::sync::LazyLock::new(|| $crate::store::queue::claim_sql($claim_pick));
                let claim = || {
                    sqlx::query_as::<_, $crate::store::rows::ClaimRow>(SQL.as_str())
                        .bind(&owner.lease)
                        .bind(&owner.node_id)
                        .bind($crate::store::rows::to_ms(at))
                        .bind($crate::store::rows::to_ms(until))
                        .bind(max)
                        .fetch_all(&self.pool)
                };
                // Another node's claim started a run of the same `queue` script at the same
                // moment (PostgreSQL's `runs_one_running_queue_run` refused this one once that
                // claim committed): made again, the claim sees that run running.
                let rows = match claim().await {
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => claim().await?,
                    rows => rows?,
                };
                let mut claimed = rows
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect::<$crate::store::StoreResult<Vec<$crate::store::Claimed>>>()?;
                // Started oldest first, as they were queued.
                claimed.sort_by(|a, b| a.run.id.cmp(&b.run.id));
                Ok(claimed)
            }

            async fn request_cancel(
                &self,
                run_id: &str,
                at: chrono::DateTime<chrono::Utc>,
                audit: &$crate::domain::AuditEntry,
            ) -> $crate::store::StoreResult<$crate::store::CancelRequest> {
                use $crate::store::CancelRequest;
                let mut tx = self.pool.begin().await?;
                let queued = sqlx::query(
                    "UPDATE runs SET status = 'canceled', finished_at = $2 \
                     WHERE id = $1 AND status = 'queued'",
                )
                .bind(run_id)
                .bind($crate::store::rows::to_ms(at))
                .execute(&mut *tx)
                .await?;
                let outcome = if queued.rows_affected() == 1 {
                    CancelRequest::Canceled
                } else {
                    let running = sqlx::query(
                        "UPDATE runs SET cancel_requested = TRUE WHERE id = $1 AND status = 'running'",
                    )
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await?;
                    if running.rows_affected() == 1 {
                        CancelRequest::Requested
                    } else {
                        let exists: Option<(String,)> =
                            sqlx::query_as("SELECT id FROM runs WHERE id = $1")
                                .bind(run_id)
                                .fetch_optional(&mut *tx)
                                .await?;
                        return Ok(match exists {
                            Some(_) => CancelRequest::Finished,
                            None => CancelRequest::NotFound,
                        });
                    }
                };
                $crate::store::audit::insert_entry!(&mut *tx, audit);
                tx.commit().await?;
                Ok(outcome)
            }

            async fn cancel_script_runs(
                &self,
                script_id: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<(Vec<String>, Vec<String>)> {
                let queued: Vec<(String,)> = sqlx::query_as(
                    "UPDATE runs SET status = 'canceled', finished_at = $2, error = 'script deleted' \
                     WHERE script_id = $1 AND status = 'queued' RETURNING id",
                )
                .bind(script_id)
                .bind($crate::store::rows::to_ms(at))
                .fetch_all(&self.pool)
                .await?;
                let running: Vec<(String,)> = sqlx::query_as(
                    "UPDATE runs SET cancel_requested = TRUE \
                     WHERE script_id = $1 AND status = 'running' RETURNING id",
                )
                .bind(script_id)
                .fetch_all(&self.pool)
                .await?;
                Ok((
                    queued.into_iter().map(|r| r.0).collect(),
                    running.into_iter().map(|r| r.0).collect(),
                ))
            }

            async fn next_due(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Option<chrono::DateTime<chrono::Utc>>> {
                let (due,): (Option<i64>,) = sqlx::query_as(
                    "SELECT MIN(not_before) FROM runs WHERE status = 'queued' AND not_before > $1",
                )
                .bind($crate::store::rows::to_ms(now))
                .fetch_one(&self.pool)
                .await?;
                Ok(due.map($crate::store::rows::from_ms))
            }

            async fn finish_run(
                &self,
                id: &str,
                lease: &str,
                f: &$crate::store::RunFinish,
            ) -> $crate::store::StoreResult<$crate::store::Ended> {
                use $crate::store::Ended;
                let update = sqlx::query(
                    "UPDATE runs SET status = $2, finished_at = $3, exit_code = $4, signal = $5, \
                     error = $6, output_tail = $7, result = $8, log_bytes = $9, \
                     log_truncated = $10 WHERE id = $1 AND owner = $11 AND status = 'running'",
                )
                .bind(id)
                .bind(f.outcome.status.as_str())
                .bind($crate::store::rows::to_ms(f.finished_at))
                .bind(f.outcome.exit_code)
                .bind(f.outcome.signal)
                .bind(&f.outcome.error)
                .bind(&f.output_tail)
                .bind(f.result.as_ref().map(|v| v.to_string()))
                .bind(f.log_bytes)
                .bind(f.log_truncated)
                .bind(lease);
                // A run with no retry to queue ends in one statement.
                let Some(retry) = &f.retry else {
                    return Ok(match update.execute(&self.pool).await?.rows_affected() {
                        1 => Ended::Recorded {
                            retry_queued: false,
                        },
                        _ => Ended::NotHeld,
                    });
                };
                let mut tx = self.pool.begin().await?;
                if update.execute(&mut *tx).await?.rows_affected() != 1 {
                    return Ok(Ended::NotHeld);
                }
                let queued = {
                    let r = &retry.run;
                    // Nothing else of a `single` script can be active while its run ends, so
                    // the retry is admitted; should that ever not hold, the end still counts.
                    let sql = format!(
                        "INSERT INTO runs ({}, concurrency, not_before) \
                         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20) \
                         ON CONFLICT DO NOTHING",
                        $crate::store::rows::RUN_COLUMNS
                    );
                    let done = $crate::store::queue::bind_run!(sqlx::query(&sql), r)
                        .bind(retry.concurrency.as_str())
                        .bind($crate::store::rows::to_ms(retry.not_before))
                        .execute(&mut *tx)
                        .await?;
                    done.rows_affected() == 1
                };
                if queued {
                    $crate::store::audit::insert_entry!(&mut *tx, &retry.audit);
                }
                tx.commit().await?;
                Ok(Ended::Recorded {
                    retry_queued: queued,
                })
            }
        }
    };
}

pub(crate) use impl_queue_store;
