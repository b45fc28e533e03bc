//! Types and rules of scriptd: what a script is, what a run is, which states a run may move
//! between. Parsing happens here, at the boundary, so nothing invalid exists further in.

pub mod audit;
mod code_identifier;
mod cron;
mod document;
mod input_schema;
mod retry;
mod run;
mod script;
mod script_input;
mod version;
pub mod webhook;
mod whole;

pub use audit::{Action, AuditEntry, Author};
pub use code_identifier::CodeIdentifier;
pub use cron::{timezone_names, CronSchedule};
pub use document::{secrets_changed, FieldChange, ScriptDocument};
pub use input_schema::InputSchema;
pub use retry::{Attempt, RetryPolicy};
pub use run::{LogLine, LogStream, Run, RunOutcome, RunStatus, Trigger};
pub use script::{
    CatchUp, Concurrency, EnvVar, Runner, ScheduleSettings, ScriptDefinition, ScriptType,
};
pub use script_input::{ApiTriggerInput, EnvVarInput, ScheduleInput, ScriptDraft, ScriptInput};
pub use version::{NewVersion, Version, DEFAULT_VERSIONS_KEPT, MAX_MESSAGE_CHARS};
pub use webhook::{Webhook, WebhookInput};

/// A rule broken by client input, naming the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
    /// The value breaks a size limit (HTTP 413 rather than 400).
    pub too_large: bool,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            too_large: false,
        }
    }

    pub fn too_large(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            too_large: true,
            ..Self::new(field, message)
        }
    }
}

/// A time as every JSON shape of scriptd writes it: RFC 3339, UTC, milliseconds.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
