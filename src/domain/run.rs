//! A run of a script: its life cycle and the lines it prints.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `queued → running → succeeded | failed | canceled | timed_out`; a queued run may also end
/// without ever running (canceled, or failed when the server restarts). `skipped` is a
/// schedule tick that started nothing, recorded as such from the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Canceled,
    TimedOut,
    Skipped,
}

impl RunStatus {
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Canceled,
        RunStatus::TimedOut,
        RunStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Canceled => "canceled",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    /// The one place that says which moves are allowed.
    pub fn can_move_to(self, next: RunStatus) -> bool {
        match (self, next) {
            (RunStatus::Queued, RunStatus::Running) => true,
            (RunStatus::Queued, RunStatus::Canceled | RunStatus::Failed) => true,
            (RunStatus::Running, RunStatus::Skipped) => false,
            (RunStatus::Running, n) => n.is_terminal(),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Manual,
    Schedule,
    Api,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::Api => "api",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Trigger::Manual, Trigger::Schedule, Trigger::Api]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }

    pub fn parse(s: &str) -> Self {
        if s == "stderr" {
            LogStream::Stderr
        } else {
            LogStream::Stdout
        }
    }
}

/// One line of output, numbered from 1 within its run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub seq: i64,
    pub stream: LogStream,
    pub line: String,
    pub ts: DateTime<Utc>,
}

/// How a run ended, as the engine records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: Option<String>,
}

impl RunOutcome {
    pub fn failed(error: impl Into<String>) -> Self {
        Self {
            status: RunStatus::Failed,
            exit_code: None,
            signal: None,
            error: Some(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_forward_moves_are_allowed() {
        use RunStatus::*;
        assert!(Queued.can_move_to(Running));
        assert!(Queued.can_move_to(Canceled));
        assert!(Running.can_move_to(TimedOut));
        assert!(!Running.can_move_to(Queued));
        assert!(!Succeeded.can_move_to(Failed));
        assert!(!Queued.can_move_to(Succeeded));
        assert!(!Queued.can_move_to(Skipped) && !Running.can_move_to(Skipped));
        assert!(Skipped.is_terminal() && !Skipped.can_move_to(Running));
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
        }
    }
}

/// A run as stored.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: String,
    pub script_id: String,
    pub status: RunStatus,
    pub trigger: Trigger,
    pub meta: serde_json::Value,
    pub input: Option<serde_json::Value>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: Option<String>,
    pub output_tail: String,
    pub result: Option<serde_json::Value>,
    pub log_bytes: i64,
    pub log_truncated: bool,
    /// The node that claimed the run; `None` while it waits in the queue.
    pub node_id: Option<String>,
    /// The script's version it runs; `None` for runs recorded before versions were kept.
    pub script_version: Option<i64>,
}

impl Run {
    /// A new run's id and its queue time, one read of the clock for both: the id's time is
    /// the run's `queued_at` to the millisecond, so time filters can be id bounds.
    pub fn new_id() -> (String, DateTime<Utc>) {
        let id = uuid::Uuid::now_v7();
        let at = id
            .get_timestamp()
            .map(|t| t.to_unix())
            .and_then(|(secs, nanos)| DateTime::from_timestamp(secs as i64, nanos))
            .unwrap_or_else(Utc::now);
        (id.to_string(), at)
    }

    /// A new run waiting in the queue, its id and queue time from one read of the clock.
    pub fn queued(
        script_id: &str,
        trigger: Trigger,
        meta: serde_json::Value,
        input: Option<serde_json::Value>,
    ) -> Self {
        let (id, queued_at) = Self::new_id();
        Run {
            id,
            script_id: script_id.to_string(),
            status: RunStatus::Queued,
            trigger,
            meta,
            input,
            queued_at,
            started_at: None,
            finished_at: None,
            exit_code: None,
            signal: None,
            error: None,
            output_tail: String::new(),
            result: None,
            log_bytes: 0,
            log_truncated: false,
            node_id: None,
            script_version: None,
        }
    }

    /// The smallest run id of a millisecond: run ids are UUIDv7s of their queue time, which
    /// sort as their text does, so a time bound on runs is a bound on the primary key.
    pub fn first_id_at(unix_ms: i64) -> String {
        let ms = unix_ms.max(0);
        format!(
            "{:08x}-{:04x}-7000-8000-000000000000",
            (ms >> 16) & 0xffff_ffff,
            ms & 0xffff
        )
    }

    pub fn duration_ms(&self) -> Option<i64> {
        let start = self.started_at?;
        let end = self.finished_at?;
        Some((end - start).num_milliseconds())
    }
}

#[cfg(test)]
mod id_bound_tests {
    use super::Run;

    #[test]
    fn a_time_bound_sorts_between_the_ids_of_its_millisecond_and_the_next() {
        // Up to the end of year 9999, the last time RFC 3339 can name.
        for ms in [
            0i64,
            1_764_062_400_123,
            1_764_062_400_123 + 65_535,
            253_402_300_799_999,
        ] {
            let ts = uuid::Timestamp::from_unix(
                uuid::NoContext,
                (ms / 1000) as u64,
                ((ms % 1000) * 1_000_000) as u32,
            );
            let id = uuid::Uuid::new_v7(ts).to_string();
            assert!(Run::first_id_at(ms) <= id, "{ms}: {id}");
            assert!(id < Run::first_id_at(ms + 1), "{ms}: {id}");
        }
    }

    #[test]
    fn a_new_run_id_falls_in_the_millisecond_of_its_queue_time() {
        for _ in 0..1000 {
            let (id, at) = Run::new_id();
            let ms = at.timestamp_millis();
            assert!(
                Run::first_id_at(ms) <= id && id < Run::first_id_at(ms + 1),
                "{id} {at}"
            );
        }
    }
}
