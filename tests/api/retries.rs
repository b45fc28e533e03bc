//! Retries: each attempt a run of its own, linked to the first, queued with a due time in
//! the store, for the outcomes the script's policy names.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{both_backends, Backend, TestApp};

both_backends!(
    a_script_failing_twice_then_succeeding_gives_three_linked_runs,
    only_the_named_outcomes_retry_and_a_cancel_ends_the_chain,
    a_queued_retry_survives_a_restart,
);

async fn runs_of(app: &TestApp, script: &str) -> Vec<Value> {
    let v = app
        .get_json(&format!(
            "/api/admin/scripts/runs?scriptId={script}&limit=100"
        ))
        .await;
    let mut runs = v["runs"].as_array().unwrap().clone();
    runs.reverse();
    runs
}

/// Waits until the script has `n` runs, all ended; returns them oldest first.
async fn wait_for_chain(app: &TestApp, script: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs = runs_of(app, script).await;
        let ended = runs
            .iter()
            .filter(|r| !["queued", "running"].contains(&r["status"].as_str().unwrap()))
            .count();
        if runs.len() >= n && ended == runs.len() {
            return runs;
        }
        assert!(Instant::now() < deadline, "the chain did not end: {runs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn at(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str().unwrap().parse().unwrap()
}

/// A counter in a file: the script fails until its third run.
fn flaky(dir: &std::path::Path, succeed_at: u32) -> String {
    let count = dir.join("count");
    format!(
        "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo \"attempt $n\"; [ $n -ge {succeed_at} ]",
        c = count.display()
    )
}

async fn a_script_failing_twice_then_succeeding_gives_three_linked_runs(b: Backend) {
    let app = TestApp::spawn(b).await;
    let dir = tempfile::tempdir().unwrap();
    let script = app
        .bash(
            &flaky(dir.path(), 3),
            json!({"retry": {"retries": 3, "delayMs": 400, "factor": 2}}),
        )
        .await;
    let stored = app.get_json(&format!("/api/admin/scripts/{script}")).await;
    assert_eq!(
        stored["retry"],
        json!({"retries": 3, "delayMs": 400, "factor": 2.0, "maxDelayMs": 300000,
               "exitCodes": [], "onTimeout": true})
    );
    let first = app
        .start_run(&script, Some(json!({"input": {"batch": 7}})))
        .await
        .json::<Value>()
        .await
        .unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_string();
    let runs = wait_for_chain(&app, &script, 3).await;
    assert_eq!(runs.len(), 3, "stops at the first success: {runs:?}");
    let statuses: Vec<&str> = runs.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["failed", "failed", "succeeded"]);
    assert_eq!(runs[0]["id"], first.as_str());
    assert!(
        runs[0]["meta"]["retry"].is_null(),
        "the first run is no retry"
    );
    for (n, run) in runs.iter().enumerate().skip(1) {
        let retry = &run["meta"]["retry"];
        assert_eq!(retry["of"], first.as_str(), "linked to the first");
        assert_eq!(retry["after"], runs[n - 1]["id"], "and to the one before");
        assert_eq!(retry["attempt"], n as i64 + 1);
        assert_eq!(retry["attempts"], 4);
        assert_eq!(run["trigger"], "manual");
        assert_eq!(run["input"], json!({"batch": 7}), "the same input");
        // Due after the policy's wait (400 ms, then 800 ms, give or take 10%), and started
        // once due.
        let wait = (at(&run["startedAt"]) - at(&runs[n - 1]["finishedAt"])).num_milliseconds();
        let due = (at(&retry["dueAt"]) - at(&runs[n - 1]["finishedAt"])).num_milliseconds();
        let nominal = 400 * 2i64.pow(n as u32 - 1);
        assert!(
            (nominal * 9 / 10 - 50..=nominal * 11 / 10 + 50).contains(&due),
            "attempt {}: due {due} ms after the last ended",
            n + 1
        );
        assert!(
            wait >= due - 5,
            "attempt {} started {wait} ms after, before it was due",
            n + 1
        );
        assert!(
            wait < due + 3000,
            "attempt {} started {wait} ms after",
            n + 1
        );
    }
    let log = app.log(runs[2]["id"].as_str().unwrap()).await;
    assert_eq!(log, "attempt 3\n");
    // Each retry's start is in the audit log, by the server's retry policy.
    let audit = app
        .get_json("/api/admin/audit?action=run.start&actor=retry")
        .await;
    let mut targets: Vec<String> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap().to_string())
        .collect();
    targets.reverse();
    let retried: Vec<String> = runs[1..]
        .iter()
        .map(|r| format!("run:{}", r["id"].as_str().unwrap()))
        .collect();
    assert_eq!(targets, retried);
    assert_eq!(audit["entries"][0]["summary"]["attempt"], 3);
}

async fn only_the_named_outcomes_retry_and_a_cancel_ends_the_chain(b: Backend) {
    let app = TestApp::spawn(b).await;
    // An exit code not listed: no retry. The retry would be queued with the end itself, so
    // the moment the run has ended tells.
    let listed = app
        .bash(
            "exit 4",
            json!({"retry": {"retries": 2, "exitCodes": [3, 75]}}),
        )
        .await;
    let run = app.run(&listed).await;
    assert_eq!(app.wait_run(&run).await["exitCode"], 4);
    assert_eq!(runs_of(&app, &listed).await.len(), 1);

    // A timeout retries unless told not to.
    for (on_timeout, runs) in [(false, 1), (true, 2)] {
        let slow = app
            .bash(
                "sleep 5",
                json!({"timeoutMs": 1000, "concurrency": "parallel",
                       "retry": {"retries": 1, "delayMs": 60000, "onTimeout": on_timeout}}),
            )
            .await;
        let run = app.run(&slow).await;
        assert_eq!(app.wait_run(&run).await["status"], "timed_out");
        let all = runs_of(&app, &slow).await;
        assert_eq!(all.len(), runs, "onTimeout {on_timeout}: {all:?}");
        if on_timeout {
            // The retry waits, due in a minute; canceling it ends the chain.
            let retry = &all[1];
            assert_eq!(retry["status"], "queued");
            assert!(at(&retry["meta"]["retry"]["dueAt"]) > chrono::Utc::now());
            let id = retry["id"].as_str().unwrap();
            assert_eq!(app.cancel(id).await.status(), 202);
            assert_eq!(app.wait_run(id).await["status"], "canceled");
            assert_eq!(
                runs_of(&app, &slow).await.len(),
                2,
                "nothing after a cancel"
            );
        }
    }

    // A canceled run never retries.
    let long = app
        .bash("sleep 30", json!({"retry": {"retries": 3, "delayMs": 0}}))
        .await;
    let run = app.run(&long).await;
    app.wait_status(&run, "running").await;
    app.cancel(&run).await;
    assert_eq!(app.wait_run(&run).await["status"], "canceled");
    assert_eq!(runs_of(&app, &long).await.len(), 1);

    for (bad, field) in [
        (json!({"retries": 11}), "retry.retries"),
        (json!({"retries": 1, "factor": 0.5}), "retry.factor"),
        (json!({"retries": 1, "exitCodes": [0]}), "retry.exitCodes"),
        (json!({"retries": 1, "delayMs": -5}), "retry.delayMs"),
    ] {
        let resp = app
            .admin(Method::POST, "/api/admin/scripts")
            .json(
                &json!({"name": "r", "codeIdentifier": "bad-retry", "type": "bash",
                          "script": "true", "retry": bad}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        assert_eq!(resp.json::<Value>().await.unwrap()["error"]["field"], field);
    }
}

async fn a_queued_retry_survives_a_restart(b: Backend) {
    let app = TestApp::spawn(b).await;
    let dir = tempfile::tempdir().unwrap();
    let script = app
        .bash(
            &flaky(dir.path(), 2),
            json!({"retry": {"retries": 1, "delayMs": 1500}}),
        )
        .await;
    let first = app.run(&script).await;
    assert_eq!(app.wait_run(&first).await["status"], "failed");
    let (data, url) = app.stop().await;
    let app = TestApp::start_on(data, url, Default::default()).await;
    let runs = wait_for_chain(&app, &script, 2).await;
    assert_eq!(runs[1]["status"], "succeeded", "{runs:?}");
    assert_eq!(runs[1]["meta"]["retry"]["of"], first.as_str());
}
