//! Counters for `/metrics` (Prometheus text format). Plain atomics: a handful of numbers do
//! not need a metrics framework.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::domain::{RunStatus, Trigger};

#[derive(Default)]
pub struct Metrics {
    runs_manual: AtomicU64,
    runs_schedule: AtomicU64,
    runs_api: AtomicU64,
    finished: [AtomicU64; 6],
    schedule_skipped: AtomicU64,
    schedule_fired: AtomicU64,
    schedule_missed: AtomicU64,
}

impl Metrics {
    pub fn run_submitted(&self, trigger: Trigger) {
        let c = match trigger {
            Trigger::Manual => &self.runs_manual,
            Trigger::Schedule => &self.runs_schedule,
            Trigger::Api => &self.runs_api,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn run_finished(&self, status: RunStatus) {
        if let Some(i) = RunStatus::ALL.iter().position(|s| *s == status) {
            self.finished[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn schedule_fired(&self) {
        self.schedule_fired.fetch_add(1, Ordering::Relaxed);
    }

    pub fn schedule_skipped(&self) {
        self.schedule_skipped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn schedule_missed(&self) {
        self.schedule_missed.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition, with the engine's current load.
    pub fn render(&self, running: usize, queued: i64, subscribers: usize) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str("# HELP scriptd_runs_started_total Runs accepted, by trigger.\n# TYPE scriptd_runs_started_total counter\n");
        for (t, c) in [
            ("manual", &self.runs_manual),
            ("schedule", &self.runs_schedule),
            ("api", &self.runs_api),
        ] {
            let _ = writeln!(
                out,
                "scriptd_runs_started_total{{trigger=\"{t}\"}} {}",
                get(c)
            );
        }
        out.push_str("# HELP scriptd_runs_finished_total Runs ended, by final status.\n# TYPE scriptd_runs_finished_total counter\n");
        for (s, c) in RunStatus::ALL.iter().zip(&self.finished) {
            if s.is_terminal() {
                let _ = writeln!(
                    out,
                    "scriptd_runs_finished_total{{status=\"{}\"}} {}",
                    s.as_str(),
                    get(c)
                );
            }
        }
        let _ = write!(
            out,
            "# HELP scriptd_schedule_fired_total Scheduled ticks that started a run.\n# TYPE scriptd_schedule_fired_total counter\nscriptd_schedule_fired_total {}\n\
             # HELP scriptd_schedule_skipped_total Scheduled ticks skipped (script busy or disabled).\n# TYPE scriptd_schedule_skipped_total counter\nscriptd_schedule_skipped_total {}\n\
             # HELP scriptd_schedule_missed_total Scheduled ticks claimed too late to fire (no node was up in time).\n# TYPE scriptd_schedule_missed_total counter\nscriptd_schedule_missed_total {}\n\
             # HELP scriptd_runs_running Runs executing on this node.\n# TYPE scriptd_runs_running gauge\nscriptd_runs_running {running}\n\
             # HELP scriptd_runs_queued Runs waiting in the queue, across all nodes.\n# TYPE scriptd_runs_queued gauge\nscriptd_runs_queued {queued}\n\
             # HELP scriptd_stream_subscribers Live output streams attached on this node.\n# TYPE scriptd_stream_subscribers gauge\nscriptd_stream_subscribers {subscribers}\n",
            get(&self.schedule_fired),
            get(&self.schedule_skipped),
            get(&self.schedule_missed),
        );
        out
    }
}
