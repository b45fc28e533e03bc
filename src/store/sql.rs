//! The `Store` implementation both backends share. The SQL is portable between SQLite and
//! PostgreSQL (`$n` placeholders, integer times, JSON as text); a macro stamps it out for each
//! `sqlx` database type so the queries exist once.

/// Implements `Store` for `$store`, a struct with a `pool: sqlx::Pool<$db>` field.
macro_rules! impl_sql_store {
    ($store:ty, $db:ty) => {
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
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn ping(&self) -> $crate::store::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn list_scripts(
                &self,
                filter: &$crate::store::ScriptFilter,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::ScriptDefinition>> {
                let pattern = filter
                    .q
                    .as_ref()
                    .filter(|q| !q.is_empty())
                    .map(|q| format!("%{}%", q.to_lowercase().replace(['%', '_'], "")));
                let sql = format!(
                    "SELECT {} FROM scripts WHERE ($1 IS NULL OR LOWER(name) LIKE $1 \
                     OR code_identifier LIKE $1 OR LOWER(description) LIKE $1) \
                     AND ($2 IS NULL OR script_type = $2) ORDER BY LOWER(name), id",
                    $crate::store::rows::SCRIPT_COLUMNS
                );
                let rows = sqlx::query_as::<_, $crate::store::rows::ScriptRow>(&sql)
                    .bind(pattern)
                    .bind(filter.script_type.clone())
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(|row| self.codec.open(row)).collect()
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

            async fn insert_script(
                &self,
                s: &$crate::domain::ScriptDefinition,
            ) -> $crate::store::StoreResult<()> {
                let env = self.codec.seal(&s.id, &s.env)?;
                let sql = format!(
                    "INSERT INTO scripts ({}) VALUES \
                     ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21)",
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
                    .execute(&self.pool)
                    .await
                    .map_err($crate::store::sql::unique_to_conflict)?;
                Ok(())
            }

            async fn update_script(
                &self,
                s: &$crate::domain::ScriptDefinition,
            ) -> $crate::store::StoreResult<()> {
                let env = self.codec.seal(&s.id, &s.env)?;
                let done = sqlx::query(
                    "UPDATE scripts SET name=$2, code_identifier=$3, description=$4, \
                     script_type=$5, runner=$6, script=$7, working_dir=$8, env=$9, \
                     timeout_ms=$10, enabled=$11, concurrency=$12, schedule_enabled=$13, \
                     schedule_cron=$14, schedule_tz=$15, next_fire_at=$16, api_enabled=$17, \
                     updated_at=$18, memory_limit_mb=$19 WHERE id=$1",
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
                .execute(&self.pool)
                .await
                .map_err($crate::store::sql::unique_to_conflict)?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound("script"));
                }
                Ok(())
            }

            async fn delete_script(&self, id: &str) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "DELETE FROM run_logs WHERE run_id IN (SELECT id FROM runs WHERE script_id = $1)",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM runs WHERE script_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query("DELETE FROM scripts WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound("script"));
                }
                tx.commit().await?;
                Ok(())
            }

            async fn token_hash(&self, script_id: &str) -> $crate::store::StoreResult<Option<String>> {
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
            ) -> $crate::store::StoreResult<()> {
                let done = sqlx::query(
                    "UPDATE scripts SET token_hash = $2, token_created_at = $3 WHERE id = $1",
                )
                .bind(script_id)
                .bind(hash)
                .bind(created_at.map($crate::store::rows::to_ms))
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound("script"));
                }
                Ok(())
            }

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
                let done = sqlx::query(
                    "UPDATE scripts SET next_fire_at = $3 WHERE id = $1 AND \
                     (next_fire_at = $2 OR (next_fire_at IS NULL AND $2 IS NULL))",
                )
                .bind(script_id)
                .bind(expected.map($crate::store::rows::to_ms))
                .bind(next.map($crate::store::rows::to_ms))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_run(
                &self,
                r: &$crate::domain::Run,
                node_id: &str,
            ) -> $crate::store::StoreResult<()> {
                let sql = format!(
                    "INSERT INTO runs ({}, node_id) VALUES \
                     ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)",
                    $crate::store::rows::RUN_COLUMNS
                );
                sqlx::query(&sql)
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
                    .bind(node_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn get_run(&self, id: &str) -> $crate::store::StoreResult<$crate::domain::Run> {
                let sql = format!(
                    "SELECT {} FROM runs WHERE id = $1",
                    $crate::store::rows::RUN_COLUMNS
                );
                sqlx::query_as::<_, $crate::store::rows::RunRow>(&sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or($crate::store::StoreError::NotFound("run"))?
                    .try_into()
            }

            async fn list_runs(
                &self,
                f: &$crate::store::RunFilter,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::Run>> {
                let sql = format!(
                    "SELECT {} FROM runs WHERE ($1 IS NULL OR script_id = $1) \
                     AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR id < $3) \
                     ORDER BY id DESC LIMIT $4",
                    $crate::store::rows::RUN_SUMMARY_COLUMNS
                );
                let rows = sqlx::query_as::<_, $crate::store::rows::RunRow>(&sql)
                    .bind(&f.script_id)
                    .bind(&f.status)
                    .bind(&f.before)
                    .bind(f.limit)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn last_runs(
                &self,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::Run>> {
                // Run ids sort by creation time, so the newest run has the largest id.
                let sql = format!(
                    "SELECT {} FROM runs WHERE id IN (SELECT MAX(id) FROM runs GROUP BY script_id)",
                    $crate::store::rows::RUN_SUMMARY_COLUMNS
                );
                let rows = sqlx::query_as::<_, $crate::store::rows::RunRow>(&sql)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn mark_running(
                &self,
                id: &str,
                started_at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<bool> {
                let sql = format!(
                    "UPDATE runs SET status = 'running', started_at = $2 WHERE id = $1 AND {}",
                    $crate::store::rows::may_become($crate::domain::RunStatus::Running)
                );
                let done = sqlx::query(&sql)
                .bind(id)
                .bind($crate::store::rows::to_ms(started_at))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn finish_run(
                &self,
                id: &str,
                f: &$crate::store::RunFinish,
            ) -> $crate::store::StoreResult<bool> {
                let sql = format!(
                    "UPDATE runs SET status = $2, finished_at = $3, exit_code = $4, signal = $5, \
                     error = $6, output_tail = $7, result = $8, log_bytes = $9, \
                     log_truncated = $10 WHERE id = $1 AND {}",
                    $crate::store::rows::may_become(f.outcome.status)
                );
                let done = sqlx::query(&sql)
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
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn update_tail(&self, id: &str, tail: &str) -> $crate::store::StoreResult<()> {
                sqlx::query("UPDATE runs SET output_tail = $2 WHERE id = $1")
                    .bind(id)
                    .bind(tail)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn heartbeat(
                &self,
                node_id: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "UPDATE runs SET heartbeat_at = $2 WHERE node_id = $1 \
                     AND status IN ('queued', 'running')",
                )
                .bind(node_id)
                .bind($crate::store::rows::to_ms(at))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn fail_expired_runs(
                &self,
                node_id: &str,
                cutoff: chrono::DateTime<chrono::Utc>,
                error: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<u64> {
                let sql = format!(
                    "UPDATE runs SET status = 'failed', error = $1, finished_at = $2 \
                     WHERE node_id <> $3 AND COALESCE(heartbeat_at, queued_at) < $4 AND {}",
                    $crate::store::rows::may_become($crate::domain::RunStatus::Failed)
                );
                let done = sqlx::query(&sql)
                    .bind(error)
                    .bind($crate::store::rows::to_ms(at))
                    .bind(node_id)
                    .bind($crate::store::rows::to_ms(cutoff))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn fail_unfinished_runs(
                &self,
                node_id: &str,
                error: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<u64> {
                let sql = format!(
                    "UPDATE runs SET status = 'failed', error = $1, finished_at = $2 \
                     WHERE node_id = $3 AND {}",
                    $crate::store::rows::may_become($crate::domain::RunStatus::Failed)
                );
                let done = sqlx::query(&sql)
                .bind(error)
                .bind($crate::store::rows::to_ms(at))
                .bind(node_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn prune_runs(&self, script_id: &str, keep: u32) -> $crate::store::StoreResult<u64> {
                // Two single statements rather than a read-then-write transaction: SQLite in
                // WAL mode cannot upgrade a read snapshot to a write while others commit.
                let old = "SELECT id FROM runs WHERE script_id = $1 \
                     AND status NOT IN ('queued', 'running') ORDER BY id DESC LIMIT 1000000 OFFSET $2";
                sqlx::query(&format!("DELETE FROM run_logs WHERE run_id IN ({old})"))
                    .bind(script_id)
                    .bind(i64::from(keep))
                    .execute(&self.pool)
                    .await?;
                let done = sqlx::query(&format!("DELETE FROM runs WHERE id IN ({old})"))
                    .bind(script_id)
                    .bind(i64::from(keep))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn verify_secrets(&self) -> $crate::store::StoreResult<()> {
                let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, env FROM scripts")
                    .fetch_all(&self.pool)
                    .await?;
                for (id, env) in rows {
                    self.codec.open_env(&id, &env)?;
                }
                Ok(())
            }

            async fn reseal_secrets(
                &self,
                next: &$crate::store::EnvCodec,
            ) -> $crate::store::StoreResult<u64> {
                let mut tx = self.pool.begin().await?;
                let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, env FROM scripts")
                    .fetch_all(&mut *tx)
                    .await?;
                let mut changed = 0;
                for (id, env) in rows {
                    let plain = self.codec.open_env(&id, &env)?;
                    if !plain.iter().any(|e| e.secret) {
                        continue;
                    }
                    sqlx::query("UPDATE scripts SET env = $2 WHERE id = $1")
                        .bind(&id)
                        .bind(next.seal(&id, &plain)?)
                        .execute(&mut *tx)
                        .await?;
                    changed += 1;
                }
                tx.commit().await?;
                Ok(changed)
            }

            async fn append_log(
                &self,
                run_id: &str,
                lines: &[$crate::domain::LogLine],
            ) -> $crate::store::StoreResult<()> {
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
                    qb.build().execute(&self.pool).await?;
                }
                Ok(())
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
        }
    };
}

pub(crate) use impl_sql_store;

/// A unique-constraint violation on insert or update means the codeIdentifier is taken.
pub fn unique_to_conflict(e: sqlx::Error) -> super::StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => super::StoreError::Conflict {
            field: "codeIdentifier",
            message: "a script with this codeIdentifier already exists".into(),
        },
        _ => super::StoreError::Backend(e),
    }
}
