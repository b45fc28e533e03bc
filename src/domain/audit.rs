//! The audit log's entries: who did what to which thing, from where. An entry is written in
//! the same transaction as the change it records; it names fields, never their secret values.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[schema(as = AuditAction)]
pub enum Action {
    #[serde(rename = "script.create")]
    ScriptCreate,
    #[serde(rename = "script.update")]
    ScriptUpdate,
    #[serde(rename = "script.delete")]
    ScriptDelete,
    #[serde(rename = "script.enable")]
    ScriptEnable,
    #[serde(rename = "script.disable")]
    ScriptDisable,
    #[serde(rename = "script.restore")]
    ScriptRestore,
    #[serde(rename = "token.create")]
    TokenCreate,
    #[serde(rename = "token.rotate")]
    TokenRotate,
    #[serde(rename = "token.revoke")]
    TokenRevoke,
    #[serde(rename = "run.start")]
    RunStart,
    #[serde(rename = "run.cancel")]
    RunCancel,
    #[serde(rename = "scripts.import")]
    Import,
    #[serde(rename = "scripts.export")]
    Export,
    #[serde(rename = "notification.test")]
    NotificationTest,
    #[serde(rename = "master_key.rotate")]
    MasterKeyRotate,
    #[serde(rename = "settings.change")]
    SettingsChange,
    #[serde(rename = "login.failed")]
    LoginFailed,
}

impl Action {
    pub const ALL: [Action; 17] = [
        Action::ScriptCreate,
        Action::ScriptUpdate,
        Action::ScriptDelete,
        Action::ScriptEnable,
        Action::ScriptDisable,
        Action::ScriptRestore,
        Action::TokenCreate,
        Action::TokenRotate,
        Action::TokenRevoke,
        Action::RunStart,
        Action::RunCancel,
        Action::Import,
        Action::Export,
        Action::NotificationTest,
        Action::MasterKeyRotate,
        Action::SettingsChange,
        Action::LoginFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::ScriptCreate => "script.create",
            Action::ScriptUpdate => "script.update",
            Action::ScriptDelete => "script.delete",
            Action::ScriptEnable => "script.enable",
            Action::ScriptDisable => "script.disable",
            Action::ScriptRestore => "script.restore",
            Action::TokenCreate => "token.create",
            Action::TokenRotate => "token.rotate",
            Action::TokenRevoke => "token.revoke",
            Action::RunStart => "run.start",
            Action::RunCancel => "run.cancel",
            Action::Import => "scripts.import",
            Action::Export => "scripts.export",
            Action::NotificationTest => "notification.test",
            Action::MasterKeyRotate => "master_key.rotate",
            Action::SettingsChange => "settings.change",
            Action::LoginFailed => "login.failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Who acts, and from where: `admin:<user>` with the client's address, `schedule`,
/// `token:<codeIdentifier>` (a trigger token), `retry`, `cli:<os user>` (a command run on the
/// server's database), `system`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub actor: String,
    pub client: String,
}

impl Author {
    pub fn admin(user: &str, client: impl std::fmt::Display) -> Self {
        Self {
            actor: format!("admin:{user}"),
            client: client.to_string(),
        }
    }

    pub fn token(code: &str, client: impl std::fmt::Display) -> Self {
        Self {
            actor: format!("token:{code}"),
            client: client.to_string(),
        }
    }

    /// The server itself: a schedule tick, a retry, a start-up check.
    pub fn server(actor: &str) -> Self {
        Self {
            actor: actor.to_string(),
            client: String::new(),
        }
    }

    /// A command run on the server's machine against its database.
    pub fn command_line() -> Self {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Self {
            actor: format!("cli:{user}"),
            client: "local".into(),
        }
    }

    pub fn entry(
        &self,
        action: Action,
        target: impl Into<String>,
        summary: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            id: uuid::Uuid::now_v7().to_string(),
            at: Utc::now(),
            actor: self.actor.clone(),
            client: self.client.clone(),
            action,
            target: target.into(),
            summary,
            count: 1,
        }
    }
}

/// One recorded action.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// A UUIDv7: entries sort by it in time order, and pages are cut at it.
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub client: String,
    pub action: Action,
    /// `script:<codeIdentifier>`, `run:<id>`, `settings`, `master-key`, `admin-login`, …
    pub target: String,
    /// What changed: field names and counts, never a secret value or token.
    pub summary: serde_json::Value,
    /// How many times it happened: failed logins from one client are counted in one entry.
    pub count: i64,
}

pub fn script_target(code: &str) -> String {
    format!("script:{code}")
}

pub fn run_target(run_id: &str) -> String {
    format!("run:{run_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_round_trip_as_serde_writes_them() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
            assert_eq!(
                serde_json::to_value(a).unwrap(),
                serde_json::json!(a.as_str())
            );
        }
    }
}
