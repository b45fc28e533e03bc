//! A script's versions: each change of its definition is kept, numbered, with who made it.

use chrono::{DateTime, Utc};

use super::ScriptDocument;

/// A version to record with a change.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub author: String,
    pub message: String,
    pub document: ScriptDocument,
    /// Secrets whose value this change sets, changes or removes (`env:KEY`, `webhook:URL`).
    pub secrets_changed: Vec<String>,
    pub at: DateTime<Utc>,
}

/// A recorded version; `document` is left out of lists.
#[derive(Debug, Clone)]
pub struct Version {
    pub number: i64,
    pub created_at: DateTime<Utc>,
    pub author: String,
    pub message: String,
    pub secrets_changed: Vec<String>,
    pub document: Option<ScriptDocument>,
}

/// Versions kept per script unless configured otherwise; those runs still point to are kept
/// whatever the count.
pub const DEFAULT_VERSIONS_KEPT: u32 = 100;
/// The longest version message.
pub const MAX_MESSAGE_CHARS: usize = 500;
