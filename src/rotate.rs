//! `scriptd rotate-master-key`: re-encrypts every stored secret under a new master key.
//!
//! Crash safety when the key lives in `<data-dir>/master.key`: the new key is written to
//! `master.key.new` first, the database is re-sealed in one transaction, then the new file
//! is renamed over the old. If the process dies in between, the next start finds the file
//! whose key opens the secrets (see `MasterKey::load_checked`).

use anyhow::Context;

use crate::config::Settings;
use crate::secrets::{key_file, MasterKey, SecretBox};
use crate::store::EnvCodec;

pub struct Rotated {
    pub scripts: u64,
    pub new_key: MasterKey,
    /// Where the new key was stored; `None` when the key comes from configuration and the
    /// operator must put the new one there.
    pub stored_at: Option<std::path::PathBuf>,
}

pub async fn rotate_master_key(
    settings: &Settings,
    new_key: Option<&str>,
) -> anyhow::Result<Rotated> {
    let old = MasterKey::load(settings.master_key.as_deref(), &settings.data_dir)?;
    let store =
        crate::store::connect(&settings.database_url, EnvCodec::new(SecretBox::new(&old))).await?;
    store
        .verify_secrets()
        .await
        .context("the current master key does not open the stored secrets; nothing was changed")?;
    let new = match new_key {
        Some(k) => MasterKey::parse(k)?,
        None => MasterKey::generate(),
    };
    let from_file = settings.master_key.is_none();
    let file = key_file(&settings.data_dir);
    let pending = file.with_extension("key.new");
    if from_file {
        crate::fsutil::write_private(&pending, new.to_base64().as_bytes())?;
    }
    let audit = crate::domain::Author::command_line().entry(
        crate::domain::Action::MasterKeyRotate,
        "master-key",
        serde_json::json!({ "keyFrom": if from_file { "file" } else { "configuration" } }),
    );
    let scripts = store
        .reseal_secrets(&EnvCodec::new(SecretBox::new(&new)), &audit)
        .await
        .context("re-encrypting the secrets failed; the old key still applies")?;
    let stored_at = if from_file {
        std::fs::rename(&pending, &file)?;
        Some(file)
    } else {
        None
    };
    Ok(Rotated {
        scripts,
        new_key: new,
        stored_at,
    })
}
