//! What operators watch: the Prometheus metrics after real runs and refusals, and the logs a
//! real `scriptd serve` process writes in each format.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{both_backends, metric, Backend, TestApp};
use crate::process::Server;

both_backends!(metrics_count_runs_output_store_calls_and_refusals);

async fn metrics_count_runs_output_store_calls_and_refusals(b: Backend) {
    let app = TestApp::spawn(b).await;
    let script = app
        .bash("printf 'a\\nb\\nc\\n'; echo oops >&2", json!({}))
        .await;
    let run = app.run(&script).await;
    assert_eq!(app.wait_run(&run).await["status"], "succeeded");
    let wrong_login = app
        .client
        .get(app.url("/api/admin/scripts"))
        .basic_auth("admin", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_login.status(), 401);
    let wrong_token = app
        .client
        .post(app.url("/api/scripts/nope/run"))
        .bearer_auth("sdt_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_token.status(), 401);

    let resp = app.call(Method::GET, "/metrics").await;
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = resp.text().await.unwrap();
    assert!(
        text.ends_with("# EOF\n"),
        "an OpenMetrics exposition ends with # EOF"
    );
    let node = app.get_json("/healthz").await["node"]
        .as_str()
        .unwrap()
        .to_string();
    let node = format!("node=\"{node}\"");
    let value = |name: &str, labels: &[&str]| {
        let mut all = labels.to_vec();
        all.push(&node);
        metric(&text, name, &all).unwrap_or_else(|| panic!("no {name}{labels:?} in\n{text}"))
    };
    assert_eq!(
        value("scriptd_runs_started_total", &["trigger=\"manual\""]),
        1.0
    );
    assert_eq!(
        value(
            "scriptd_runs_finished_total",
            &["status=\"succeeded\"", "trigger=\"manual\""]
        ),
        1.0
    );
    assert_eq!(
        value(
            "scriptd_run_duration_seconds_count",
            &["status=\"succeeded\""]
        ),
        1.0
    );
    assert_eq!(value("scriptd_claim_latency_seconds_count", &[]), 1.0);
    assert_eq!(
        value("scriptd_output_lines_total", &["stream=\"stdout\""]),
        3.0
    );
    assert_eq!(
        value("scriptd_output_lines_total", &["stream=\"stderr\""]),
        1.0
    );
    assert_eq!(
        value("scriptd_output_bytes_total", &["stream=\"stdout\""]),
        6.0
    );
    // a, b, c and oops, each with its newline.
    assert_eq!(value("scriptd_log_stored_bytes_total", &[]), 11.0);
    assert!(value("scriptd_auth_failures_total", &["kind=\"admin\""]) >= 1.0);
    assert_eq!(
        value("scriptd_auth_failures_total", &["kind=\"trigger\""]),
        1.0
    );
    assert!(value("scriptd_store_call_seconds_count", &["call=\"claim\""]) >= 1.0);
    assert!(value("scriptd_store_call_seconds_count", &["call=\"append_log\""]) >= 1.0);
    assert_eq!(
        value("scriptd_store_call_seconds_count", &["call=\"finish\""]),
        1.0
    );
    assert_eq!(value("scriptd_runs_running", &[]), 0.0);
    assert_eq!(value("scriptd_runs_queued", &[]), 0.0);
    assert_eq!(value("scriptd_run_start_failures_total", &[]), 0.0);
}

/// Runs one script on a real `scriptd serve` with `args`, stops it, and returns its stderr
/// with the run's id.
async fn log_of_one_run(args: &[&str], code: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let mut server = Server::start_logging_to(dir.path(), args, &log).await;
    let script = server
        .create(json!({"name": code, "codeIdentifier": code, "type": "bash", "script": "echo hi"}))
        .await;
    let run = server.run(&script).await;
    assert_eq!(server.wait_finished(&run).await["status"], "succeeded");
    server.stop();
    (std::fs::read_to_string(&log).unwrap(), run)
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_with_the_run_in_their_span() {
    let (log, run_id) = log_of_one_run(&["--log-format", "json"], "logged").await;
    let events: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let started = events
        .iter()
        .find(|e| e["fields"]["message"] == "run started")
        .unwrap_or_else(|| panic!("no 'run started' event in\n{log}"));
    assert_eq!(started["span"]["run_id"], run_id.as_str(), "{started}");
    assert_eq!(started["span"]["script"], "logged", "{started}");
    assert_eq!(started["level"], "INFO");
    assert!(!log.contains('\u{1b}'), "no escape codes in JSON logs");
}

#[tokio::test]
async fn text_logs_written_to_a_file_carry_no_colour_codes() {
    let (log, _) = log_of_one_run(&[], "plain").await;
    assert!(log.contains("run started"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "escape codes in a log file:\n{log}"
    );
}
