//! Script definitions, their trigger tokens and their sealed secrets.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{EnvCodec, ScriptFilter, ScriptListing, StoreError, StoreResult};
use crate::domain::{AuditEntry, NewVersion, ScriptDefinition};

#[async_trait]
pub trait ScriptStore: Send + Sync {
    /// Scripts matching the filter, without their body and env (lists do not show them).
    /// Scripts by name, each with its newest run: one query, one index look per script.
    async fn list_scripts(&self, filter: &ScriptFilter) -> StoreResult<Vec<ScriptListing>>;
    async fn get_script(&self, id: &str) -> StoreResult<ScriptDefinition>;
    async fn get_script_by_code(&self, code: &str) -> StoreResult<ScriptDefinition>;
    /// Creates, updates and deletes scripts with their versions and the audit entries that
    /// record it, all in one transaction: all of it is stored or none. Returns each change's
    /// version number (0 for a delete). `Conflict` when a codeIdentifier is taken; versions
    /// beyond the newest `keep_versions` that no run points to are dropped.
    async fn write_scripts(
        &self,
        changes: &[ScriptChange<'_>],
        audit: &[AuditEntry],
        keep_versions: i64,
    ) -> StoreResult<Vec<i64>>;
    /// Records version 1 of each script stored before versions were kept. Returns how many.
    async fn record_first_versions(&self) -> StoreResult<u64>;

    /// The script a trigger names, with its token's hash: one read, found or not.
    async fn script_for_trigger(
        &self,
        code: &str,
    ) -> StoreResult<Option<(ScriptDefinition, Option<String>)>>;
    /// The stored hash of the script's trigger token, if any.
    async fn token_hash(&self, script_id: &str) -> StoreResult<Option<String>>;
    async fn set_token(
        &self,
        script_id: &str,
        hash: Option<&str>,
        created_at: Option<DateTime<Utc>>,
        audit: &AuditEntry,
    ) -> StoreResult<()>;

    /// Checks that every stored secret opens with the current master key.
    async fn verify_secrets(&self) -> StoreResult<()>;
    /// Re-seals every secret under `next`, in one transaction. Returns the scripts changed.
    async fn reseal_secrets(&self, next: &EnvCodec, audit: &AuditEntry) -> StoreResult<u64>;
}

/// One change of a script, as `write_scripts` applies it.
pub enum ScriptChange<'a> {
    Create {
        script: &'a ScriptDefinition,
        version: NewVersion,
    },
    /// `version` is `None` when nothing a version keeps has changed.
    Update {
        script: &'a ScriptDefinition,
        version: Option<NewVersion>,
    },
    /// Removes the script with its versions, runs and their logs.
    Delete { id: &'a str },
}

/// A retry policy as stored: JSON, every field present.
pub fn retry_json(policy: &crate::domain::RetryPolicy) -> String {
    serde_json::to_string(policy).unwrap_or_else(|_| "{}".into())
}

/// A unique-constraint violation on insert or update means the codeIdentifier is taken.
pub fn unique_to_conflict(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
            field: "codeIdentifier",
            message: "another script already uses this code".into(),
        },
        _ => StoreError::Backend(e),
    }
}

/// Implements `ScriptStore` for `$store` (fields `pool: sqlx::Pool<$db>`, `codec: EnvCodec`).
macro_rules! impl_script_store {
    // `$runs_json`: the backend's aggregate turning `LAST_RUN_VALUES` of every script into
    // one JSON array of arrays, as text. `$newest_run`: the join that gives each script `{s}`
    // its newest run as `r`, one look into the (script_id, id) index per script (run ids sort
    // by creation time, so the newest run has the largest id).
    ($store:ty, $db:ty, $runs_json:literal, $newest_run:literal) => {
        impl $store {
            /// The one script whose `column` equals `value`.
            async fn script_where(
                &self,
                column: &'static str,
                value: &str,
            ) -> $crate::store::StoreResult<$crate::domain::ScriptDefinition> {
                let sql = format!(
                    "SELECT {} FROM scripts WHERE {column} = $1",
                    $crate::store::rows::SCRIPT_COLUMNS
                );
                sqlx::query_as::<_, $crate::store::rows::ScriptRow>(&sql)
                    .bind(value)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|row| self.codec.open(row))
                    .ok_or($crate::store::StoreError::NotFound("script"))?
            }

            /// A list filtered by name, codeIdentifier, description or type, read whole.
            async fn list_filtered(
                &self,
                filter: &$crate::store::ScriptFilter,
            ) -> $crate::store::StoreResult<Vec<$crate::store::ScriptListing>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT l.*, l.id AS script_id, {} FROM (SELECT {} FROM scripts WHERE TRUE",
                    $crate::store::rows::LAST_RUN_COLUMNS,
                    $crate::store::rows::SCRIPT_LIST_COLUMNS
                ));
                if let Some(q) = filter.q.as_ref().filter(|q| !q.is_empty()) {
                    // `%` and `_` are searched for as themselves (`_` is common in codes).
                    let pattern = format!(
                        "%{}%",
                        $crate::store::rows::like_literal(&q.to_lowercase())
                    );
                    qb.push(" AND (LOWER(name) LIKE ")
                        .push_bind(pattern.clone())
                        .push(" ESCAPE '\\' OR code_identifier LIKE ")
                        .push_bind(pattern.clone())
                        .push(" ESCAPE '\\' OR LOWER(description) LIKE ")
                        .push_bind(pattern)
                        .push(" ESCAPE '\\')");
                }
                if let Some(t) = &filter.script_type {
                    qb.push(" AND script_type = ").push_bind(t.clone());
                }
                qb.push(format!(
                    ") l {} ORDER BY LOWER(l.name), l.id",
                    format!($newest_run, s = "l")
                ));
                qb.build_query_as::<$crate::store::rows::ScriptListRow>()
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(|row| {
                        Ok($crate::store::ScriptListing {
                            last_run: row.last.last_run()?,
                            script: std::sync::Arc::new(self.codec.open(row.script)?),
                        })
                    })
                    .collect()
            }

            async fn insert_script(
                &self,
                tx: &mut sqlx::Transaction<'_, $db>,
                s: &$crate::domain::ScriptDefinition,
            ) -> $crate::store::StoreResult<()> {
                let env = self.codec.seal(&s.id, &s.env)?;
                let sql = format!(
                    "INSERT INTO scripts ({}) VALUES \
                     ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25,$26,1)",
                    $crate::store::rows::SCRIPT_COLUMNS
                );
                sqlx::query(&sql)
                    .bind(&s.id)
                    .bind(&s.name)
                    .bind(s.code_identifier.as_str())
                    .bind(&s.description)
                    .bind(s.script_type.as_str())
                    .bind(s.runner.as_str())
                    .bind(&s.script)
                    .bind(&s.default_working_directory)
                    .bind(env)
                    .bind(s.timeout_ms)
                    .bind(s.memory_limit_mb)
                    .bind(s.enabled)
                    .bind(s.concurrency.as_str())
                    .bind(s.schedule.enabled)
                    .bind(&s.schedule.cron)
                    .bind(&s.schedule.timezone)
                    .bind(s.next_run_at.map($crate::store::rows::to_ms))
                    .bind(s.api_trigger_enabled)
                    .bind(s.token_created_at.map($crate::store::rows::to_ms))
                    .bind($crate::store::rows::to_ms(s.created_at))
                    .bind($crate::store::rows::to_ms(s.updated_at))
                    .bind(s.schedule.catch_up.as_str())
                    .bind(s.tty)
                    .bind($crate::store::scripts::retry_json(&s.retry))
                    .bind(s.input_schema.as_ref().map(|i| i.to_json()))
                    .bind(self.codec.seal_webhooks(&s.id, &s.notifications)?)
                    .execute(&mut **tx)
                    .await
                    .map_err($crate::store::scripts::unique_to_conflict)?;
                Ok(())
            }

            /// Returns the script's version number, one more than before when `bump`.
            async fn update_script(
                &self,
                tx: &mut sqlx::Transaction<'_, $db>,
                s: &$crate::domain::ScriptDefinition,
                bump: bool,
            ) -> $crate::store::StoreResult<i64> {
                let env = self.codec.seal(&s.id, &s.env)?;
                let row: Option<(i64,)> = sqlx::query_as(
                    "UPDATE scripts SET name=$2, code_identifier=$3, description=$4, \
                     script_type=$5, runner=$6, script=$7, working_dir=$8, env=$9, \
                     timeout_ms=$10, enabled=$11, concurrency=$12, schedule_enabled=$13, \
                     schedule_cron=$14, schedule_tz=$15, next_fire_at=$16, api_enabled=$17, \
                     updated_at=$18, memory_limit_mb=$19, schedule_catch_up=$20, tty=$21, \
                     retry_policy=$22, input_schema=$23, notifications=$24, \
                     version = version + $25 WHERE id=$1 RETURNING version",
                )
                .bind(&s.id)
                .bind(&s.name)
                .bind(s.code_identifier.as_str())
                .bind(&s.description)
                .bind(s.script_type.as_str())
                .bind(s.runner.as_str())
                .bind(&s.script)
                .bind(&s.default_working_directory)
                .bind(env)
                .bind(s.timeout_ms)
                .bind(s.enabled)
                .bind(s.concurrency.as_str())
                .bind(s.schedule.enabled)
                .bind(&s.schedule.cron)
                .bind(&s.schedule.timezone)
                .bind(s.next_run_at.map($crate::store::rows::to_ms))
                .bind(s.api_trigger_enabled)
                .bind($crate::store::rows::to_ms(s.updated_at))
                .bind(s.memory_limit_mb)
                .bind(s.schedule.catch_up.as_str())
                .bind(s.tty)
                .bind($crate::store::scripts::retry_json(&s.retry))
                .bind(s.input_schema.as_ref().map(|i| i.to_json()))
                .bind(self.codec.seal_webhooks(&s.id, &s.notifications)?)
                .bind(i64::from(bump))
                .fetch_optional(&mut **tx)
                .await
                .map_err($crate::store::scripts::unique_to_conflict)?;
                row.map(|r| r.0)
                    .ok_or($crate::store::StoreError::NotFound("script"))
            }

            async fn delete_script(
                &self,
                tx: &mut sqlx::Transaction<'_, $db>,
                id: &str,
            ) -> $crate::store::StoreResult<()> {
                for sql in [
                    "DELETE FROM run_log_chunks WHERE run_id IN (SELECT id FROM runs WHERE script_id = $1)",
                    "DELETE FROM deliveries WHERE script_id = $1",
                    "DELETE FROM runs WHERE script_id = $1",
                    "DELETE FROM script_versions WHERE script_id = $1",
                ] {
                    sqlx::query(sql).bind(id).execute(&mut **tx).await?;
                }
                let done = sqlx::query("DELETE FROM scripts WHERE id = $1")
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound("script"));
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::ScriptStore for $store {
            async fn list_scripts(
                &self,
                filter: &$crate::store::ScriptFilter,
            ) -> $crate::store::StoreResult<Vec<$crate::store::ScriptListing>> {
                if !filter.is_whole() {
                    return self.list_filtered(filter).await;
                }
                // Each script's newest run, with the catalog's generation, in one value: eight
                // values a script decoded at once, not row by row.
                let (generation, runs): (i64, String) = sqlx::query_as(&format!(
                    "SELECT (SELECT generation FROM catalog_generation), {} FROM scripts s {}",
                    format!($runs_json, $crate::store::rows::LAST_RUN_VALUES),
                    format!($newest_run, s = "s")
                ))
                .fetch_one(&self.pool)
                .await?;
                let last: Vec<$crate::store::rows::LastRunRow> = serde_json::from_str(&runs)
                    .map_err(|e| {
                        $crate::store::StoreError::Corrupt(format!("the newest runs: {e}"))
                    })?;
                // The definitions kept here if they are of that generation, else read again
                // (with the generation they are of) and kept.
                let listed = match self.listing.at(generation) {
                    Some(listed) => listed,
                    None => {
                        let rows: Vec<$crate::store::rows::ListedScriptRow> =
                            sqlx::query_as(&format!(
                                "SELECT (SELECT generation FROM catalog_generation) AS generation, \
                                 {} FROM scripts ORDER BY LOWER(name), id",
                                $crate::store::rows::SCRIPT_LIST_COLUMNS
                            ))
                            .fetch_all(&self.pool)
                            .await?;
                        let read_at = rows.first().map(|row| row.generation);
                        let fresh = rows
                            .into_iter()
                            .map(|row| self.codec.open(row.script))
                            .collect::<$crate::store::StoreResult<Vec<_>>>()?;
                        match read_at {
                            Some(read_at) => self.listing.keep(read_at, fresh),
                            None => fresh.into_iter().map(std::sync::Arc::new).collect(),
                        }
                    }
                };
                let mut runs = std::collections::HashMap::with_capacity(last.len());
                for row in &last {
                    runs.insert(row.script_id.as_str(), row.last_run()?);
                }
                Ok(listed
                    .iter()
                    .map(|script| $crate::store::ScriptListing {
                        last_run: runs.remove(script.id.as_str()).flatten(),
                        script: script.clone(),
                    })
                    .collect())
            }

            async fn get_script(
                &self,
                id: &str,
            ) -> $crate::store::StoreResult<$crate::domain::ScriptDefinition> {
                self.script_where("id", id).await
            }

            async fn get_script_by_code(
                &self,
                code: &str,
            ) -> $crate::store::StoreResult<$crate::domain::ScriptDefinition> {
                self.script_where("code_identifier", code).await
            }

            async fn write_scripts(
                &self,
                changes: &[$crate::store::ScriptChange<'_>],
                audit: &[$crate::domain::AuditEntry],
                keep_versions: i64,
            ) -> $crate::store::StoreResult<Vec<i64>> {
                use $crate::store::ScriptChange;
                let mut tx = self.pool.begin().await?;
                let mut numbers = Vec::with_capacity(changes.len());
                for change in changes {
                    let number = match change {
                        ScriptChange::Create { script, version } => {
                            self.insert_script(&mut tx, script).await?;
                            $crate::store::versions::insert_version!(&mut *tx, &script.id, 1, version);
                            1
                        }
                        ScriptChange::Update { script, version } => {
                            let number = self
                                .update_script(&mut tx, script, version.is_some())
                                .await?;
                            if let Some(version) = version {
                                $crate::store::versions::insert_version!(&mut *tx, &script.id, number, version);
                                $crate::store::versions::prune_versions!(&mut *tx, &script.id, number, keep_versions);
                            }
                            number
                        }
                        ScriptChange::Delete { id } => {
                            self.delete_script(&mut tx, id).await?;
                            0
                        }
                    };
                    numbers.push(number);
                }
                for entry in audit {
                    $crate::store::audit::insert_entry!(&mut *tx, entry);
                }
                tx.commit().await?;
                Ok(numbers)
            }

            async fn record_first_versions(&self) -> $crate::store::StoreResult<u64> {
                let sql = format!(
                    "SELECT {} FROM scripts WHERE version = 0",
                    $crate::store::rows::SCRIPT_COLUMNS
                );
                let rows = sqlx::query_as::<_, $crate::store::rows::ScriptRow>(&sql)
                    .fetch_all(&self.pool)
                    .await?;
                let mut recorded = 0;
                for row in rows {
                    let script = self.codec.open(row)?;
                    let version = $crate::domain::NewVersion {
                        author: "system".into(),
                        message: "the definition when versions began to be kept".into(),
                        document: $crate::domain::ScriptDocument::of(&script),
                        secrets_changed: Vec::new(),
                        at: script.updated_at,
                    };
                    let mut tx = self.pool.begin().await?;
                    let claimed = sqlx::query("UPDATE scripts SET version = 1 WHERE id = $1 AND version = 0")
                        .bind(&script.id)
                        .execute(&mut *tx)
                        .await?;
                    if claimed.rows_affected() == 1 {
                        $crate::store::versions::insert_version!(&mut *tx, &script.id, 1, &version);
                        recorded += 1;
                    }
                    tx.commit().await?;
                }
                Ok(recorded)
            }

            async fn script_for_trigger(
                &self,
                code: &str,
            ) -> $crate::store::StoreResult<
                Option<($crate::domain::ScriptDefinition, Option<String>)>,
            > {
                let sql = format!(
                    "SELECT token_hash, {} FROM scripts WHERE code_identifier = $1",
                    $crate::store::rows::SCRIPT_COLUMNS
                );
                let Some(row) = sqlx::query_as::<_, $crate::store::rows::TriggerRow>(&sql)
                    .bind(code)
                    .fetch_optional(&self.pool)
                    .await?
                else {
                    return Ok(None);
                };
                Ok(Some((self.codec.open(row.script)?, row.token_hash)))
            }

            async fn token_hash(
                &self,
                script_id: &str,
            ) -> $crate::store::StoreResult<Option<String>> {
                let row: Option<(Option<String>,)> =
                    sqlx::query_as("SELECT token_hash FROM scripts WHERE id = $1")
                        .bind(script_id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.ok_or($crate::store::StoreError::NotFound("script"))?.0)
            }

            async fn set_token(
                &self,
                script_id: &str,
                hash: Option<&str>,
                created_at: Option<chrono::DateTime<chrono::Utc>>,
                audit: &$crate::domain::AuditEntry,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE scripts SET token_hash = $2, token_created_at = $3 WHERE id = $1",
                )
                .bind(script_id)
                .bind(hash)
                .bind(created_at.map($crate::store::rows::to_ms))
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound("script"));
                }
                $crate::store::audit::insert_entry!(&mut *tx, audit);
                tx.commit().await?;
                Ok(())
            }

            async fn verify_secrets(&self) -> $crate::store::StoreResult<()> {
                let rows: Vec<(String, String, String)> =
                    sqlx::query_as("SELECT id, env, notifications FROM scripts")
                        .fetch_all(&self.pool)
                        .await?;
                for (id, env, hooks) in rows {
                    self.codec.open_env(&id, &env)?;
                    self.codec.open_webhooks(&id, &hooks)?;
                }
                Ok(())
            }

            async fn reseal_secrets(
                &self,
                next: &$crate::store::EnvCodec,
                audit: &$crate::domain::AuditEntry,
            ) -> $crate::store::StoreResult<u64> {
                let mut tx = self.pool.begin().await?;
                let rows: Vec<(String, String, String)> =
                    sqlx::query_as("SELECT id, env, notifications FROM scripts")
                        .fetch_all(&mut *tx)
                        .await?;
                let mut changed = 0;
                for (id, env, hooks) in rows {
                    let plain = self.codec.open_env(&id, &env)?;
                    let hooks = self.codec.open_webhooks(&id, &hooks)?;
                    if !plain.iter().any(|e| e.secret) && !hooks.iter().any(|h| h.secret.is_some())
                    {
                        continue;
                    }
                    sqlx::query("UPDATE scripts SET env = $2, notifications = $3 WHERE id = $1")
                        .bind(&id)
                        .bind(next.seal(&id, &plain)?)
                        .bind(next.seal_webhooks(&id, &hooks)?)
                        .execute(&mut *tx)
                        .await?;
                    changed += 1;
                }
                let mut audit = audit.clone();
                audit.summary["scripts"] = changed.into();
                $crate::store::audit::insert_entry!(&mut *tx, &audit);
                tx.commit().await?;
                Ok(changed)
            }
        }
    };
}

pub(crate) use impl_script_store;
