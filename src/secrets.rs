//! Encryption at rest for secret env values: XChaCha20-Poly1305 under a master key, a fresh
//! random nonce per value, and the script id bound as associated data so a sealed value
//! cannot be moved to another script.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

const PREFIX: &str = "enc:v1:";
const KEY_FILE: &str = "master.key";
const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the master key must be base64 of exactly 32 bytes")]
    BadKey,
    #[error("a stored secret cannot be decrypted with this master key")]
    Undecryptable,
    #[error("reading or writing the master key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The master key. Its bytes never reach `Debug`, logs or responses.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    pub fn parse(base64: &str) -> Result<Self, SecretError> {
        let bytes = B64.decode(base64.trim()).map_err(|_| SecretError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SecretError::BadKey)?;
        Ok(Self(key))
    }

    /// A key derived elsewhere (from an export's passphrase).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self(key)
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// The configured key, or the one in `<data_dir>/master.key`, created (0600) on first use.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> Result<Self, SecretError> {
        if let Some(k) = configured {
            return Self::parse(k);
        }
        let path = key_file(data_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                crate::fsutil::write_private(&path, key.to_base64().as_bytes())
                    .map_err(|source| SecretError::KeyFile { path, source })?;
                Ok(key)
            }
            Err(source) => Err(SecretError::KeyFile { path, source }),
        }
    }
}

pub fn key_file(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

/// Seals and opens secret values.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<redacted>)")
    }
}

impl SecretBox {
    pub fn new(key: &MasterKey) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new((&key.0).into()),
        }
    }

    pub fn seal(&self, record_id: &str, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: record_id.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption does not fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", B64.encode(out))
    }

    pub fn open(&self, record_id: &str, sealed: &str) -> Result<String, SecretError> {
        let body = sealed
            .strip_prefix(PREFIX)
            .ok_or(SecretError::Undecryptable)?;
        let bytes = B64.decode(body).map_err(|_| SecretError::Undecryptable)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::Undecryptable);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: record_id.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Undecryptable)?;
        String::from_utf8(plain).map_err(|_| SecretError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_are_bound_to_their_record() {
        let sb = SecretBox::new(&MasterKey::generate());
        let sealed = sb.seal("script-1", "hunter2");
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("hunter2"));
        assert_ne!(
            sealed,
            sb.seal("script-1", "hunter2"),
            "each value has its own nonce"
        );
        assert_eq!(sb.open("script-1", &sealed).unwrap(), "hunter2");
        assert!(
            sb.open("script-2", &sealed).is_err(),
            "moved to another script"
        );
        let other = SecretBox::new(&MasterKey::generate());
        assert!(other.open("script-1", &sealed).is_err(), "another key");
    }

    #[test]
    fn a_generated_key_file_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = MasterKey::load(None, dir.path()).unwrap();
        let mode = std::fs::metadata(key_file(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = MasterKey::load(None, dir.path()).unwrap();
        assert_eq!(a.to_base64(), b.to_base64());
        assert!(MasterKey::parse("c2hvcnQ=").is_err());
    }
}
