//! How a script's env list is written to and read from its column. Secret values pass through
//! here and nowhere else on their way to disk: they are sealed with the master key, bound to
//! the script's id.

use std::sync::Arc;

use super::rows::ScriptRow;
use super::{StoreError, StoreResult};
use crate::domain::{EnvVar, ScriptDefinition};
use crate::secrets::SecretBox;

#[derive(Debug, Clone)]
pub struct EnvCodec {
    secrets: Arc<SecretBox>,
}

impl EnvCodec {
    pub fn new(secrets: SecretBox) -> Self {
        Self {
            secrets: Arc::new(secrets),
        }
    }

    pub fn seal(&self, script_id: &str, env: &[EnvVar]) -> StoreResult<String> {
        let sealed: Vec<EnvVar> = env
            .iter()
            .map(|e| EnvVar {
                key: e.key.clone(),
                value: if e.secret {
                    self.secrets.seal(script_id, &e.value)
                } else {
                    e.value.clone()
                },
                secret: e.secret,
            })
            .collect();
        serde_json::to_string(&sealed).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    pub fn open_env(&self, script_id: &str, text: &str) -> StoreResult<Vec<EnvVar>> {
        let mut env: Vec<EnvVar> = serde_json::from_str(text)
            .map_err(|_| StoreError::Corrupt(format!("script {script_id}: bad env")))?;
        for e in env.iter_mut().filter(|e| e.secret) {
            e.value = self.secrets.open(script_id, &e.value).map_err(|err| {
                StoreError::Corrupt(format!("script {script_id}, variable {}: {err}", e.key))
            })?;
        }
        Ok(env)
    }

    pub fn open(&self, row: ScriptRow) -> StoreResult<ScriptDefinition> {
        let env = self.open_env(row.id(), row.env_text())?;
        row.into_definition(env)
    }
}
