//! The isolated runner's benchmark: create + run `1+1` and `fib(25)` in the isolated runner
//! through a real release server, against `node -e` of the same code, medians printed.
//! Run with `cargo bench --bench isolate`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const PASSWORD: &str = "bench-password";
const REPS: usize = 9;
const FIB: &str = "function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2) } fib(25)";

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Command::new(env!("CARGO_BIN_EXE_scriptd"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-password",
            PASSWORD,
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("HOME", dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _server = KillOnDrop(server);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
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
            let script: Value = client
                .post(format!("{base}/api/admin/scripts"))
                .basic_auth("admin", Some(PASSWORD))
                .json(&json!({"name": format!("{label} {i}"), "codeIdentifier": format!("b-{i}-{}", label.len()),
                              "type": "node", "runner": "isolated", "script": code}))
                .send().await.unwrap().json().await.unwrap();
            let id = script["id"].as_str().unwrap();
            let run: Value = client
                .post(format!("{base}/api/admin/scripts/{id}/run"))
                .basic_auth("admin", Some(PASSWORD))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let run_id = run["runId"].as_str().unwrap();
            loop {
                let r: Value = client
                    .get(format!("{base}/api/admin/scripts/runs/{run_id}"))
                    .basic_auth("admin", Some(PASSWORD))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if r["status"] == "succeeded" {
                    break;
                }
                assert!(r["status"] != "failed", "{r}");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            ours.push(t.elapsed().as_secs_f64() * 1000.0);
            client
                .delete(format!("{base}/api/admin/scripts/{id}"))
                .basic_auth("admin", Some(PASSWORD))
                .send()
                .await
                .unwrap();
        }
        let (o, n) = (median(ours), median(node));
        println!(
            "create + run {label:<8} isolated {o:>8.2} ms   node -e {n:>8.2} ms   ratio {:>5.2}x",
            o / n
        );
    }
}

/// Stops the server even when the benchmark panics.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
