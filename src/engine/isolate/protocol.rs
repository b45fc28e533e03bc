//! What the server and an isolated worker say to each other. The job goes in on stdin as one
//! JSON document; everything comes back on stdout as JSON lines, so the script's output can
//! never be confused with the worker's own messages.

use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub struct Job {
    pub script: String,
    pub input: Option<serde_json::Value>,
    pub env: Vec<(String, String)>,
    pub timeout_ms: u64,
    pub memory_limit_bytes: usize,
    /// Debug builds only: after sandboxing, attempt this forbidden operation (see
    /// `worker::probe`) and report whether it was allowed.
    #[serde(default)]
    pub probe: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Message {
    /// The isolation layers the worker could turn on.
    Layers {
        active: Vec<String>,
        unavailable: Vec<String>,
    },
    /// One line of console output: stream 1 is stdout, 2 is stderr.
    Line { s: u8, l: String },
    /// The script ended.
    End(End),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum End {
    Ok { result: Option<serde_json::Value> },
    Threw { message: String },
    TimedOut,
    OutOfMemory,
    StackOverflow,
}
