//! A script's versions: written with the change that makes them (see `write_scripts`), read
//! here.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::Version;

#[async_trait]
pub trait VersionStore: Send + Sync {
    /// A script's versions, newest first, older than `before` when given, without their
    /// documents.
    async fn list_versions(
        &self,
        script_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<Version>>;
    /// One version with its document.
    async fn get_version(&self, script_id: &str, number: i64) -> StoreResult<Version>;
    /// The secrets changed by the versions after `after` up to `upto`.
    async fn secrets_changed_between(
        &self,
        script_id: &str,
        after: i64,
        upto: i64,
    ) -> StoreResult<Vec<String>>;
}

/// Inserts a `NewVersion` numbered `$number` for `$script_id` on `$conn`.
macro_rules! insert_version {
    ($conn:expr, $script_id:expr, $number:expr, $version:expr) => {{
        let v: &$crate::domain::NewVersion = $version;
        // One parameter type whatever the caller wrote: a prepared statement keeps the first.
        let number: i64 = $number;
        let definition = serde_json::to_string(&v.document)
            .map_err(|e| $crate::store::StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO script_versions \
             (script_id, version, created_at, author, message, definition, secrets_changed) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind($script_id)
        .bind(number)
        .bind($crate::store::rows::to_ms(v.at))
        .bind(&v.author)
        .bind(&v.message)
        .bind(definition)
        .bind(serde_json::Value::from(v.secrets_changed.clone()).to_string())
        .execute($conn)
        .await?;
    }};
}

/// Drops a script's versions older than the newest `$keep` (counting from `$newest`), but
/// never one a run still points to.
macro_rules! prune_versions {
    ($conn:expr, $script_id:expr, $newest:expr, $keep:expr) => {{
        sqlx::query(
            "DELETE FROM script_versions WHERE script_id = $1 AND version <= $2 \
             AND version NOT IN (SELECT script_version FROM runs \
                                 WHERE script_id = $1 AND script_version IS NOT NULL)",
        )
        .bind($script_id)
        .bind::<i64>($newest - $keep)
        .execute($conn)
        .await?;
    }};
}

pub(crate) use {insert_version, prune_versions};

#[derive(sqlx::FromRow)]
pub struct VersionRow {
    version: i64,
    created_at: i64,
    author: String,
    message: String,
    definition: Option<String>,
    secrets_changed: String,
}

impl VersionRow {
    pub fn into_version(self) -> StoreResult<Version> {
        let corrupt = || super::StoreError::Corrupt(format!("version {}", self.version));
        Ok(Version {
            number: self.version,
            created_at: super::rows::from_ms(self.created_at),
            secrets_changed: serde_json::from_str(&self.secrets_changed).map_err(|_| corrupt())?,
            document: match &self.definition {
                Some(text) => Some(serde_json::from_str(text).map_err(|_| corrupt())?),
                None => None,
            },
            author: self.author,
            message: self.message,
        })
    }
}

macro_rules! impl_version_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::VersionStore for $store {
            async fn list_versions(
                &self,
                script_id: &str,
                before: Option<i64>,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::Version>> {
                sqlx::query_as::<_, $crate::store::versions::VersionRow>(
                    "SELECT version, created_at, author, message, NULL AS definition, \
                     secrets_changed FROM script_versions \
                     WHERE script_id = $1 AND version < $2 ORDER BY version DESC LIMIT $3",
                )
                .bind(script_id)
                .bind(before.unwrap_or(i64::MAX))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map($crate::store::versions::VersionRow::into_version)
                .collect()
            }

            async fn get_version(
                &self,
                script_id: &str,
                number: i64,
            ) -> $crate::store::StoreResult<$crate::domain::Version> {
                sqlx::query_as::<_, $crate::store::versions::VersionRow>(
                    "SELECT version, created_at, author, message, definition, secrets_changed \
                     FROM script_versions WHERE script_id = $1 AND version = $2",
                )
                .bind(script_id)
                .bind(number)
                .fetch_optional(&self.pool)
                .await?
                .ok_or($crate::store::StoreError::NotFound("version"))?
                .into_version()
            }

            async fn secrets_changed_between(
                &self,
                script_id: &str,
                after: i64,
                upto: i64,
            ) -> $crate::store::StoreResult<Vec<String>> {
                let rows: Vec<(String,)> = sqlx::query_as(
                    "SELECT secrets_changed FROM script_versions \
                     WHERE script_id = $1 AND version > $2 AND version <= $3",
                )
                .bind(script_id)
                .bind(after)
                .bind(upto)
                .fetch_all(&self.pool)
                .await?;
                let mut keys: Vec<String> = Vec::new();
                for (text,) in rows {
                    let list: Vec<String> = serde_json::from_str(&text).map_err(|_| {
                        $crate::store::StoreError::Corrupt("a version's secrets".into())
                    })?;
                    keys.extend(list);
                }
                keys.sort();
                keys.dedup();
                Ok(keys)
            }
        }
    };
}

pub(crate) use impl_version_store;
