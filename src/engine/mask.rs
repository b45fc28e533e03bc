//! Replaces a run's secret values with `***` in its output.

/// Secrets shorter than this are not masked: masking `a` or `1` would shred every line.
pub const MIN_SECRET_LEN: usize = 4;

#[derive(Debug, Default, Clone)]
pub struct Masker {
    /// Longest first, so a secret that contains another is masked whole.
    secrets: Vec<String>,
}

impl Masker {
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = values
            .into_iter()
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    pub fn mask(&self, line: &str) -> String {
        let mut out = line.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }

    /// The longest secret, in bytes: how much of a partial line must be held back so a secret
    /// split across two reads is still seen whole.
    pub fn longest(&self) -> usize {
        self.secrets.first().map_or(0, String::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_short_ones_left() {
        let m = Masker::new(["s3cr3t-token".to_string(), "abc".to_string()]);
        assert_eq!(m.mask("token=s3cr3t-token abc"), "token=*** abc");
    }
}
