//! The JSON shapes of the API (camelCase, RFC 3339 UTC times). Secret values never leave
//! through here.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{Concurrency, Run, RunStatus, Runner, ScriptDefinition, ScriptType, Trigger};

pub fn time(t: DateTime<Utc>) -> String {
    crate::domain::timestamp(t)
}

/// A script. `script` and `env` are present when one script is read, created or updated, and
/// left out of list entries; `lastRun` is present in list entries of scripts that have run.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Script, example = json!({
    "id": "019a5f0c-3b7e-7d21-9a4c-5e0f2b1c7d88",
    "name": "Nightly backup",
    "codeIdentifier": "nightly-backup",
    "description": "Dumps the database to /var/backups",
    "type": "bash",
    "runner": "host",
    "script": "pg_dump app > /var/backups/app.sql\necho done",
    "defaultWorkingDirectory": "/var/backups",
    "env": [
        {"key": "PGHOST", "value": "db.internal", "secret": false},
        {"key": "PGPASSWORD", "value": null, "secret": true}
    ],
    "timeoutMs": 600000,
    "memoryLimitMb": null,
    "enabled": true,
    "concurrency": "single",
    "schedule": {"enabled": true, "cron": "0 3 * * *", "timezone": "Europe/Berlin",
                 "nextRunAt": "2026-11-26T02:00:00.000Z"},
    "apiTrigger": {"enabled": false, "hasToken": false, "tokenCreatedAt": null},
    "createdAt": "2026-11-25T09:12:03.118Z",
    "updatedAt": "2026-11-25T09:12:03.118Z",
    "version": 1
}))]
pub struct ScriptView {
    pub id: String,
    pub name: String,
    pub code_identifier: String,
    pub description: String,
    #[serde(rename = "type")]
    #[schema(value_type = ScriptType)]
    pub script_type: &'static str,
    #[schema(value_type = Runner)]
    pub runner: &'static str,
    /// Left out of lists, which stay small however large the scripts are.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub script: Option<String>,
    #[schema(required = true)]
    pub default_working_directory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub env: Option<Vec<EnvView>>,
    pub timeout_ms: i64,
    #[schema(required = true)]
    pub memory_limit_mb: Option<i64>,
    /// Host runs under a pseudo-terminal (stdout and stderr as one stream).
    pub tty: bool,
    pub retry: crate::domain::RetryPolicy,
    /// Left out of list entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub notifications: Option<Vec<WebhookView>>,
    /// The run input's form (see `ScriptInput.inputSchema`); null when none.
    #[schema(required = true, value_type = Option<crate::domain::InputSchema>)]
    pub input_schema: Option<Box<serde_json::value::RawValue>>,
    pub enabled: bool,
    #[schema(value_type = Concurrency)]
    pub concurrency: &'static str,
    pub schedule: ScheduleView,
    pub api_trigger: ApiTriggerView,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The current version's number (see the versions API).
    pub version: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub last_run: Option<LastRunView>,
}

/// The newest run of a script, as a list entry shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = LastRun)]
pub struct LastRunView {
    pub id: String,
    #[schema(value_type = RunStatus)]
    pub status: &'static str,
    #[schema(value_type = Trigger)]
    pub trigger: &'static str,
    #[schema(format = DateTime)]
    pub queued_at: String,
    #[schema(required = true, format = DateTime)]
    pub started_at: Option<String>,
    #[schema(required = true, format = DateTime)]
    pub finished_at: Option<String>,
    #[schema(required = true)]
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

#[derive(Serialize, ToSchema)]
#[schema(as = EnvVarView)]
pub struct EnvView {
    pub key: String,
    /// `null` for secrets: they are write-only.
    #[schema(required = true)]
    pub value: Option<String>,
    pub secret: bool,
}

/// A webhook of a script; its secret is never shown, only whether it has one.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    pub url: String,
    pub on: Vec<crate::domain::webhook::Event>,
    pub format: crate::domain::webhook::Format,
    pub has_secret: bool,
}

impl From<&crate::domain::Webhook> for WebhookView {
    fn from(w: &crate::domain::Webhook) -> Self {
        Self {
            url: w.url.clone(),
            on: w.on.clone(),
            format: w.format,
            has_secret: w.secret.is_some(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ScheduleView)]
pub struct ScheduleView {
    pub enabled: bool,
    pub cron: String,
    pub timezone: String,
    pub catch_up: crate::domain::CatchUp,
    /// The next tick, when the schedule is enabled and the script too.
    #[schema(required = true, format = DateTime)]
    pub next_run_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ApiTriggerView)]
pub struct ApiTriggerView {
    pub enabled: bool,
    /// Whether a token has been issued; the token itself is shown once, when issued.
    pub has_token: bool,
    #[schema(required = true, format = DateTime)]
    pub token_created_at: Option<String>,
}

impl ScriptView {
    /// A list entry: everything but the body, the env and the webhooks.
    pub fn listed(s: &ScriptDefinition, last_run: Option<&Run>) -> Self {
        Self {
            script: None,
            env: None,
            notifications: None,
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
            tty: s.tty,
            retry: s.retry.clone(),
            notifications: Some(s.notifications.iter().map(WebhookView::from).collect()),
            input_schema: s
                .input_schema
                .as_ref()
                .and_then(|i| serde_json::value::RawValue::from_string(i.to_json()).ok()),
            enabled: s.enabled,
            concurrency: s.concurrency.as_str(),
            schedule: ScheduleView {
                enabled: s.schedule.enabled,
                cron: s.schedule.cron.clone(),
                timezone: s.schedule.timezone.clone(),
                catch_up: s.schedule.catch_up,
                // A disabled script is not fired: it has no next run to show.
                next_run_at: s.next_run_at.filter(|_| s.enabled).map(time),
            },
            api_trigger: ApiTriggerView {
                enabled: s.api_trigger_enabled,
                has_token: s.token_created_at.is_some(),
                token_created_at: s.token_created_at.map(time),
            },
            created_at: time(s.created_at),
            updated_at: time(s.updated_at),
            version: s.version,
            last_run: None,
        }
    }
}

/// A run. `outputTail` (the last 64 KiB of output) is present when one run is read, and left
/// out of lists.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Run, example = json!({
    "id": "019a5f1d-0c41-7a3e-b2f0-6d9e4c8a1b27",
    "scriptId": "019a5f0c-3b7e-7d21-9a4c-5e0f2b1c7d88",
    "status": "succeeded",
    "trigger": "manual",
    "meta": {"user": "admin", "clientAddress": "192.0.2.10", "userAgent": "curl/8.5.0"},
    "input": {"dryRun": true},
    "queuedAt": "2026-11-25T09:14:00.021Z",
    "startedAt": "2026-11-25T09:14:00.023Z",
    "finishedAt": "2026-11-25T09:14:02.410Z",
    "durationMs": 2387,
    "exitCode": 0,
    "signal": null,
    "error": null,
    "outputTail": "done\n",
    "result": null,
    "logBytes": 5,
    "scriptVersion": 3,
    "logTruncated": false,
    "node": "node-7f3a"
}))]
pub struct RunView {
    pub id: String,
    pub script_id: String,
    #[schema(value_type = RunStatus)]
    pub status: &'static str,
    #[schema(value_type = Trigger)]
    pub trigger: &'static str,
    /// Who or what started it: the admin user, the client address and user agent of a manual
    /// or triggered run, the tick of a scheduled one.
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
    /// The input it was started with (any JSON), or null.
    #[schema(required = true)]
    pub input: Option<serde_json::Value>,
    #[schema(format = DateTime)]
    pub queued_at: String,
    #[schema(required = true, format = DateTime)]
    pub started_at: Option<String>,
    #[schema(required = true, format = DateTime)]
    pub finished_at: Option<String>,
    #[schema(required = true)]
    pub duration_ms: Option<i64>,
    #[schema(required = true)]
    pub exit_code: Option<i32>,
    /// The signal that ended the script, if one did.
    #[schema(required = true)]
    pub signal: Option<i32>,
    /// Why it failed without an exit code of its own (it could not start, its node died, …).
    #[schema(required = true)]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub output_tail: Option<String>,
    /// What an isolated script's last expression evaluated to (any JSON), or null.
    #[schema(required = true)]
    pub result: Option<serde_json::Value>,
    pub log_bytes: i64,
    pub log_truncated: bool,
    /// The id of the node that claimed the run (its data directory's node-id); null while
    /// the run is queued.
    #[schema(required = true)]
    pub node: Option<String>,
    /// The script version it runs (null for runs recorded before versions were kept).
    #[schema(required = true)]
    pub script_version: Option<i64>,
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
            script_version: r.script_version,
        }
    }
}
