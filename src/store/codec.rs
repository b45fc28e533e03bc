//! How a script's env list is written to and read from its column. Secret values pass through
//! here and nowhere else on their way to disk: they are sealed with the master key, bound to
//! the script's id.

use std::sync::Arc;

use super::rows::ScriptRow;
use super::{StoreError, StoreResult};
use crate::domain::webhook::{Event, Format};
use crate::domain::{EnvVar, ScriptDefinition, Webhook};
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

    /// A script's webhooks as stored: their signing secrets sealed like secret env values
    /// (bound to the script and to their use).
    pub fn seal_webhooks(&self, script_id: &str, hooks: &[Webhook]) -> StoreResult<String> {
        let record = webhook_record(script_id);
        let stored: Vec<StoredWebhook> = hooks
            .iter()
            .map(|w| StoredWebhook {
                url: w.url.clone(),
                on: w.on.clone(),
                format: w.format,
                secret: w.secret.as_ref().map(|s| self.secrets.seal(&record, s)),
            })
            .collect();
        serde_json::to_string(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    pub fn open_webhooks(&self, script_id: &str, text: &str) -> StoreResult<Vec<Webhook>> {
        let corrupt = |what: String| StoreError::Corrupt(format!("script {script_id}: {what}"));
        let stored: Vec<StoredWebhook> =
            serde_json::from_str(text).map_err(|_| corrupt("bad notifications".into()))?;
        let record = webhook_record(script_id);
        stored
            .into_iter()
            .map(|w| {
                let secret = match w.secret {
                    Some(sealed) => Some(
                        self.secrets
                            .open(&record, &sealed)
                            .map_err(|e| corrupt(format!("webhook secret: {e}")))?,
                    ),
                    None => None,
                };
                Ok(Webhook {
                    url: w.url,
                    on: w.on,
                    format: w.format,
                    secret,
                })
            })
            .collect()
    }

    pub fn open(&self, row: ScriptRow) -> StoreResult<ScriptDefinition> {
        let env = self.open_env(row.id(), row.env_text())?;
        let hooks = self.open_webhooks(row.id(), row.notifications_text())?;
        row.into_definition(env, hooks)
    }
}

/// What a webhook secret is sealed to: its script, and its use (so it cannot pass for an env
/// value of the same script).
fn webhook_record(script_id: &str) -> String {
    format!("{script_id}/webhook")
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredWebhook {
    url: String,
    on: Vec<Event>,
    format: Format,
    secret: Option<String>,
}
