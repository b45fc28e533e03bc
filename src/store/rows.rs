//! Row shapes shared by both backends and their conversion to domain types.

use chrono::{DateTime, TimeZone, Utc};

use super::{StoreError, StoreResult};
use crate::domain::{
    CodeIdentifier, Concurrency, EnvVar, InputSchema, Run, RunStatus, Runner, ScheduleSettings,
    ScriptDefinition, ScriptType, Trigger,
};

pub fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// `text` for a `LIKE … ESCAPE '\'` pattern: its `%`, `_` and `\` match themselves.
pub fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub const SCRIPT_COLUMNS: &str = "id, name, code_identifier, description, script_type, runner, \
    script, working_dir, env, timeout_ms, memory_limit_mb, enabled, concurrency, schedule_enabled, schedule_cron, \
    schedule_tz, next_fire_at, api_enabled, token_created_at, created_at, updated_at, schedule_catch_up, tty, retry_policy, input_schema, notifications, version";

/// The same columns for lists: no body, no env (nothing to decrypt).
pub const SCRIPT_LIST_COLUMNS: &str =
    "id, name, code_identifier, description, script_type, runner, \
    '' AS script, working_dir, '[]' AS env, timeout_ms, memory_limit_mb, enabled, concurrency, \
    schedule_enabled, schedule_cron, schedule_tz, next_fire_at, api_enabled, token_created_at, \
    created_at, updated_at, schedule_catch_up, tty, retry_policy, input_schema, '[]' AS notifications, version";

#[derive(sqlx::FromRow)]
pub struct ScriptRow {
    id: String,
    name: String,
    code_identifier: String,
    description: String,
    script_type: String,
    runner: String,
    script: String,
    working_dir: Option<String>,
    env: String,
    timeout_ms: i64,
    memory_limit_mb: Option<i64>,
    enabled: bool,
    concurrency: String,
    schedule_enabled: bool,
    schedule_cron: String,
    schedule_tz: String,
    schedule_catch_up: String,
    tty: bool,
    retry_policy: String,
    input_schema: Option<String>,
    notifications: String,
    next_fire_at: Option<i64>,
    api_enabled: bool,
    token_created_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    version: i64,
}

impl ScriptRow {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The stored env column, as the codec wrote it.
    pub fn env_text(&self) -> &str {
        &self.env
    }

    /// The stored notifications column, as the codec wrote it.
    pub fn notifications_text(&self) -> &str {
        &self.notifications
    }

    pub fn into_definition(
        self,
        env: Vec<EnvVar>,
        notifications: Vec<crate::domain::Webhook>,
    ) -> StoreResult<ScriptDefinition> {
        let r = self;
        let corrupt = |what: &str| StoreError::Corrupt(format!("script {}: bad {what}", r.id));
        let retry = serde_json::from_str(&r.retry_policy).map_err(|_| corrupt("retry policy"))?;
        let input_schema = match &r.input_schema {
            Some(raw) => Some(InputSchema::parse(raw).map_err(|_| corrupt("input form"))?),
            None => None,
        };
        Ok(ScriptDefinition {
            notifications,
            retry,
            input_schema,
            script_type: ScriptType::parse(&r.script_type).ok_or_else(|| corrupt("type"))?,
            runner: Runner::parse(&r.runner).ok_or_else(|| corrupt("runner"))?,
            concurrency: Concurrency::parse(&r.concurrency)
                .ok_or_else(|| corrupt("concurrency"))?,
            id: r.id,
            name: r.name,
            code_identifier: CodeIdentifier::from_trusted(r.code_identifier),
            description: r.description,
            script: r.script,
            default_working_directory: r.working_dir,
            env,
            timeout_ms: r.timeout_ms,
            memory_limit_mb: r.memory_limit_mb,
            tty: r.tty,
            enabled: r.enabled,
            schedule: ScheduleSettings {
                enabled: r.schedule_enabled,
                cron: r.schedule_cron,
                timezone: r.schedule_tz,
                catch_up: crate::domain::CatchUp::parse(&r.schedule_catch_up).unwrap_or_default(),
            },
            next_run_at: r.next_fire_at.map(from_ms),
            api_trigger_enabled: r.api_enabled,
            token_created_at: r.token_created_at.map(from_ms),
            created_at: from_ms(r.created_at),
            updated_at: from_ms(r.updated_at),
            version: r.version,
        })
    }
}

/// A script with its trigger token's hash, for the public trigger.
#[derive(sqlx::FromRow)]
pub struct TriggerRow {
    pub token_hash: Option<String>,
    #[sqlx(flatten)]
    pub script: ScriptRow,
}

pub const RUN_COLUMNS: &str = "id, script_id, status, trigger_kind, meta, input, queued_at, \
    started_at, finished_at, exit_code, signal, error, output_tail, result, log_bytes, log_truncated, \
    node_id, script_version";

/// The same columns for lists: no tail, no result, and the error cut short, so a page of runs
/// stays small whatever the runs produced.
pub const RUN_SUMMARY_COLUMNS: &str = "id, script_id, status, trigger_kind, meta, input, queued_at, \
    started_at, finished_at, exit_code, signal, SUBSTR(error, 1, 1000) AS error, '' AS output_tail, \
    NULL AS result, log_bytes, log_truncated, node_id, script_version";

#[derive(sqlx::FromRow)]
pub struct RunRow {
    id: String,
    script_id: String,
    status: String,
    trigger_kind: String,
    meta: String,
    input: Option<String>,
    queued_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    exit_code: Option<i32>,
    signal: Option<i32>,
    error: Option<String>,
    output_tail: String,
    result: Option<String>,
    log_bytes: i64,
    log_truncated: bool,
    node_id: Option<String>,
    script_version: Option<i64>,
}

/// A scripts-list entry: the script's list columns and its newest run's summary, if any.
#[derive(sqlx::FromRow)]
pub struct ScriptListRow {
    #[sqlx(flatten)]
    pub script: ScriptRow,
    #[sqlx(flatten)]
    pub last: LastRunRow,
}

/// A script's list columns, with the catalog's generation read in the same statement.
#[derive(sqlx::FromRow)]
pub struct ListedScriptRow {
    #[sqlx(flatten)]
    pub script: ScriptRow,
    pub generation: i64,
}

/// A script's newest run as a list shows it: a row's `LAST_RUN_COLUMNS` (with the script's id
/// as `script_id`), or a JSON array of the same values in the same order (`LAST_RUNS_JSON`).
#[derive(sqlx::FromRow, serde::Deserialize)]
pub struct LastRunRow {
    pub script_id: String,
    last_id: Option<String>,
    last_status: Option<String>,
    last_trigger: Option<String>,
    last_queued_at: Option<i64>,
    last_started_at: Option<i64>,
    last_finished_at: Option<i64>,
    last_exit_code: Option<i32>,
}

/// The newest run's columns a list entry carries, named for `LastRunRow`.
pub const LAST_RUN_COLUMNS: &str = "r.id AS last_id, r.status AS last_status, \
    r.trigger_kind AS last_trigger, r.queued_at AS last_queued_at, \
    r.started_at AS last_started_at, r.finished_at AS last_finished_at, \
    r.exit_code AS last_exit_code";

/// The values of a `LastRunRow`, in its order, for a backend's JSON array function.
pub const LAST_RUN_VALUES: &str =
    "s.id, r.id, r.status, r.trigger_kind, r.queued_at, r.started_at, r.finished_at, r.exit_code";

impl LastRunRow {
    /// The script's newest run, as much of it as a list shows.
    pub fn last_run(&self) -> StoreResult<Option<Run>> {
        let (Some(id), Some(status), Some(trigger), Some(queued_at)) = (
            &self.last_id,
            &self.last_status,
            &self.last_trigger,
            self.last_queued_at,
        ) else {
            return Ok(None);
        };
        RunRow {
            id: id.clone(),
            script_id: self.script_id.clone(),
            status: status.clone(),
            trigger_kind: trigger.clone(),
            meta: "{}".into(),
            input: None,
            queued_at,
            started_at: self.last_started_at,
            finished_at: self.last_finished_at,
            exit_code: self.last_exit_code,
            signal: None,
            error: None,
            output_tail: String::new(),
            result: None,
            log_bytes: 0,
            log_truncated: false,
            node_id: None,
            script_version: None,
        }
        .try_into()
        .map(Some)
    }
}

/// A run a claim took, and its script's version at that moment.
#[derive(sqlx::FromRow)]
pub struct ClaimRow {
    #[sqlx(flatten)]
    run: RunRow,
    current_version: Option<i64>,
    concurrency: String,
}

impl TryFrom<ClaimRow> for super::queue::Claimed {
    type Error = StoreError;

    fn try_from(r: ClaimRow) -> StoreResult<Self> {
        let concurrency = crate::domain::Concurrency::parse(&r.concurrency)
            .ok_or_else(|| StoreError::Corrupt(format!("run {}: bad concurrency", r.run.id)))?;
        Ok(Self {
            run: r.run.try_into()?,
            current_version: r.current_version,
            concurrency,
        })
    }
}

fn parse_json(text: Option<&str>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

impl TryFrom<RunRow> for Run {
    type Error = StoreError;

    fn try_from(r: RunRow) -> StoreResult<Self> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("run {}: bad {what}", r.id));
        Ok(Run {
            status: RunStatus::parse(&r.status).ok_or_else(|| corrupt("status"))?,
            trigger: Trigger::parse(&r.trigger_kind).ok_or_else(|| corrupt("trigger"))?,
            meta: parse_json(Some(&r.meta)).unwrap_or_default(),
            input: parse_json(r.input.as_deref()),
            result: parse_json(r.result.as_deref()),
            id: r.id,
            script_id: r.script_id,
            queued_at: from_ms(r.queued_at),
            started_at: r.started_at.map(from_ms),
            finished_at: r.finished_at.map(from_ms),
            exit_code: r.exit_code,
            signal: r.signal,
            error: r.error,
            output_tail: r.output_tail,
            log_bytes: r.log_bytes,
            log_truncated: r.log_truncated,
            node_id: r.node_id,
            script_version: r.script_version,
        })
    }
}
