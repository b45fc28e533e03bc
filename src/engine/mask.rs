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

    pub fn mask(&self, line: String) -> String {
        let mut out = line;
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }

    /// How many bytes at the end of `partial` could be the beginning of a secret, and so must
    /// wait for more output before they are flushed.
    pub fn held_back(&self, partial: &[u8]) -> usize {
        self.secrets
            .iter()
            .flat_map(|s| {
                let s = s.as_bytes();
                (1..s.len().min(partial.len() + 1)).filter(move |&k| partial.ends_with(&s[..k]))
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_short_ones_left() {
        let m = Masker::new(["s3cr3t-token".to_string(), "abc".to_string()]);
        assert_eq!(m.mask("token=s3cr3t-token abc".into()), "token=*** abc");
    }

    #[test]
    fn a_partial_line_ending_in_a_secrets_prefix_is_held_back() {
        let m = Masker::new(["s3cr3t-token".to_string()]);
        assert_eq!(m.held_back(b"progress: s3cr"), 4);
        assert_eq!(m.held_back(b"progress: 50%"), 0);
    }
}
