//! Secrets sealed with a passphrase, for an export made `--with-secrets`: Argon2id derives a
//! key from the passphrase and a random salt (one per export, named in each file's
//! `sealedWith`), and each value is sealed with XChaCha20-Poly1305 under it, bound to its
//! script and key so a sealed value cannot be moved to another.

use std::collections::HashMap;

use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine as _;
use rand::RngCore;

use super::CatalogError;
use crate::secrets::{MasterKey, SecretBox};

const SCHEME: &str = "argon2id-v19-m19456-t2-p1";
/// Shortest passphrase taken: the export may leave the machine.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

pub struct Sealer {
    sealed_with: String,
    seal: SecretBox,
}

fn derive(passphrase: &str, salt: &[u8]) -> Result<SecretBox, CatalogError> {
    let params =
        Params::new(19_456, 2, 1, Some(32)).map_err(|e| CatalogError::Passphrase(e.to_string()))?;
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|e| CatalogError::Passphrase(e.to_string()))?;
    Ok(SecretBox::new(&MasterKey::from_bytes(key)))
}

impl Sealer {
    /// A new export's sealer, with a fresh salt.
    pub fn new(passphrase: &str) -> Result<Self, CatalogError> {
        if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(CatalogError::Passphrase(format!(
                "the passphrase must be at least {MIN_PASSPHRASE_CHARS} characters"
            )));
        }
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        Ok(Self {
            sealed_with: format!("{SCHEME}:{}", B64.encode(salt)),
            seal: derive(passphrase, &salt)?,
        })
    }

    /// What a file's `sealedWith` says.
    pub fn sealed_with(&self) -> &str {
        &self.sealed_with
    }

    pub fn seal(&self, context: &str, value: &str) -> String {
        self.seal.seal(context, value)
    }
}

/// Opens sealed values, deriving each export's key once.
pub struct Opener {
    passphrase: Option<String>,
    keys: HashMap<String, SecretBox>,
}

impl Opener {
    pub fn new(passphrase: Option<String>) -> Self {
        Self {
            passphrase,
            keys: HashMap::new(),
        }
    }

    pub fn open(
        &mut self,
        file: &str,
        sealed_with: Option<&str>,
        context: &str,
        sealed: &str,
    ) -> Result<String, CatalogError> {
        let Some(passphrase) = &self.passphrase else {
            return Err(CatalogError::Passphrase(format!(
                "{file}: holds sealed secrets; give the passphrase they were exported with"
            )));
        };
        let sealed_with = sealed_with.ok_or_else(|| CatalogError::File {
            file: file.into(),
            message: "has sealed secrets but no sealedWith".into(),
        })?;
        if !self.keys.contains_key(sealed_with) {
            let salt = sealed_with
                .strip_prefix(SCHEME)
                .and_then(|s| s.strip_prefix(':'))
                .and_then(|s| B64.decode(s).ok())
                .ok_or_else(|| CatalogError::File {
                    file: file.into(),
                    message: format!("sealedWith: not a scheme scriptd knows ({SCHEME}:<salt>)"),
                })?;
            self.keys
                .insert(sealed_with.to_string(), derive(passphrase, &salt)?);
        }
        self.keys[sealed_with].open(context, sealed).map_err(|_| {
            CatalogError::Passphrase(format!(
                "{file}: the passphrase does not open the sealed secret {context}"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_passphrase_and_context_only() {
        let sealer = Sealer::new("correct horse battery").unwrap();
        let sealed = sealer.seal("backup/env:PGPASSWORD", "s3cret");
        assert!(!sealed.contains("s3cret"));
        let with = Some(sealer.sealed_with());
        let mut right = Opener::new(Some("correct horse battery".into()));
        assert_eq!(
            right
                .open("f", with, "backup/env:PGPASSWORD", &sealed)
                .unwrap(),
            "s3cret"
        );
        assert!(right
            .open("f", with, "other/env:PGPASSWORD", &sealed)
            .is_err());
        let mut wrong = Opener::new(Some("incorrect horse battery".into()));
        assert!(wrong
            .open("f", with, "backup/env:PGPASSWORD", &sealed)
            .is_err());
        let mut none = Opener::new(None);
        assert!(none
            .open("f", with, "backup/env:PGPASSWORD", &sealed)
            .is_err());
        assert!(Sealer::new("short").is_err());
    }
}
