//! The isolated runner's benchmark: create + run `1+1` and `fib(25)` in the isolated runner
//! through a real release server, and a whole run of an existing `1+1` script (POST, then its
//! stream to `done`), against `node -p` of the same code; the same run back to back; and a
//! waiting worker alone, from its job to its `end`. Medians printed.
//! Run with `cargo bench --bench isolate`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{median, start_server};
use reqwest::Method;
use serde_json::json;

const REPS: usize = 9;
const FIB: &str = "function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2) } fib(25)";

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let server = start_server(&[]);
    println!("isolated runner benchmark (medians of {REPS}; node measured in the same run)\n");
    for (label, code) in [("1+1", "1+1"), ("fib(25)", FIB)] {
        let mut ours = Vec::new();
        let mut node = Vec::new();
        for i in 0..REPS {
            let t = Instant::now();
            let out = Command::new("node").args(["-p", code]).output().unwrap();
            assert!(out.status.success());
            node.push(t.elapsed().as_secs_f64() * 1000.0);

            let t = Instant::now();
            let body = json!({"name": format!("{label} {i}"), "codeIdentifier": format!("b-{i}-{}", label.len()),
                              "type": "node", "runner": "isolated", "script": code});
            let script = server
                .call(Method::POST, "/api/admin/scripts", Some(&body))
                .await;
            let id = script["id"].as_str().unwrap();
            let run = server
                .call(Method::POST, &format!("/api/admin/scripts/{id}/run"), None)
                .await;
            let run_id = run["runId"].as_str().unwrap();
            loop {
                let r = server
                    .call(
                        Method::GET,
                        &format!("/api/admin/scripts/runs/{run_id}"),
                        None,
                    )
                    .await;
                if r["status"] == "succeeded" {
                    break;
                }
                assert!(r["status"] != "failed", "{r}");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            ours.push(t.elapsed().as_secs_f64() * 1000.0);
            server
                .call(Method::DELETE, &format!("/api/admin/scripts/{id}"), None)
                .await;
        }
        let (o, n) = (median(ours), median(node));
        println!(
            "create + run {label:<8} isolated {o:>8.2} ms   node -p {n:>8.2} ms   ratio {:>5.2}x",
            o / n
        );
    }

    // A whole run of an existing script through the API: POST, then its stream to `done`.
    let body = json!({"name": "one plus one", "codeIdentifier": "one-plus-one",
                      "type": "node", "runner": "isolated", "script": "1+1"});
    let script = server
        .call(Method::POST, "/api/admin/scripts", Some(&body))
        .await;
    let id = script["id"].as_str().unwrap().to_string();
    let mut ours = Vec::new();
    let mut node = Vec::new();
    for _ in 0..(REPS * 4) {
        let t = Instant::now();
        let out = Command::new("node").args(["-p", "1+1"]).output().unwrap();
        assert!(out.status.success());
        node.push(t.elapsed().as_secs_f64() * 1000.0);

        let t = Instant::now();
        run_to_done(&server, &id).await;
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (o, n) = (median(ours), median(node));
    println!(
        "run `1+1` (POST -> SSE done)  isolated {o:>8.2} ms   node -p {n:>8.2} ms   ratio {:>5.2}x",
        o / n
    );

    // Back to back: each run takes the worker the last one's end started.
    let mut ours = Vec::new();
    for _ in 0..(REPS * 4) {
        let t = Instant::now();
        run_to_done(&server, &id).await;
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "run `1+1` back to back         isolated {:>8.2} ms",
        median(ours)
    );

    // A worker started ahead, as the server keeps one, from its job to its `end` message.
    let job = json!({"script": "1+1", "input": null, "env": [], "timeout_ms": 300000,
                     "memory_limit_bytes": 64 * 1024 * 1024, "probe": null})
    .to_string();
    let mut ours = Vec::new();
    for _ in 0..(REPS * 4) {
        let mut worker = Command::new(env!("CARGO_BIN_EXE_scriptd"))
            .arg("__isolate")
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(80));
        let t = Instant::now();
        let mut stdin = worker.stdin.take().unwrap();
        stdin.write_all(job.as_bytes()).unwrap();
        drop(stdin);
        let lines = BufReader::new(worker.stdout.take().unwrap()).lines();
        let end = lines.map(Result::unwrap).find(|l| l.contains("\"end\""));
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(end.is_some_and(|l| l.contains("\"result\":2")));
        worker.wait().unwrap();
    }
    println!(
        "a waiting worker, job -> end   isolated {:>8.2} ms",
        median(ours)
    );
}

/// Starts a run of the script and reads its stream to `done`, which must say it succeeded.
async fn run_to_done(server: &common::Server, id: &str) {
    let run = server
        .call(Method::POST, &format!("/api/admin/scripts/{id}/run"), None)
        .await;
    let run_id = run["runId"].as_str().unwrap();
    let text = server
        .client
        .get(format!(
            "{}/api/admin/scripts/runs/{run_id}/stream",
            server.base
        ))
        .basic_auth("admin", Some(common::PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"status\":\"succeeded\""), "{text}");
}
