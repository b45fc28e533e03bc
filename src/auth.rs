//! Admin authentication (HTTP Basic, checked in constant time), the first-start password,
//! the CSRF guard, and trigger tokens.

use std::path::Path;
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::slow_hash::{SlowHash, Verification};

const PASSWORD_FILE: &str = "admin-password.argon2";
pub const TOKEN_PREFIX: &str = "sdt_";

/// How the admin password is checked.
enum Secret {
    /// Given in configuration: kept only as its SHA-256, compared in constant time.
    Configured([u8; 32]),
    /// Generated on first start: an Argon2 hash from the data directory.
    Hashed(Arc<str>, SlowHash),
}

/// What a look at the credentials alone can tell.
pub enum Verdict {
    Accepted,
    Rejected,
    /// Only the slow hash can tell: pass these to `verify`.
    NeedsHash(String),
}

pub struct AdminAuth {
    user: String,
    secret: Secret,
    /// Digest of the last credentials that passed Argon2, so each request does not pay for a
    /// slow hash again.
    verified: Mutex<Option<[u8; 32]>>,
}

/// What the first start did about the password, for the console.
pub enum PasswordOrigin {
    Configured,
    Stored,
    Generated(String),
}

impl AdminAuth {
    /// Uses the configured password, or the stored hash, or generates, stores and returns a
    /// new password on first start.
    pub fn load(
        user: &str,
        configured: Option<&str>,
        data_dir: &Path,
    ) -> anyhow::Result<(Self, PasswordOrigin)> {
        let make = |secret| Self {
            user: user.to_string(),
            secret,
            verified: Mutex::new(None),
        };
        if let Some(p) = configured {
            return Ok((
                make(Secret::Configured(sha256(p.as_bytes()))),
                PasswordOrigin::Configured,
            ));
        }
        let path = data_dir.join(PASSWORD_FILE);
        // Only a missing file means "first start": any other failure to read it must not
        // quietly replace the admin password.
        let stored = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        };
        if let Some(hash) = stored {
            let hash = hash.trim().to_string();
            PasswordHash::new(&hash).map_err(|e| {
                anyhow::anyhow!("{} is not a valid Argon2 hash: {e}", path.display())
            })?;
            return Ok((
                make(Secret::Hashed(hash.into(), SlowHash::start())),
                PasswordOrigin::Stored,
            ));
        }
        let password = random_token(18);
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| anyhow::anyhow!("hashing the admin password: {e}"))?
            .to_string();
        crate::fsutil::write_private(&path, hash.as_bytes())?;
        Ok((
            make(Secret::Hashed(hash.into(), SlowHash::start())),
            PasswordOrigin::Generated(password),
        ))
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// Checks an `Authorization` header value as far as it can without the slow hash: a
    /// configured password, or credentials that already passed the hash, are settled here.
    pub fn check(&self, header: Option<&str>) -> Verdict {
        let Some((user, password)) = header.and_then(parse_basic) else {
            return Verdict::Rejected;
        };
        let user_ok = bool::from(sha256(user.as_bytes()).ct_eq(&sha256(self.user.as_bytes())));
        match &self.secret {
            Secret::Configured(digest) => {
                let pass_ok = bool::from(sha256(password.as_bytes()).ct_eq(digest));
                if user_ok && pass_ok {
                    Verdict::Accepted
                } else {
                    Verdict::Rejected
                }
            }
            Secret::Hashed(..) => {
                let presented = sha256(format!("{user}:{password}").as_bytes());
                if let Some(known) = *self.verified.lock().expect("auth lock") {
                    if bool::from(known.ct_eq(&presented)) {
                        return Verdict::Accepted;
                    }
                }
                if user_ok {
                    Verdict::NeedsHash(password)
                } else {
                    Verdict::Rejected
                }
            }
        }
    }

    /// Verifies a password `check` could not settle, on the bounded hashing threads.
    pub async fn verify(&self, password: String) -> Verification {
        let Secret::Hashed(hash, hasher) = &self.secret else {
            return Verification::DoesNotMatch;
        };
        let presented = sha256(format!("{}:{password}", self.user).as_bytes());
        let verdict = hasher.verify(hash.clone(), password).await;
        if verdict == Verification::Matches {
            *self.verified.lock().expect("auth lock") = Some(presented);
        }
        verdict
    }
}

fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// `n` random bytes from the OS, URL-safe base64 without padding.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A new trigger token (`sdt_` + 32 random bytes) and the hash to store for it.
pub fn new_trigger_token() -> (String, String) {
    let token = format!("{TOKEN_PREFIX}{}", random_token(32));
    let hash = token_hash(&token);
    (token, hash)
}

/// Trigger tokens carry 256 bits of entropy, so a plain SHA-256 is enough to store them.
pub fn token_hash(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

/// What a missing token is compared against, so a miss costs what a wrong token costs.
pub const NO_TOKEN_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub fn token_matches(presented: &str, stored_hash: &str) -> bool {
    token_hash(presented)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

/// Whether a state-changing request comes from another origin: `Sec-Fetch-Site` says so, or
/// `Origin` (else `Referer`) names neither the host and port addressed nor `public_origin`
/// (the server's configured public URL: behind a reverse proxy the Host seen here need not be
/// the one the browser addressed). Requests with none of these (curl, scripts) are not
/// browsers and carry no ambient credentials to abuse.
pub fn is_cross_origin(
    sec_fetch_site: Option<&str>,
    origin: Option<&str>,
    referer: Option<&str>,
    host: Option<&str>,
    public_origin: Option<&str>,
) -> bool {
    if matches!(sec_fetch_site, Some("cross-site" | "same-site")) {
        return true;
    }
    let Some(source) = origin.or(referer) else {
        return false;
    };
    let Some((scheme, _)) = source.split_once("://") else {
        return true;
    };
    let Some(source) = url_origin(source) else {
        return true;
    };
    if public_origin == Some(source.as_str()) {
        return false;
    }
    let Some(host) = host else {
        return true;
    };
    // The addressed host, taken as reached with the source's scheme.
    source != origin_of(scheme, host, default_port(scheme).unwrap_or(80))
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme.to_ascii_lowercase().as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// `scheme://host:port`, lower-cased, with the scheme's default port written out when the
/// authority has none.
pub fn origin_of(scheme: &str, authority: &str, default_port: u16) -> String {
    let authority = authority.to_ascii_lowercase();
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !authority.ends_with(']');
    let scheme = scheme.to_ascii_lowercase();
    if has_port {
        format!("{scheme}://{authority}")
    } else {
        format!("{scheme}://{authority}:{default_port}")
    }
}

/// The origin of an http(s) URL such as an `Origin` or `Referer` value; `None` for anything
/// else (`null`, other schemes).
pub fn url_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let port = default_port(scheme)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    Some(origin_of(scheme, authority, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_password_file_stops_the_start_instead_of_replacing_the_password() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PASSWORD_FILE), [0xff, 0xfe, 0x00]).unwrap();
        let err = AdminAuth::load("admin", None, dir.path())
            .err()
            .expect("refused");
        assert!(err.to_string().contains(PASSWORD_FILE), "{err}");
        assert_eq!(
            std::fs::read(dir.path().join(PASSWORD_FILE)).unwrap(),
            [0xff, 0xfe, 0x00],
            "the file is left as it was"
        );
    }

    #[test]
    fn basic_credentials_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, _) = AdminAuth::load("admin", Some("pw"), dir.path()).unwrap();
        let header = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        let accepted = |h: Option<&str>| matches!(auth.check(h), Verdict::Accepted);
        assert!(accepted(Some(&header("admin", "pw"))));
        assert!(!accepted(Some(&header("admin", "pw2"))));
        assert!(!accepted(Some(&header("root", "pw"))));
        assert!(!accepted(None));
    }

    #[test]
    fn cross_origin_requests_are_recognized() {
        let host = Some("127.0.0.1:8080");
        assert!(is_cross_origin(Some("cross-site"), None, None, host, None));
        assert!(is_cross_origin(
            None,
            Some("http://evil.example"),
            None,
            host,
            None
        ));
        assert!(!is_cross_origin(
            Some("same-origin"),
            Some("http://127.0.0.1:8080"),
            None,
            host,
            None
        ));
        assert!(!is_cross_origin(None, None, None, Some("x"), None));
        assert!(
            is_cross_origin(None, Some("http://127.0.0.1:9999"), None, host, None),
            "another port is another origin"
        );
        assert!(is_cross_origin(
            None,
            Some("http://127.0.0.1"),
            None,
            host,
            None
        ));
        assert!(!is_cross_origin(
            None,
            Some("http://example.org"),
            None,
            Some("example.org:80"),
            None
        ));
        assert!(
            is_cross_origin(None, None, Some("http://evil.example/page"), host, None),
            "without Origin, the Referer tells"
        );
        assert!(!is_cross_origin(
            None,
            None,
            Some("http://127.0.0.1:8080/admin/scripts"),
            host,
            None
        ));
        assert!(is_cross_origin(None, Some("null"), None, host, None));
        let public = Some("https://scripts.example.com:443");
        assert!(!is_cross_origin(
            Some("same-origin"),
            Some("https://scripts.example.com"),
            None,
            Some("127.0.0.1:8080"),
            public
        ));
        assert!(is_cross_origin(
            Some("same-site"),
            Some("https://scripts.example.com"),
            None,
            host,
            public
        ));
        assert!(is_cross_origin(
            None,
            Some("http://scripts.example.com"),
            None,
            host,
            public
        ));
    }

    #[test]
    fn origins_are_compared_with_their_default_ports() {
        assert_eq!(
            url_origin("https://Scripts.Example.com/admin/scripts?x=1"),
            Some("https://scripts.example.com:443".into())
        );
        assert_eq!(
            url_origin("http://127.0.0.1:8080"),
            Some("http://127.0.0.1:8080".into())
        );
        assert_eq!(url_origin("null"), None);
        assert_eq!(url_origin("file:///etc/passwd"), None);
    }

    #[test]
    fn tokens_match_only_their_hash() {
        let (token, hash) = new_trigger_token();
        assert!(token.starts_with("sdt_") && token.len() > 40);
        assert!(token_matches(&token, &hash));
        assert!(!token_matches("sdt_other", &hash));
    }
}
