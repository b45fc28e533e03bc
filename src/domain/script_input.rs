//! The body of a create or update request and the rules that turn it into a `ScriptDraft`
//! (SPEC §2). Every field error names its field.

use serde::Deserialize;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::ToSchema;

use super::script::{CatchUp, Concurrency, EnvVar, Runner, ScheduleSettings, ScriptType};
use super::{CodeIdentifier, CronSchedule, ValidationError};

/// The body of a create or update request, before any rule is checked. Read-only fields a
/// client echoes back (`id`, `createdAt`, `nextRunAt`, …) are ignored. The schema states what
/// the rules below enforce; the rules that tie fields together are in its description.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(
    as = ScriptInput,
    description = "A script to create, or the whole new version of one (PUT replaces every field; \
        a field left out takes its default). Rules that tie fields together, refused with 400 \
        naming the field: `runner` must suit `type` (bash: host; node: host or isolated, `vm2` \
        being an alias of isolated; browser: browser) and be allowed by the server's \
        `--allowed-runners` (else 400 on save, 403 on run); a browser script can be neither \
        scheduled nor triggered; an enabled schedule needs a `cron` that fires at least once; \
        a new env entry needs a `value` unless it is a secret that already has one.",
    example = json!({
        "name": "Nightly backup",
        "codeIdentifier": "nightly-backup",
        "description": "Dumps the database to /var/backups",
        "type": "bash",
        "runner": "host",
        "script": "pg_dump app > /var/backups/app.sql\necho done",
        "defaultWorkingDirectory": "/var/backups",
        "env": [
            {"key": "PGHOST", "value": "db.internal"},
            {"key": "PGPASSWORD", "value": "s3cret", "secret": true}
        ],
        "timeoutMs": 600000,
        "concurrency": "single",
        "schedule": {"enabled": true, "cron": "0 3 * * *", "timezone": "Europe/Berlin"},
        "apiTrigger": {"enabled": false}
    })
)]
pub struct ScriptInput {
    /// Trimmed; must contain a visible character and no NUL.
    #[schema(
        required = true,
        nullable = false,
        min_length = 1,
        max_length = 200,
        pattern = r"\S"
    )]
    pub name: Option<String>,
    /// Normalised before it is stored: lower-cased, whitespace and `.`, `/`, `:` turned into
    /// `-`, other characters dropped, runs of `-` collapsed and `-` trimmed at the ends
    /// (`Sync Project!` becomes `sync-project`). What remains must be 1–100 characters of
    /// `[a-z0-9_-]` and unique among scripts (409 otherwise).
    #[schema(
        required = true,
        nullable = false,
        min_length = 1,
        max_length = 100,
        pattern = r"[A-Za-z0-9_]"
    )]
    pub code_identifier: Option<String>,
    #[schema(nullable = false, max_length = 10000)]
    pub description: Option<String>,
    #[serde(rename = "type")]
    #[schema(required = true, nullable = false, value_type = ScriptType)]
    pub script_type: Option<String>,
    /// Defaults to the first runner the type allows (bash and node: host; browser: browser).
    #[schema(nullable = false, schema_with = runner_names)]
    pub runner: Option<String>,
    /// The script body: at most 1 MiB, no NUL byte, at least one visible character.
    #[schema(required = true, nullable = false, min_length = 1, pattern = r"\S")]
    pub script: Option<String>,
    /// An absolute path (at most 4096 bytes, no NUL); blank or null means the run's own
    /// temporary directory.
    #[schema(max_length = 4096, pattern = r"^(/|\s*$)")]
    pub default_working_directory: Option<String>,
    /// At most 200 entries, keys unique.
    #[schema(nullable = false, max_items = 200)]
    pub env: Option<Vec<EnvVarInput>>,
    /// Defaults to 300000 (5 minutes).
    #[serde(default, deserialize_with = "super::whole::option")]
    #[schema(nullable = false, minimum = 1000, maximum = 86400000)]
    pub timeout_ms: Option<i64>,
    /// For isolated runs: the JS heap limit. Null: the server's default.
    #[serde(default, deserialize_with = "super::whole::option")]
    #[schema(minimum = 8, maximum = 4096)]
    pub memory_limit_mb: Option<i64>,
    /// Host runners only: run under a pseudo-terminal (160×50, `TERM=xterm-256color` unless
    /// set), so programs that buffer their output on a pipe print line by line and colour it.
    /// stdout and stderr then come as one stream (`stdout`). Defaults to false.
    #[schema(nullable = false)]
    pub tty: Option<bool>,
    /// Defaults to true. A disabled script neither runs nor fires (409 on run).
    #[schema(nullable = false)]
    pub enabled: Option<bool>,
    /// Defaults to `single`: at most one active run (409 for another); `queue`: runs wait
    /// their turn in order; `parallel`: no limit.
    #[schema(nullable = false, value_type = Option<Concurrency>)]
    pub concurrency: Option<String>,
    /// The input's form, a JSON Schema subset: `{"type": "object", "properties": {name:
    /// {"type": "string" | "number" | "integer" | "boolean", "title", "description", "enum",
    /// "default", "minimum", "maximum", "minLength", "maxLength", "pattern"}}, "required":
    /// [names]}`. Each run's input is then checked against it (400 naming `input.<name>`) and
    /// completed with the defaults; the fields' order is the Run form's. Null: any input.
    #[schema(value_type = Option<super::InputSchema>)]
    pub input_schema: Option<Box<serde_json::value::RawValue>>,
    /// Webhooks told of runs' ends (at most 5); none by default.
    #[schema(nullable = false, max_items = 5)]
    pub notifications: Option<Vec<super::WebhookInput>>,
    /// Retries of a failed run; none by default.
    #[schema(nullable = false)]
    pub retry: Option<super::RetryPolicy>,
    #[schema(nullable = false)]
    pub schedule: Option<ScheduleInput>,
    #[schema(nullable = false)]
    pub api_trigger: Option<ApiTriggerInput>,
    /// A note kept with the version this change makes (at most 500 characters); not part of
    /// the script.
    #[schema(max_length = 500)]
    pub version_message: Option<String>,
}

/// An environment variable of a script. Keys starting with `SCRIPTD_` are reserved.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = EnvVar)]
pub struct EnvVarInput {
    #[schema(max_length = 256, pattern = "^[A-Za-z_][A-Za-z0-9_]*$")]
    pub key: String,
    /// At most 64 KiB, no NUL. `null` on a secret keeps the stored value; required otherwise.
    #[schema(max_length = 65536)]
    pub value: Option<String>,
    /// A secret is stored encrypted, never shown again, and masked in output.
    #[serde(default)]
    pub secret: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Schedule)]
pub struct ScheduleInput {
    #[serde(default)]
    pub enabled: bool,
    /// A 5- or 6-field cron expression (seconds optional) or a shorthand such as `@daily`;
    /// required when `enabled`. An expression that never fires (30 February) is refused.
    #[serde(default)]
    pub cron: String,
    #[serde(default)]
    #[schema(schema_with = super::cron::timezone_names)]
    pub timezone: String,
    /// After a time when no node was up: `none` (the default) records the missed ticks as
    /// skipped; `last` runs once for the latest of them.
    #[serde(default)]
    pub catch_up: CatchUp,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = ApiTrigger)]
pub struct ApiTriggerInput {
    /// Whether `POST /api/scripts/{codeIdentifier}/run` with the script's token starts it.
    #[serde(default)]
    pub enabled: bool,
}

/// The runner names a request may use, `vm2` being the plan's name for `isolated`.
fn runner_names() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["host", "isolated", "vm2", "browser"]))
        .build()
}

/// A script that passed every rule; secrets sent as `null` are still to be filled from the
/// stored version.
#[derive(Debug, Clone)]
pub struct ScriptDraft {
    pub name: String,
    pub code_identifier: CodeIdentifier,
    pub description: String,
    pub script_type: ScriptType,
    pub runner: Runner,
    pub script: String,
    pub default_working_directory: Option<String>,
    pub env: Vec<(String, Option<String>, bool)>,
    pub timeout_ms: i64,
    pub memory_limit_mb: Option<i64>,
    pub tty: bool,
    pub retry: super::RetryPolicy,
    pub input_schema: Option<super::InputSchema>,
    /// Checked but for their secrets, which `resolve_webhooks` takes from the stored ones.
    pub notifications: Vec<super::WebhookInput>,
    pub enabled: bool,
    pub concurrency: Concurrency,
    pub schedule: ScheduleSettings,
    pub api_trigger_enabled: bool,
}

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
pub const MAX_SCRIPT_BYTES: usize = 1024 * 1024;
pub const DEFAULT_TIMEOUT_MS: i64 = 300_000;
pub const MIN_TIMEOUT_MS: i64 = 1_000;
pub const MAX_TIMEOUT_MS: i64 = 86_400_000;
pub const MEMORY_LIMIT_MB: std::ops::RangeInclusive<i64> = 8..=4096;
const MAX_ENV_VARS: usize = 200;
/// Linux's PATH_MAX.
const MAX_PATH_BYTES: usize = 4096;
const MAX_ENV_VALUE_BYTES: usize = 64 * 1024;

impl ScriptInput {
    pub fn parse(self) -> Result<ScriptDraft, ValidationError> {
        let name = self.name.unwrap_or_default().trim().to_string();
        if name.is_empty() {
            return Err(ValidationError::new("name", "is required"));
        }
        if name.contains('\0') {
            return Err(ValidationError::new(
                "name",
                "must contain no NUL character",
            ));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(ValidationError::new(
                "name",
                format!("must be at most {MAX_NAME_CHARS} characters"),
            ));
        }
        let code_identifier = match self.code_identifier.as_deref().map(str::trim) {
            Some(raw) if !raw.is_empty() => CodeIdentifier::parse(raw)?,
            _ => return Err(ValidationError::new("codeIdentifier", "is required")),
        };
        let description = self.description.unwrap_or_default();
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(ValidationError::new(
                "description",
                format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
            ));
        }
        let script_type = match self.script_type.as_deref() {
            Some(t) => ScriptType::parse(t).ok_or_else(|| {
                ValidationError::new("type", "must be one of: bash, node, browser")
            })?,
            None => return Err(ValidationError::new("type", "is required")),
        };
        let runner = parse_runner(script_type, self.runner.as_deref())?;
        let script = self.script.unwrap_or_default();
        if script.trim().is_empty() {
            return Err(ValidationError::new("script", "is required"));
        }
        if script.len() > MAX_SCRIPT_BYTES {
            return Err(ValidationError::too_large(
                "script",
                "must be at most 1 MiB",
            ));
        }
        if script.contains('\0') {
            return Err(ValidationError::new(
                "script",
                "must contain no NUL character (a program cannot receive one)",
            ));
        }
        let default_working_directory = match self.default_working_directory {
            Some(d) if !d.trim().is_empty() => {
                if !d.starts_with('/') {
                    return Err(ValidationError::new(
                        "defaultWorkingDirectory",
                        "must be an absolute path",
                    ));
                }
                if d.len() > MAX_PATH_BYTES || d.contains('\0') {
                    return Err(ValidationError::new(
                        "defaultWorkingDirectory",
                        format!("must be at most {MAX_PATH_BYTES} bytes with no NUL character"),
                    ));
                }
                Some(d)
            }
            _ => None,
        };
        let env = parse_env(self.env.unwrap_or_default())?;
        let timeout_ms = self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(ValidationError::new(
                "timeoutMs",
                format!("must be between {MIN_TIMEOUT_MS} and {MAX_TIMEOUT_MS}"),
            ));
        }
        if let Some(mb) = self.memory_limit_mb {
            if !MEMORY_LIMIT_MB.contains(&mb) {
                return Err(ValidationError::new(
                    "memoryLimitMb",
                    format!(
                        "must be between {} and {}",
                        MEMORY_LIMIT_MB.start(),
                        MEMORY_LIMIT_MB.end()
                    ),
                ));
            }
        }
        let concurrency = match self.concurrency.as_deref() {
            None => Concurrency::Single,
            Some(c) => Concurrency::parse(c).ok_or_else(|| {
                ValidationError::new("concurrency", "must be one of: single, queue, parallel")
            })?,
        };
        let schedule = parse_schedule(self.schedule.unwrap_or_default())?;
        if schedule.enabled && script_type == ScriptType::Browser {
            return Err(ValidationError::new(
                "schedule",
                "browser scripts run only in the admin page and cannot be scheduled",
            ));
        }
        let tty = self.tty.unwrap_or(false);
        if tty && runner != Runner::Host {
            return Err(ValidationError::new(
                "tty",
                "a terminal is for host runs only (bash or node on the host)",
            ));
        }
        let retry = self.retry.unwrap_or_default();
        retry.validate()?;
        let notifications = self.notifications.unwrap_or_default();
        super::webhook::parse_webhooks(notifications.clone(), &[])?;
        let input_schema = match self.input_schema.as_deref().map(|r| r.get()) {
            None | Some("null") => None,
            Some(raw) => Some(super::InputSchema::parse(raw)?),
        };
        if let (true, Some(name)) = (
            schedule.enabled,
            input_schema
                .as_ref()
                .and_then(|s| s.required_without_default()),
        ) {
            return Err(ValidationError::new(
                "inputSchema.required",
                format!("{name} is required but has no default, which a scheduled run (with no input) needs"),
            ));
        }
        let api_trigger_enabled = self.api_trigger.unwrap_or_default().enabled;
        if api_trigger_enabled && script_type == ScriptType::Browser {
            return Err(ValidationError::new(
                "apiTrigger",
                "browser scripts run only in the admin page and cannot be triggered by API",
            ));
        }
        Ok(ScriptDraft {
            name,
            code_identifier,
            description,
            script_type,
            runner,
            script,
            default_working_directory,
            env,
            timeout_ms,
            memory_limit_mb: self.memory_limit_mb,
            tty,
            retry,
            input_schema,
            notifications,
            enabled: self.enabled.unwrap_or(true),
            concurrency,
            schedule,
            api_trigger_enabled,
        })
    }
}

fn parse_runner(script_type: ScriptType, raw: Option<&str>) -> Result<Runner, ValidationError> {
    let allowed = script_type.allowed_runners();
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(allowed[0]);
    };
    match Runner::parse(raw) {
        Some(r) if allowed.contains(&r) => Ok(r),
        _ => {
            let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
            let extra = if allowed.contains(&Runner::Isolated) {
                " (or its alias vm2)"
            } else {
                ""
            };
            Err(ValidationError::new(
                "runner",
                format!(
                    "a {} script runs with: {}{extra}",
                    script_type.as_str(),
                    names.join(", ")
                ),
            ))
        }
    }
}

fn parse_env(
    vars: Vec<EnvVarInput>,
) -> Result<Vec<(String, Option<String>, bool)>, ValidationError> {
    if vars.len() > MAX_ENV_VARS {
        return Err(ValidationError::new(
            "env",
            format!("at most {MAX_ENV_VARS} variables"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(vars.len());
    for (i, var) in vars.into_iter().enumerate() {
        let field = format!("env[{i}].key");
        if !is_env_key(&var.key) {
            return Err(ValidationError::new(
                field,
                format!("'{}' must match [A-Za-z_][A-Za-z0-9_]*", var.key),
            ));
        }
        if var.key.starts_with("SCRIPTD_") {
            return Err(ValidationError::new(
                field,
                "names starting with SCRIPTD_ are reserved",
            ));
        }
        if !seen.insert(var.key.clone()) {
            return Err(ValidationError::new(
                field,
                format!("'{}' appears more than once", var.key),
            ));
        }
        if let Some(v) = &var.value {
            if v.len() > MAX_ENV_VALUE_BYTES || v.contains('\0') {
                return Err(ValidationError::new(
                    format!("env[{i}].value"),
                    "must be at most 64 KiB and contain no NUL byte",
                ));
            }
        } else if !var.secret {
            return Err(ValidationError::new(
                format!("env[{i}].value"),
                "is required",
            ));
        }
        out.push((var.key, var.value, var.secret));
    }
    Ok(out)
}

fn is_env_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && key.len() <= 256
}

fn parse_schedule(input: ScheduleInput) -> Result<ScheduleSettings, ValidationError> {
    let timezone = if input.timezone.trim().is_empty() {
        "UTC".to_string()
    } else {
        input.timezone.trim().to_string()
    };
    super::cron::parse_timezone(&timezone)?;
    let cron = input.cron.trim().to_string();
    if !cron.is_empty() {
        let parsed = CronSchedule::parse(&cron, &timezone)?;
        // A date that never exists (30 February) would cost every scheduler pass a long
        // search for nothing.
        if parsed.next_after(chrono::Utc::now()).is_none() {
            return Err(ValidationError::new(
                "cron",
                "never fires: no date matches it (e.g. 30 February)",
            ));
        }
    } else if input.enabled {
        return Err(ValidationError::new(
            "cron",
            "is required when the schedule is enabled",
        ));
    }
    Ok(ScheduleSettings {
        enabled: input.enabled,
        cron,
        timezone,
        catch_up: input.catch_up,
    })
}

impl ScriptDraft {
    /// Fills secrets sent as `null` from the stored variables; a new secret without a value is
    /// refused.
    /// The webhooks, a `null` secret keeping the stored one of the same URL.
    pub fn resolve_webhooks(
        &self,
        stored: &[super::Webhook],
    ) -> Result<Vec<super::Webhook>, ValidationError> {
        super::webhook::parse_webhooks(self.notifications.clone(), stored)
    }

    /// The definition this draft makes, its secrets resolved.
    pub fn into_definition(
        self,
        env: Vec<EnvVar>,
        notifications: Vec<super::Webhook>,
        id: String,
        created_at: chrono::DateTime<chrono::Utc>,
        token_created_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> super::ScriptDefinition {
        let now = chrono::Utc::now();
        let next_run_at = self.schedule.active().and_then(|c| c.next_after(now));
        super::ScriptDefinition {
            id,
            name: self.name,
            code_identifier: self.code_identifier,
            description: self.description,
            script_type: self.script_type,
            runner: self.runner,
            script: self.script,
            default_working_directory: self.default_working_directory,
            env,
            timeout_ms: self.timeout_ms,
            memory_limit_mb: self.memory_limit_mb,
            tty: self.tty,
            retry: self.retry,
            input_schema: self.input_schema,
            notifications,
            enabled: self.enabled,
            concurrency: self.concurrency,
            schedule: self.schedule,
            next_run_at,
            api_trigger_enabled: self.api_trigger_enabled,
            token_created_at,
            created_at,
            updated_at: now,
            version: 0,
        }
    }

    pub fn resolve_env(&self, stored: &[EnvVar]) -> Result<Vec<EnvVar>, ValidationError> {
        self.env
            .iter()
            .enumerate()
            .map(|(i, (key, value, secret))| {
                let value = match value {
                    Some(v) => v.clone(),
                    None => stored
                        .iter()
                        .find(|s| &s.key == key)
                        .map(|s| s.value.clone())
                        .ok_or_else(|| {
                            ValidationError::new(
                                format!("env[{i}].value"),
                                "a new secret needs a value",
                            )
                        })?,
                };
                Ok(EnvVar {
                    key: key.clone(),
                    value,
                    secret: *secret,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ScriptInput {
        ScriptInput {
            name: Some("Sync".into()),
            code_identifier: Some("Sync Project!".into()),
            script_type: Some("node".into()),
            script: Some("echo hi".into()),
            ..Default::default()
        }
    }

    #[test]
    fn vm2_is_stored_as_isolated_and_bash_refuses_it() {
        let d = ScriptInput {
            runner: Some("vm2".into()),
            ..input()
        }
        .parse()
        .unwrap();
        assert_eq!(d.runner, Runner::Isolated);
        assert_eq!(d.code_identifier.as_str(), "sync-project");
        let e = ScriptInput {
            script_type: Some("bash".into()),
            runner: Some("vm2".into()),
            ..input()
        }
        .parse()
        .unwrap_err();
        assert_eq!(e.field, "runner");
        assert!(e.message.contains("host"));
    }

    #[test]
    fn env_keys_must_be_shell_names_and_unique() {
        let var = |k: &str| EnvVarInput {
            key: k.into(),
            value: Some("v".into()),
            secret: false,
        };
        let bad = ScriptInput {
            env: Some(vec![var("1X")]),
            ..input()
        }
        .parse()
        .unwrap_err();
        assert_eq!(bad.field, "env[0].key");
        let dup = ScriptInput {
            env: Some(vec![var("A"), var("A")]),
            ..input()
        }
        .parse()
        .unwrap_err();
        assert_eq!(dup.field, "env[1].key");
    }

    #[test]
    fn a_null_secret_keeps_the_stored_value() {
        let d = ScriptInput {
            env: Some(vec![EnvVarInput {
                key: "TOKEN".into(),
                value: None,
                secret: true,
            }]),
            ..input()
        }
        .parse()
        .unwrap();
        let stored = vec![EnvVar {
            key: "TOKEN".into(),
            value: "s3cret".into(),
            secret: true,
        }];
        assert_eq!(d.resolve_env(&stored).unwrap()[0].value, "s3cret");
        assert!(d.resolve_env(&[]).is_err());
    }

    #[test]
    fn timeout_and_cron_are_checked() {
        let t = ScriptInput {
            timeout_ms: Some(999),
            ..input()
        }
        .parse()
        .unwrap_err();
        assert_eq!(t.field, "timeoutMs");
        let c = ScriptInput {
            schedule: Some(ScheduleInput {
                enabled: true,
                cron: "nope".into(),
                ..Default::default()
            }),
            ..input()
        }
        .parse()
        .unwrap_err();
        assert_eq!(c.field, "cron");
        let z = ScriptInput {
            schedule: Some(ScheduleInput {
                enabled: false,
                cron: "* * * * *".into(),
                timezone: "Mars/Base".into(),
                ..Default::default()
            }),
            ..input()
        }
        .parse()
        .unwrap_err();
        assert_eq!(z.field, "timezone");
    }
}
