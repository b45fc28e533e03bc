//! The run events stream: every run's queued → running → end, from any trigger and any node.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{both_backends, parse_sse, Backend, TestApp};
use crate::process::{Cluster, Server};

both_backends!(a_triggered_run_is_seen_from_its_admission_to_its_end);

/// Reads `run` events from an open stream until `run_id` has ended; returns its statuses in
/// the order they came.
async fn statuses_of(resp: reqwest::Response, run_id: &str) -> Vec<(String, Value)> {
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let seen: Vec<(String, Value)> = parse_sse(&text)
            .into_iter()
            .filter(|e| e.event == "run" && e.data["run"]["id"] == run_id)
            .map(|e| {
                (
                    e.data["status"].as_str().unwrap().to_string(),
                    e.data["run"].clone(),
                )
            })
            .collect();
        if seen
            .last()
            .is_some_and(|(s, _)| !matches!(s.as_str(), "queued" | "running"))
        {
            return seen;
        }
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .unwrap_or_else(|_| panic!("the run did not end in the events: {text}"))
            .expect("the stream stays open")
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// A run that waits in the queue is seen queued, running and ended; one its admission started
/// at once (a free slot, a script that is not `queue`) is seen running and ended.
async fn a_triggered_run_is_seen_from_its_admission_to_its_end(b: Backend) {
    let app = TestApp::spawn(b).await;
    for (concurrency, expected) in [
        ("queue", &["queued", "running", "succeeded"][..]),
        ("single", &["running", "succeeded"][..]),
    ] {
        let (id, code, token) = app
            .triggered_bash("echo hi", json!({"concurrency": concurrency}))
            .await;
        let events = app.call(Method::GET, "/api/admin/scripts/events").await;
        assert_eq!(events.status(), 200);
        assert!(events.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let started = app.trigger(&code, &token).await;
        let run = started["runId"].as_str().unwrap();
        let seen = statuses_of(events, run).await;
        let order: Vec<&str> = seen.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(order, expected, "{concurrency}");
        let (_, last) = seen.last().unwrap();
        assert_eq!(last["scriptId"], id.as_str());
        assert_eq!(last["trigger"], "api");
        assert_eq!(last["exitCode"], 0);
        assert!(last.get("outputTail").is_none(), "list shape: {last}");
    }
}

#[tokio::test]
async fn a_run_on_one_node_is_seen_on_another() {
    let Some(_) = crate::helpers::pg_url() else {
        return;
    };
    let cluster = Cluster::start(2, &[]).await;
    let (a, b): (&Server, &Server) = (&cluster.nodes[0], &cluster.nodes[1]);
    let script = a
        .create(
            json!({"name": "elsewhere", "codeIdentifier": "elsewhere", "type": "bash",
                       "script": "echo hi", "concurrency": "queue"}),
        )
        .await;
    let events = b.send(Method::GET, "/api/admin/scripts/events", None).await;
    assert_eq!(events.status(), 200);
    let run = a.run(&script).await;
    let seen = statuses_of(events, &run).await;
    let order: Vec<&str> = seen.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        order,
        ["queued", "running", "succeeded"],
        "seen on the other node"
    );
}
