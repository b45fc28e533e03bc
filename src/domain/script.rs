//! A script definition and the rules its fields follow (SPEC §2).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{CodeIdentifier, CronSchedule};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScriptType {
    Bash,
    Node,
    Browser,
}

impl ScriptType {
    pub const ALL: [ScriptType; 3] = [ScriptType::Bash, ScriptType::Node, ScriptType::Browser];

    pub fn as_str(self) -> &'static str {
        match self {
            ScriptType::Bash => "bash",
            ScriptType::Node => "node",
            ScriptType::Browser => "browser",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "bash" => Some(ScriptType::Bash),
            "node" => Some(ScriptType::Node),
            "browser" => Some(ScriptType::Browser),
            _ => None,
        }
    }

    /// The runners this type may use; the first is the default.
    pub fn allowed_runners(self) -> &'static [Runner] {
        match self {
            ScriptType::Bash => &[Runner::Host],
            ScriptType::Node => &[Runner::Host, Runner::Isolated],
            ScriptType::Browser => &[Runner::Browser],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Runner {
    Host,
    Isolated,
    Browser,
}

impl Runner {
    pub fn as_str(self) -> &'static str {
        match self {
            Runner::Host => "host",
            Runner::Isolated => "isolated",
            Runner::Browser => "browser",
        }
    }

    /// `vm2` is the plan's name for the isolated runner and is accepted as an alias.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "host" => Some(Runner::Host),
            "isolated" | "vm2" => Some(Runner::Isolated),
            "browser" => Some(Runner::Browser),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Concurrency {
    Single,
    Queue,
    Parallel,
}

impl Concurrency {
    pub fn as_str(self) -> &'static str {
        match self {
            Concurrency::Single => "single",
            Concurrency::Queue => "queue",
            Concurrency::Parallel => "parallel",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "single" => Some(Concurrency::Single),
            "queue" => Some(Concurrency::Queue),
            "parallel" => Some(Concurrency::Parallel),
            _ => None,
        }
    }
}

/// One environment variable of a script. A secret's value is write-only through the API.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub key: String,
    pub value: String,
    pub secret: bool,
}

impl std::fmt::Debug for EnvVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = if self.secret { "***" } else { &self.value };
        f.debug_struct("EnvVar")
            .field("key", &self.key)
            .field("value", &value)
            .field("secret", &self.secret)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSettings {
    pub enabled: bool,
    pub cron: String,
    pub timezone: String,
    pub catch_up: CatchUp,
}

/// What a schedule does about ticks missed while no node was up.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Nothing: they are recorded as skipped.
    #[default]
    None,
    /// One run for the latest of them, marked as a catch-up.
    Last,
}

impl CatchUp {
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::None => "none",
            CatchUp::Last => "last",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [CatchUp::None, CatchUp::Last]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

impl ScheduleSettings {
    /// The parsed schedule when it is enabled and has an expression.
    pub fn active(&self) -> Option<CronSchedule> {
        if !self.enabled || self.cron.is_empty() {
            return None;
        }
        CronSchedule::parse(&self.cron, &self.timezone).ok()
    }
}

/// A script as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptDefinition {
    pub id: String,
    pub name: String,
    pub code_identifier: CodeIdentifier,
    pub description: String,
    pub script_type: ScriptType,
    pub runner: Runner,
    pub script: String,
    pub default_working_directory: Option<String>,
    pub env: Vec<EnvVar>,
    pub timeout_ms: i64,
    /// Memory limit of the isolated runner, in MiB; `None` uses the server default.
    pub memory_limit_mb: Option<i64>,
    /// Host runs only: stdout and stderr are one pseudo-terminal rather than two pipes.
    pub tty: bool,
    pub retry: super::RetryPolicy,
    /// The run input's form; `None`: any JSON is taken as it is.
    pub input_schema: Option<super::InputSchema>,
    pub notifications: Vec<super::Webhook>,
    pub enabled: bool,
    pub concurrency: Concurrency,
    pub schedule: ScheduleSettings,
    pub next_run_at: Option<DateTime<Utc>>,
    pub api_trigger_enabled: bool,
    pub token_created_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The newest version's number: the one a run started now runs.
    pub version: i64,
}

impl ScriptDefinition {
    pub fn secret_values(&self) -> Vec<String> {
        self.env
            .iter()
            .filter(|e| e.secret)
            .map(|e| e.value.clone())
            .collect()
    }
}
