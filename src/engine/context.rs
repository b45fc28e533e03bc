//! Everything one run needs, passed as one value to whichever runner executes it.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::isolate::Spares;
use super::launcher::Launcher;
use crate::domain::{ScriptDefinition, Trigger};

pub struct RunContext {
    pub run_id: String,
    pub script: ScriptDefinition,
    pub trigger: Trigger,
    pub input: Option<serde_json::Value>,
    /// The child's whole environment, already assembled (see `Engine::child_env`).
    pub env: Vec<(String, String)>,
    pub cancel: CancellationToken,
    /// The run's secret values, for cutting partial lines safely.
    pub masker: super::Masker,
    pub timeout: Duration,
    pub kill_grace: Duration,
    /// Starts host runs' supervisors.
    pub launcher: Arc<Launcher>,
    /// Isolated workers ready for the next isolated run.
    pub isolates: Arc<Spares>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl RunContext {
    pub fn env_path(&self) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
    }
}
