//! A script's retry policy: which ends of a run start another attempt, and after how long.
//! Each attempt is a run of its own, queued with a due time in the store, so a retry survives
//! a restart and any node may take it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{RunOutcome, RunStatus, ValidationError};

pub const MAX_RETRIES: i64 = 10;
const MAX_DELAY_MS: i64 = 86_400_000;
const MAX_EXIT_CODES: usize = 50;
/// Each delay is spread by up to this share either way, so retries of many runs that failed
/// together do not all come back at the same instant.
const JITTER: f64 = 0.1;

/// Retries of a run that failed. `retries` 0 (the default) means none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[schema(as = RetryPolicy)]
pub struct RetryPolicy {
    /// How many more attempts after the first, 0 to 10.
    #[schema(minimum = 0, maximum = 10)]
    #[serde(deserialize_with = "super::whole::one")]
    pub retries: i64,
    /// The wait before the first retry, in ms (0 to 24 h; default 1000).
    #[schema(minimum = 0, maximum = 86400000)]
    #[serde(deserialize_with = "super::whole::one")]
    pub delay_ms: i64,
    /// Each further wait is the last one times this (1 to 10; default 2).
    #[schema(minimum = 1, maximum = 10)]
    pub factor: f64,
    /// No wait is longer than this, in ms (default 300000).
    #[schema(minimum = 0, maximum = 86400000)]
    #[serde(deserialize_with = "super::whole::one")]
    pub max_delay_ms: i64,
    /// Only these exit codes retry; empty (the default): any non-zero one.
    #[schema(max_items = 50)]
    #[serde(deserialize_with = "super::whole::list")]
    pub exit_codes: Vec<i64>,
    /// Whether a run that timed out retries (default true). A canceled run never does.
    pub on_timeout: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 0,
            delay_ms: 1000,
            factor: 2.0,
            max_delay_ms: 300_000,
            exit_codes: Vec::new(),
            on_timeout: true,
        }
    }
}

/// Where a run stands in its chain of attempts (`meta.retry` of a retry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// The first run of the chain.
    pub of: String,
    /// This run's number, from 1 (the first run).
    pub attempt: i64,
    /// How many attempts the chain may have in all.
    pub attempts: i64,
}

impl RetryPolicy {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(0..=MAX_RETRIES).contains(&self.retries) {
            return Err(ValidationError::new(
                "retry.retries",
                "must be between 0 and 10",
            ));
        }
        for (field, ms) in [
            ("retry.delayMs", self.delay_ms),
            ("retry.maxDelayMs", self.max_delay_ms),
        ] {
            if !(0..=MAX_DELAY_MS).contains(&ms) {
                return Err(ValidationError::new(
                    field,
                    "must be between 0 and 86400000 (24 h)",
                ));
            }
        }
        if !(1.0..=10.0).contains(&self.factor) {
            return Err(ValidationError::new(
                "retry.factor",
                "must be between 1 and 10",
            ));
        }
        if self.exit_codes.len() > MAX_EXIT_CODES {
            return Err(ValidationError::new(
                "retry.exitCodes",
                "must list at most 50 codes",
            ));
        }
        if let Some(bad) = self.exit_codes.iter().find(|c| !(1..=255).contains(*c)) {
            return Err(ValidationError::new(
                "retry.exitCodes",
                format!("{bad} is not a failing exit code (1 to 255)"),
            ));
        }
        Ok(())
    }

    /// Whether a run that ended so starts another attempt (attempts left aside).
    pub fn retries_after(&self, outcome: &RunOutcome) -> bool {
        match outcome.status {
            RunStatus::TimedOut => self.on_timeout,
            // A run that failed to start, or whose node went away, has no exit code: only a
            // script's own failure is retried.
            RunStatus::Failed => outcome.exit_code.is_some_and(|code| {
                code != 0
                    && (self.exit_codes.is_empty() || self.exit_codes.contains(&i64::from(code)))
            }),
            _ => false,
        }
    }

    /// The wait before attempt `next` (2 for the first retry), before jitter.
    pub fn delay_before(&self, next: i64) -> Duration {
        let steps = (next - 2).clamp(0, MAX_RETRIES) as i32;
        let ms = (self.delay_ms as f64 * self.factor.powi(steps)).min(self.max_delay_ms as f64);
        Duration::from_millis(ms.max(0.0) as u64)
    }

    /// The wait before attempt `next`, spread by the jitter.
    pub fn jittered_delay_before(&self, next: i64) -> Duration {
        let spread = 1.0 + JITTER * (2.0 * rand::random::<f64>() - 1.0);
        self.delay_before(next).mul_f64(spread)
    }

    /// The next attempt after a run in position `current` that ended with `outcome`.
    pub fn next_attempt(&self, current: &Attempt, outcome: &RunOutcome) -> Option<Attempt> {
        let attempts = self.retries + 1;
        (current.attempt < attempts && self.retries_after(outcome)).then(|| Attempt {
            of: current.of.clone(),
            attempt: current.attempt + 1,
            attempts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(status: RunStatus, exit_code: Option<i32>) -> RunOutcome {
        RunOutcome {
            status,
            exit_code,
            signal: None,
            error: None,
        }
    }

    #[test]
    fn only_a_scripts_own_failure_or_a_timeout_retries() {
        let p = RetryPolicy {
            retries: 2,
            ..Default::default()
        };
        assert!(p.retries_after(&ended(RunStatus::Failed, Some(1))));
        assert!(p.retries_after(&ended(RunStatus::TimedOut, None)));
        assert!(
            !p.retries_after(&ended(RunStatus::Failed, None)),
            "no exit code"
        );
        assert!(!p.retries_after(&ended(RunStatus::Canceled, None)));
        assert!(!p.retries_after(&ended(RunStatus::Succeeded, Some(0))));
        let listed = RetryPolicy {
            exit_codes: vec![3, 75],
            on_timeout: false,
            ..p
        };
        assert!(listed.retries_after(&ended(RunStatus::Failed, Some(75))));
        assert!(!listed.retries_after(&ended(RunStatus::Failed, Some(4))));
        assert!(!listed.retries_after(&ended(RunStatus::TimedOut, None)));
    }

    #[test]
    fn attempts_stop_at_the_count_and_waits_grow_to_their_cap() {
        let p = RetryPolicy {
            retries: 3,
            delay_ms: 1000,
            factor: 3.0,
            max_delay_ms: 5000,
            ..Default::default()
        };
        let failed = ended(RunStatus::Failed, Some(1));
        let first = Attempt {
            of: "r1".into(),
            attempt: 1,
            attempts: 1,
        };
        let second = p.next_attempt(&first, &failed).unwrap();
        assert_eq!(
            (second.attempt, second.attempts, second.of.as_str()),
            (2, 4, "r1")
        );
        let fourth = Attempt {
            attempt: 4,
            ..second.clone()
        };
        assert_eq!(p.next_attempt(&fourth, &failed), None);
        assert_eq!(p.delay_before(2), Duration::from_millis(1000));
        assert_eq!(p.delay_before(3), Duration::from_millis(3000));
        assert_eq!(p.delay_before(4), Duration::from_millis(5000), "capped");
        for _ in 0..100 {
            let d = p.jittered_delay_before(3).as_millis();
            assert!((2700..=3300).contains(&d), "{d}");
        }
        assert_eq!(
            RetryPolicy::default().next_attempt(&first, &failed),
            None,
            "none by default"
        );
    }

    #[test]
    fn out_of_range_settings_name_their_field() {
        for (p, field) in [
            (
                RetryPolicy {
                    retries: 11,
                    ..Default::default()
                },
                "retry.retries",
            ),
            (
                RetryPolicy {
                    delay_ms: -1,
                    ..Default::default()
                },
                "retry.delayMs",
            ),
            (
                RetryPolicy {
                    factor: 0.5,
                    ..Default::default()
                },
                "retry.factor",
            ),
            (
                RetryPolicy {
                    exit_codes: vec![0],
                    ..Default::default()
                },
                "retry.exitCodes",
            ),
        ] {
            assert_eq!(p.validate().unwrap_err().field, field);
        }
    }
}
