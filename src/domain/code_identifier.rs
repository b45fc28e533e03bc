//! The URL-safe identifier of a script.

use super::ValidationError;

/// Lower-case `[a-z0-9-_]`, 1–100 characters. `Sync Project!` becomes `sync-project`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CodeIdentifier(String);

impl CodeIdentifier {
    pub const MAX_LEN: usize = 100;

    /// Normalizes free text: lower-cases it, turns whitespace and other separators into `-`,
    /// drops what is left outside `[a-z0-9-_]`, and collapses runs of `-`.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let mut out = String::with_capacity(raw.len());
        for ch in raw.trim().chars().flat_map(char::to_lowercase) {
            let mapped = match ch {
                'a'..='z' | '0'..='9' | '_' => Some(ch),
                '-' | '.' | '/' | ':' => Some('-'),
                c if c.is_whitespace() => Some('-'),
                _ => None,
            };
            if let Some(c) = mapped {
                if c == '-' && (out.is_empty() || out.ends_with('-')) {
                    continue;
                }
                out.push(c);
            }
        }
        while out.ends_with('-') {
            out.pop();
        }
        if out.is_empty() {
            return Err(ValidationError::new(
                "codeIdentifier",
                "must contain at least one letter, digit or '_' ('-' and other separators are only kept between them)",
            ));
        }
        if out.len() > Self::MAX_LEN {
            return Err(ValidationError::new(
                "codeIdentifier",
                format!("must be at most {} characters", Self::MAX_LEN),
            ));
        }
        Ok(Self(out))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For values read back from the store, which were parsed when written.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }
}

impl std::fmt::Display for CodeIdentifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_display_name_normalizes_to_a_slug() {
        assert_eq!(
            CodeIdentifier::parse("Sync Project!").unwrap().as_str(),
            "sync-project"
        );
        assert_eq!(
            CodeIdentifier::parse("  a--b__c  ").unwrap().as_str(),
            "a-b__c"
        );
        assert_eq!(CodeIdentifier::parse("Déjà vu").unwrap().as_str(), "dj-vu");
    }

    #[test]
    fn nothing_usable_or_too_long_is_refused() {
        assert!(CodeIdentifier::parse("!!!").is_err());
        assert!(CodeIdentifier::parse(&"a".repeat(101)).is_err());
        assert!(CodeIdentifier::parse(&"a".repeat(100)).is_ok());
    }
}
