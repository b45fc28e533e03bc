//! The audit log. Entries that record a change are written by the change's own transaction
//! (`insert_entry!`); the ones that record no stored change (failed logins, start-up
//! settings) are appended here.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::{Action, AuditEntry};

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<Action>,
    /// Entries whose target is this, or starts with it when it ends with `:`.
    pub target: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Only entries older than this id.
    pub before: Option<String>,
    pub limit: i64,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// Adds `more` to an entry's count (failed logins from one client).
    async fn count_audit(&self, id: &str, more: i64) -> StoreResult<()>;
    /// Newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEntry>>;
    /// The newest entry of an action, if any.
    async fn last_audit(&self, action: Action) -> StoreResult<Option<AuditEntry>>;
    /// Removes entries older than `before`. Returns how many.
    async fn prune_audit(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// Binds an `AuditEntry`'s columns, in the order `insert_entry` names them, to a query.
macro_rules! bind_entry {
    ($query:expr, $entry:expr) => {{
        let e: &$crate::domain::AuditEntry = $entry;
        $query
            .bind(&e.id)
            .bind($crate::store::rows::to_ms(e.at))
            .bind(&e.actor)
            .bind(&e.client)
            .bind(e.action.as_str())
            .bind(&e.target)
            .bind(e.summary.to_string())
            .bind(e.count)
    }};
}

pub(crate) use bind_entry;

/// Inserts an `AuditEntry` on `$conn`.
macro_rules! insert_entry {
    ($conn:expr, $entry:expr) => {{
        $crate::store::audit::bind_entry!(
            sqlx::query(
                "INSERT INTO audit_log (id, at, actor, client, action, target, summary, count) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            ),
            $entry
        )
        .execute($conn)
        .await?;
    }};
}

pub(crate) use insert_entry;

#[derive(sqlx::FromRow)]
pub struct AuditRow {
    id: String,
    at: i64,
    actor: String,
    client: String,
    action: String,
    target: String,
    summary: String,
    count: i64,
}

impl AuditRow {
    pub fn into_entry(self) -> StoreResult<AuditEntry> {
        Ok(AuditEntry {
            action: Action::parse(&self.action).ok_or_else(|| {
                super::StoreError::Corrupt(format!("audit entry {}: bad action", self.id))
            })?,
            at: super::rows::from_ms(self.at),
            summary: serde_json::from_str(&self.summary).unwrap_or_default(),
            id: self.id,
            actor: self.actor,
            client: self.client,
            target: self.target,
            count: self.count,
        })
    }
}

pub const AUDIT_COLUMNS: &str = "id, at, actor, client, action, target, summary, count";

macro_rules! impl_audit_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::AuditStore for $store {
            async fn append_audit(
                &self,
                entry: &$crate::domain::AuditEntry,
            ) -> $crate::store::StoreResult<()> {
                $crate::store::audit::insert_entry!(&self.pool, entry);
                Ok(())
            }

            async fn count_audit(&self, id: &str, more: i64) -> $crate::store::StoreResult<()> {
                sqlx::query("UPDATE audit_log SET count = count + $2 WHERE id = $1")
                    .bind(id)
                    .bind(more)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn list_audit(
                &self,
                f: &$crate::store::AuditFilter,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::AuditEntry>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM audit_log WHERE TRUE",
                    $crate::store::audit::AUDIT_COLUMNS
                ));
                if let Some(actor) = &f.actor {
                    qb.push(" AND actor = ").push_bind(actor.clone());
                }
                if let Some(action) = f.action {
                    qb.push(" AND action = ").push_bind(action.as_str());
                }
                match &f.target {
                    Some(t) if t.ends_with(':') => {
                        let pattern = format!("{}%", $crate::store::rows::like_literal(t));
                        qb.push(" AND target LIKE ")
                            .push_bind(pattern)
                            .push(" ESCAPE '\\'");
                    }
                    Some(t) => {
                        qb.push(" AND target = ").push_bind(t.clone());
                    }
                    None => {}
                }
                if let Some(from) = f.from {
                    qb.push(" AND at >= ")
                        .push_bind($crate::store::rows::to_ms(from));
                }
                if let Some(to) = f.to {
                    qb.push(" AND at < ")
                        .push_bind($crate::store::rows::to_ms(to));
                }
                if let Some(before) = &f.before {
                    qb.push(" AND id < ").push_bind(before.clone());
                }
                qb.push(" ORDER BY id DESC LIMIT ").push_bind(f.limit);
                qb.build_query_as::<$crate::store::audit::AuditRow>()
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map($crate::store::audit::AuditRow::into_entry)
                    .collect()
            }

            async fn last_audit(
                &self,
                action: $crate::domain::Action,
            ) -> $crate::store::StoreResult<Option<$crate::domain::AuditEntry>> {
                let sql = format!(
                    "SELECT {} FROM audit_log WHERE action = $1 ORDER BY id DESC LIMIT 1",
                    $crate::store::audit::AUDIT_COLUMNS
                );
                sqlx::query_as::<_, $crate::store::audit::AuditRow>(&sql)
                    .bind(action.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::store::audit::AuditRow::into_entry)
                    .transpose()
            }

            async fn prune_audit(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query("DELETE FROM audit_log WHERE at < $1")
                    .bind($crate::store::rows::to_ms(before))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use impl_audit_store;
