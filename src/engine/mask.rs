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
        // Output is split into lines, so a secret spanning lines is masked line by line.
        let mut secrets: Vec<String> = values
            .into_iter()
            .flat_map(|v| {
                v.split(['\n', '\r'])
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    /// Masks every occurrence of every secret. Occurrences are found in the original text and
    /// merged where they overlap, so two overlapping secrets leave no character of either.
    pub fn mask(&self, line: String) -> String {
        if self.secrets.is_empty() {
            return line;
        }
        let mut hits: Vec<(usize, usize)> = self
            .secrets
            .iter()
            .flat_map(|s| {
                line.match_indices(s.as_str())
                    .map(|(at, m)| (at, at + m.len()))
                    .collect::<Vec<_>>()
            })
            .collect();
        if hits.is_empty() {
            return line;
        }
        hits.sort_unstable();
        let mut out = String::with_capacity(line.len());
        let mut copied = 0;
        let mut i = 0;
        while i < hits.len() {
            let (start, mut end) = hits[i];
            i += 1;
            while i < hits.len() && hits[i].0 <= end {
                end = end.max(hits[i].1);
                i += 1;
            }
            out.push_str(&line[copied..start]);
            out.push_str("***");
            copied = end;
        }
        out.push_str(&line[copied..]);
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
    fn overlapping_and_multi_line_secrets_leave_nothing_behind() {
        let m = Masker::new(["abcd".to_string(), "cdXYZ".to_string()]);
        assert_eq!(m.mask("x abcdXYZ y abcd".into()), "x *** y ***");
        let m = Masker::new(["line-one\nline-two".to_string()]);
        assert_eq!(m.mask("got line-one".into()), "got ***");
        assert_eq!(m.mask("line-two!".into()), "***!");
    }

    #[test]
    fn a_partial_line_ending_in_a_secrets_prefix_is_held_back() {
        let m = Masker::new(["s3cr3t-token".to_string()]);
        assert_eq!(m.held_back(b"progress: s3cr"), 4);
        assert_eq!(m.held_back(b"progress: 50%"), 0);
    }
}
