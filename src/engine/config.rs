//! What the engine is configured with, derived from the server settings.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::Settings;

#[derive(Clone)]
pub struct EngineConfig {
    pub max_concurrent_runs: usize,
    pub kill_grace: Duration,
    pub max_log_bytes: u64,
    pub keep_runs: u32,
    /// The executable that provides the hidden `__launch` and `__isolate` subcommands.
    pub supervisor_exe: PathBuf,
    /// The server's environment as children inherit it: scriptd's own settings removed.
    pub base_env: Vec<(String, String)>,
    /// Identifies this node's runs in a shared database.
    pub node_id: String,
    /// Default memory limit of the isolated runner, in MiB.
    pub isolate_memory_mb: u64,
    /// How long a node's hold on a running run lasts without renewal.
    pub run_lease: Duration,
    pub queue_bounds: crate::store::QueueBounds,
    pub allowed_runners: Vec<crate::domain::Runner>,
}

impl EngineConfig {
    /// How far each renewal extends this node's leases.
    pub fn lease_span(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.run_lease).unwrap_or(chrono::Duration::seconds(60))
    }

    pub fn from_settings(settings: &Settings, node_id: String) -> anyhow::Result<Self> {
        let own_secrets: Vec<&str> = [
            settings.admin_password.as_deref(),
            settings.master_key.as_deref(),
            Some(settings.database_url.as_str()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let inherited = match &settings.child_env {
            Some(env) => env.clone(),
            None => std::env::vars().collect(),
        };
        let base_env = inherited
            .into_iter()
            .filter(|(k, v)| !k.starts_with("SCRIPTD_") && !own_secrets.contains(&v.as_str()))
            .collect();
        Ok(Self {
            max_concurrent_runs: settings.max_concurrent_runs,
            kill_grace: settings.kill_grace,
            max_log_bytes: settings.max_log_bytes,
            keep_runs: settings.keep_runs,
            supervisor_exe: match &settings.supervisor_exe {
                Some(p) => p.clone(),
                None => std::env::current_exe()?,
            },
            base_env,
            node_id,
            isolate_memory_mb: settings.isolate_memory_mb,
            run_lease: settings.run_lease,
            allowed_runners: settings.allowed_runners.clone(),
            queue_bounds: crate::store::QueueBounds {
                total: settings.max_queued_runs as i64,
                per_script: settings.max_queued_per_script as i64,
            },
        })
    }
}
