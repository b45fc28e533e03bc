//! A script as a document: everything that defines it but its secret values, in the API's
//! names. A version keeps one; an export file is one written as TOML. Two definitions with
//! the same document (and the same secret values) are the same script.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::script::{CatchUp, Concurrency, Runner, ScriptType};
use super::webhook::{Event, Format};
use super::{
    ApiTriggerInput, EnvVarInput, RetryPolicy, ScheduleInput, ScriptDefinition, ScriptInput,
    ValidationError, WebhookInput,
};

/// A script's definition without its secret values. Field order is the export file's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = ScriptDocument)]
pub struct ScriptDocument {
    pub name: String,
    pub code_identifier: String,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "type")]
    pub script_type: ScriptType,
    pub runner: Runner,
    pub enabled: bool,
    pub concurrency: Concurrency,
    pub timeout_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub memory_limit_mb: Option<i64>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub default_working_directory: Option<String>,
    /// The input form as JSON text, so its fields keep their order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub input_schema: Option<String>,
    /// In an export made with a passphrase: how the `sealed` secrets' key is derived from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub sealed_with: Option<String>,
    pub script: String,
    pub schedule: ScheduleDocument,
    pub api_trigger: ApiTriggerDocument,
    #[serde(default)]
    pub retry: RetryPolicy,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvDocument>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<WebhookDocument>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = ScheduleDocument)]
pub struct ScheduleDocument {
    pub enabled: bool,
    #[serde(default)]
    pub cron: String,
    #[serde(default)]
    pub timezone: String,
    #[serde(default)]
    pub catch_up: CatchUp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ApiTriggerDocument)]
pub struct ApiTriggerDocument {
    pub enabled: bool,
}

/// An env entry. A secret has no `value`: only its key, and `sealed` in an export made with
/// a passphrase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = EnvDocument)]
pub struct EnvDocument {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub sealed: Option<String>,
}

/// A webhook; its signing secret, like an env secret, is only said to exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = WebhookDocument)]
pub struct WebhookDocument {
    pub url: String,
    pub on: Vec<Event>,
    #[serde(default)]
    pub format: Format,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub has_secret: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub sealed: Option<String>,
}

/// A field that differs between two documents, with both values (secret ones never).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = FieldChange)]
pub struct FieldChange {
    /// The API's name of the field (`schedule`, `env`, `timeoutMs`, …).
    pub field: String,
    #[schema(value_type = Object)]
    pub from: serde_json::Value,
    #[schema(value_type = Object)]
    pub to: serde_json::Value,
}

impl ScriptDocument {
    pub fn of(s: &ScriptDefinition) -> Self {
        Self {
            name: s.name.clone(),
            code_identifier: s.code_identifier.as_str().to_string(),
            description: s.description.clone(),
            script_type: s.script_type,
            runner: s.runner,
            enabled: s.enabled,
            concurrency: s.concurrency,
            timeout_ms: s.timeout_ms,
            memory_limit_mb: s.memory_limit_mb,
            tty: s.tty,
            default_working_directory: s.default_working_directory.clone(),
            // Straight from the form, not through a JSON value: that would sort its fields.
            input_schema: s
                .input_schema
                .as_ref()
                .map(|i| serde_json::to_string_pretty(i).unwrap_or_else(|_| i.to_json())),
            sealed_with: None,
            script: s.script.clone(),
            schedule: ScheduleDocument {
                enabled: s.schedule.enabled,
                cron: s.schedule.cron.clone(),
                timezone: s.schedule.timezone.clone(),
                catch_up: s.schedule.catch_up,
            },
            api_trigger: ApiTriggerDocument {
                enabled: s.api_trigger_enabled,
            },
            retry: s.retry.clone(),
            env: s
                .env
                .iter()
                .map(|e| EnvDocument {
                    key: e.key.clone(),
                    value: (!e.secret).then(|| e.value.clone()),
                    secret: e.secret,
                    sealed: None,
                })
                .collect(),
            notifications: s
                .notifications
                .iter()
                .map(|w| WebhookDocument {
                    url: w.url.clone(),
                    on: w.on.clone(),
                    format: w.format,
                    has_secret: w.secret.is_some(),
                    sealed: None,
                })
                .collect(),
        }
    }

    /// The document as an API request body, so it passes the very rules an edit does.
    /// Secrets come without values: the caller resolves them against what is stored.
    pub fn to_input(&self) -> Result<ScriptInput, ValidationError> {
        let input_schema = match &self.input_schema {
            Some(text) => Some(
                RawValue::from_string(text.clone())
                    .map_err(|e| ValidationError::new("inputSchema", e.to_string()))?,
            ),
            None => None,
        };
        Ok(ScriptInput {
            name: Some(self.name.clone()),
            code_identifier: Some(self.code_identifier.clone()),
            description: Some(self.description.clone()),
            script_type: Some(self.script_type.as_str().to_string()),
            runner: Some(self.runner.as_str().to_string()),
            script: Some(self.script.clone()),
            default_working_directory: self.default_working_directory.clone(),
            env: Some(
                self.env
                    .iter()
                    .map(|e| EnvVarInput {
                        key: e.key.clone(),
                        value: e.value.clone(),
                        secret: e.secret,
                    })
                    .collect(),
            ),
            timeout_ms: Some(self.timeout_ms),
            memory_limit_mb: self.memory_limit_mb,
            tty: Some(self.tty),
            enabled: Some(self.enabled),
            concurrency: Some(self.concurrency.as_str().to_string()),
            input_schema,
            notifications: Some(
                self.notifications
                    .iter()
                    .map(|w| WebhookInput {
                        url: w.url.clone(),
                        on: w.on.clone(),
                        format: w.format,
                        secret: (!w.has_secret).then(String::new),
                    })
                    .collect(),
            ),
            retry: Some(self.retry.clone()),
            schedule: Some(ScheduleInput {
                enabled: self.schedule.enabled,
                cron: self.schedule.cron.clone(),
                timezone: self.schedule.timezone.clone(),
                catch_up: self.schedule.catch_up,
            }),
            api_trigger: Some(ApiTriggerInput {
                enabled: self.api_trigger.enabled,
            }),
            version_message: None,
        })
    }

    /// The fields that differ from `other`, the body aside (it gets a text diff).
    pub fn changes_to(&self, other: &ScriptDocument) -> Vec<FieldChange> {
        let as_map = |d: &ScriptDocument| match serde_json::to_value(d) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        let (from, to) = (as_map(self), as_map(other));
        let names: Vec<&String> = from.keys().chain(to.keys()).collect();
        let mut seen = std::collections::HashSet::new();
        names
            .into_iter()
            .filter(|name| name.as_str() != "script" && seen.insert(name.as_str()))
            .filter_map(|name| {
                let a = from.get(name).cloned().unwrap_or(serde_json::Value::Null);
                let b = to.get(name).cloned().unwrap_or(serde_json::Value::Null);
                (a != b).then(|| FieldChange {
                    field: name.clone(),
                    from: a,
                    to: b,
                })
            })
            .collect()
    }
}

/// The secrets (`env:KEY`, `webhook:URL`) whose value differs between two definitions of a
/// script: added, removed or changed. Values are compared here and never kept.
pub fn secrets_changed(before: Option<&ScriptDefinition>, after: &ScriptDefinition) -> Vec<String> {
    let env = |s: Option<&ScriptDefinition>| -> Vec<(String, String)> {
        s.map(|s| {
            s.env
                .iter()
                .filter(|e| e.secret)
                .map(|e| (format!("env:{}", e.key), e.value.clone()))
                .chain(s.notifications.iter().filter_map(|w| {
                    w.secret
                        .as_ref()
                        .map(|v| (format!("webhook:{}", w.url), v.clone()))
                }))
                .collect()
        })
        .unwrap_or_default()
    };
    let (a, b) = (env(before), env(Some(after)));
    let mut changed: Vec<String> = a
        .iter()
        .filter(|(k, v)| !b.iter().any(|(k2, v2)| k2 == k && v2 == v))
        .chain(
            b.iter()
                .filter(|(k, v)| !a.iter().any(|(k2, v2)| k2 == k && v2 == v)),
        )
        .map(|(k, _)| k.clone())
        .collect();
    changed.sort();
    changed.dedup();
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> ScriptDocument {
        ScriptDocument {
            name: "Backup".into(),
            code_identifier: "backup".into(),
            description: String::new(),
            script_type: ScriptType::Bash,
            runner: Runner::Host,
            enabled: true,
            concurrency: Concurrency::Single,
            timeout_ms: 1000,
            memory_limit_mb: None,
            tty: false,
            default_working_directory: None,
            input_schema: None,
            sealed_with: None,
            script: "echo hi\n".into(),
            schedule: ScheduleDocument {
                enabled: false,
                cron: String::new(),
                timezone: String::new(),
                catch_up: CatchUp::None,
            },
            api_trigger: ApiTriggerDocument { enabled: false },
            retry: RetryPolicy::default(),
            env: vec![],
            notifications: vec![],
        }
    }

    #[test]
    fn changes_name_each_differing_field_but_the_body() {
        let a = doc();
        let mut b = doc();
        b.timeout_ms = 2000;
        b.script = "echo bye\n".into();
        b.schedule.enabled = true;
        let mut fields: Vec<String> = a.changes_to(&b).into_iter().map(|c| c.field).collect();
        fields.sort();
        assert_eq!(fields, ["schedule", "timeoutMs"]);
        assert!(a.changes_to(&a).is_empty());
    }
}
