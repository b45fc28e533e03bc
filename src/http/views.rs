//! The JSON shapes of the API (camelCase, RFC 3339 UTC times). Secret values never leave
//! through here.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::domain::{Run, ScriptDefinition};

pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScriptView {
    pub id: String,
    pub name: String,
    pub code_identifier: String,
    pub description: String,
    #[serde(rename = "type")]
    pub script_type: &'static str,
    pub runner: &'static str,
    /// Left out of lists, which stay small however large the scripts are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    pub default_working_directory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvView>>,
    pub timeout_ms: i64,
    pub memory_limit_mb: Option<i64>,
    pub enabled: bool,
    pub concurrency: &'static str,
    pub schedule: ScheduleView,
    pub api_trigger: ApiTriggerView,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRunView>,
}

/// What a list shows of a script's newest run.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastRunView {
    pub id: String,
    pub status: &'static str,
    pub trigger: &'static str,
    pub queued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i32>,
}

impl From<&Run> for LastRunView {
    fn from(r: &Run) -> Self {
        Self {
            id: r.id.clone(),
            status: r.status.as_str(),
            trigger: r.trigger.as_str(),
            queued_at: time(r.queued_at),
            started_at: r.started_at.map(time),
            finished_at: r.finished_at.map(time),
            exit_code: r.exit_code,
        }
    }
}

#[derive(Serialize)]
pub struct EnvView {
    pub key: String,
    /// `null` for secrets: they are write-only.
    pub value: Option<String>,
    pub secret: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    pub enabled: bool,
    pub cron: String,
    pub timezone: String,
    pub next_run_at: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiTriggerView {
    pub enabled: bool,
    pub has_token: bool,
    pub token_created_at: Option<String>,
}

impl ScriptView {
    /// A list entry: everything but the body and the env.
    pub fn listed(s: &ScriptDefinition, last_run: Option<&Run>) -> Self {
        Self {
            script: None,
            env: None,
            last_run: last_run.map(LastRunView::from),
            ..Self::from(s)
        }
    }
}

impl From<&ScriptDefinition> for ScriptView {
    fn from(s: &ScriptDefinition) -> Self {
        Self {
            id: s.id.clone(),
            name: s.name.clone(),
            code_identifier: s.code_identifier.to_string(),
            description: s.description.clone(),
            script_type: s.script_type.as_str(),
            runner: s.runner.as_str(),
            script: Some(s.script.clone()),
            default_working_directory: s.default_working_directory.clone(),
            env: Some(
                s.env
                    .iter()
                    .map(|e| EnvView {
                        key: e.key.clone(),
                        value: (!e.secret).then(|| e.value.clone()),
                        secret: e.secret,
                    })
                    .collect(),
            ),
            timeout_ms: s.timeout_ms,
            memory_limit_mb: s.memory_limit_mb,
            enabled: s.enabled,
            concurrency: s.concurrency.as_str(),
            schedule: ScheduleView {
                enabled: s.schedule.enabled,
                cron: s.schedule.cron.clone(),
                timezone: s.schedule.timezone.clone(),
                next_run_at: s.next_run_at.map(time),
            },
            api_trigger: ApiTriggerView {
                enabled: s.api_trigger_enabled,
                has_token: s.token_created_at.is_some(),
                token_created_at: s.token_created_at.map(time),
            },
            created_at: time(s.created_at),
            updated_at: time(s.updated_at),
            last_run: None,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    pub id: String,
    pub script_id: String,
    pub status: &'static str,
    pub trigger: &'static str,
    pub meta: serde_json::Value,
    pub input: Option<serde_json::Value>,
    pub queued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tail: Option<String>,
    pub result: Option<serde_json::Value>,
    pub log_bytes: i64,
    pub log_truncated: bool,
    /// The node that ran (or runs) it; null while queued.
    pub node: Option<String>,
}

impl RunView {
    /// The full snapshot, with the output tail.
    pub fn full(r: &Run) -> Self {
        Self {
            output_tail: Some(r.output_tail.clone()),
            ..Self::summary(r)
        }
    }

    /// For lists: everything but the tail.
    pub fn summary(r: &Run) -> Self {
        Self {
            id: r.id.clone(),
            script_id: r.script_id.clone(),
            status: r.status.as_str(),
            trigger: r.trigger.as_str(),
            meta: r.meta.clone(),
            input: r.input.clone(),
            queued_at: time(r.queued_at),
            started_at: r.started_at.map(time),
            finished_at: r.finished_at.map(time),
            duration_ms: r.duration_ms(),
            exit_code: r.exit_code,
            signal: r.signal,
            error: r.error.clone(),
            output_tail: None,
            result: r.result.clone(),
            log_bytes: r.log_bytes,
            log_truncated: r.log_truncated,
            node: r.node_id.clone(),
        }
    }
}
