//! This node's metrics for `/metrics`, kept and encoded by the Prometheus client library
//! (OpenMetrics text). Every series carries `node`, so several nodes scraped together stay
//! apart; the queue depth is the shared queue's, the other gauges this node's.

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::domain::{LogStream, RunStatus, Trigger};

/// The OpenMetrics text format, which Prometheus negotiates and reads.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = [(&'static str, &'static str); 1];
type Labels2 = [(&'static str, &'static str); 2];

/// The store calls the run path makes, timed by `Metrics::store_call`.
#[derive(Clone, Copy)]
pub enum StoreCall {
    Claim,
    AppendLog,
    Finish,
}

impl StoreCall {
    fn as_str(self) -> &'static str {
        match self {
            StoreCall::Claim => "claim",
            StoreCall::AppendLog => "append_log",
            StoreCall::Finish => "finish",
        }
    }
}

/// Who failed to authenticate.
#[derive(Clone, Copy)]
pub enum AuthKind {
    Admin,
    Trigger,
}

pub struct Metrics {
    registry: Registry,
    runs_started: Family<Labels, Counter>,
    runs_finished: Family<Labels2, Counter>,
    run_duration: Family<Labels, Histogram>,
    claim_latency: Histogram,
    start_failures: Counter,
    output_lines: Family<Labels, Counter>,
    output_bytes: Family<Labels, Counter>,
    log_bytes_stored: Counter,
    schedule_fired: Counter,
    schedule_skipped: Counter,
    schedule_missed: Counter,
    schedule_lag: Histogram,
    auth_failures: Family<Labels, Counter>,
    store_latency: Family<Labels, Histogram>,
    running: Gauge,
    queued: Gauge,
    subscribers: Gauge<u64, AtomicU64>,
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Metrics {
    pub fn new(node_id: &str) -> Self {
        let node = (Cow::Borrowed("node"), Cow::Owned(node_id.to_string()));
        let mut registry = Registry::with_prefix_and_labels("scriptd", std::iter::once(node));
        let m = Self {
            runs_started: Family::default(),
            runs_finished: Family::default(),
            // 10 ms to about 45 minutes.
            run_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 3.0, 12))
            }),
            // 0.5 ms to about 16 s.
            claim_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            start_failures: Counter::default(),
            output_lines: Family::default(),
            output_bytes: Family::default(),
            log_bytes_stored: Counter::default(),
            schedule_fired: Counter::default(),
            schedule_skipped: Counter::default(),
            schedule_missed: Counter::default(),
            // 1 ms to about 16 s.
            schedule_lag: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            auth_failures: Family::default(),
            // 0.1 ms to about 1.6 s.
            store_latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 15))
            }),
            running: Gauge::default(),
            queued: Gauge::default(),
            subscribers: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "runs_started",
            "Runs accepted, by trigger",
            m.runs_started.clone(),
        );
        registry.register(
            "runs_finished",
            "Runs ended, by final status and trigger",
            m.runs_finished.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "Time from start to end of runs this node executed, by final status",
            m.run_duration.clone(),
        );
        registry.register(
            "claim_latency_seconds",
            "Time runs this node claimed spent queued",
            m.claim_latency.clone(),
        );
        registry.register(
            "run_start_failures",
            "Runs whose process or worker could not be started",
            m.start_failures.clone(),
        );
        registry.register(
            "output_lines",
            "Lines of output read from scripts, by stream",
            m.output_lines.clone(),
        );
        registry.register(
            "output_bytes",
            "Bytes of output read from scripts, by stream",
            m.output_bytes.clone(),
        );
        registry.register(
            "log_stored_bytes",
            "Bytes of output stored in run logs (after masking, up to each run's cap)",
            m.log_bytes_stored.clone(),
        );
        registry.register(
            "schedule_fired",
            "Scheduled ticks that started a run",
            m.schedule_fired.clone(),
        );
        registry.register(
            "schedule_skipped",
            "Scheduled ticks skipped (script busy or disabled)",
            m.schedule_skipped.clone(),
        );
        registry.register(
            "schedule_missed",
            "Scheduled ticks claimed too late to fire (no node was up in time)",
            m.schedule_missed.clone(),
        );
        registry.register(
            "schedule_lag_seconds",
            "How late after its tick time a scheduled run was started",
            m.schedule_lag.clone(),
        );
        registry.register(
            "auth_failures",
            "Refused credentials, by kind (admin login or trigger token)",
            m.auth_failures.clone(),
        );
        registry.register(
            "store_call_seconds",
            "Time the run path's store calls take, by call",
            m.store_latency.clone(),
        );
        registry.register(
            "runs_running",
            "Runs executing on this node",
            m.running.clone(),
        );
        registry.register(
            "runs_queued",
            "Runs waiting in the queue, across all nodes",
            m.queued.clone(),
        );
        registry.register(
            "stream_subscribers",
            "Live output streams attached on this node",
            m.subscribers.clone(),
        );
        Self { registry, ..m }
    }

    pub fn run_submitted(&self, trigger: Trigger) {
        self.runs_started
            .get_or_create(&[("trigger", trigger.as_str())])
            .inc();
    }

    /// A run ended; `ran` is how long it ran, when it ran here.
    pub fn run_finished(&self, status: RunStatus, trigger: Trigger, ran: Option<Duration>) {
        self.runs_finished
            .get_or_create(&[("status", status.as_str()), ("trigger", trigger.as_str())])
            .inc();
        if let Some(ran) = ran {
            self.run_duration
                .get_or_create(&[("status", status.as_str())])
                .observe(seconds(ran));
        }
    }

    pub fn run_claimed(&self, queued_for: Duration) {
        self.claim_latency.observe(seconds(queued_for));
    }

    pub fn start_failed(&self) {
        self.start_failures.inc();
    }

    pub fn output_read(&self, stream: LogStream, lines: u64, bytes: u64) {
        let label = [("stream", stream.as_str())];
        self.output_lines.get_or_create(&label).inc_by(lines);
        self.output_bytes.get_or_create(&label).inc_by(bytes);
    }

    pub fn log_stored(&self, bytes: u64) {
        self.log_bytes_stored.inc_by(bytes);
    }

    pub fn schedule_fired(&self, lag: Duration) {
        self.schedule_fired.inc();
        self.schedule_lag.observe(seconds(lag));
    }

    pub fn schedule_skipped(&self) {
        self.schedule_skipped.inc();
    }

    pub fn schedule_missed(&self) {
        self.schedule_missed.inc();
    }

    pub fn auth_failed(&self, kind: AuthKind) {
        let kind = match kind {
            AuthKind::Admin => "admin",
            AuthKind::Trigger => "trigger",
        };
        self.auth_failures.get_or_create(&[("kind", kind)]).inc();
    }

    pub fn store_call(&self, call: StoreCall, took: Duration) {
        self.store_latency
            .get_or_create(&[("call", call.as_str())])
            .observe(seconds(took));
    }

    /// The exposition, with the engine's current load.
    pub fn render(&self, running: usize, queued: i64, subscribers: usize) -> String {
        self.running.set(running as i64);
        self.queued.set(queued);
        self.subscribers.set(subscribers as u64);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
