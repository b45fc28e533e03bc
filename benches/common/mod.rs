//! What both benchmarks need: a real release `scriptd serve` on a free port, its admin API,
//! and medians.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const PASSWORD: &str = "bench-password";

pub struct Server {
    pub child: Child,
    pub base: String,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    /// Stops the server even when the benchmark panics.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server with `extra` flags and waits until it accepts connections.
pub fn start_server(extra: &[&str]) -> Server {
    start_logging_server(extra, "warn", Stdio::inherit())
}

/// The same, logging at `rust_log` to `stderr`.
pub fn start_logging_server(extra: &[&str], rust_log: &str, stderr: Stdio) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_scriptd"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-password",
            PASSWORD,
        ])
        .args(extra)
        .arg("--data-dir")
        .arg(dir.path())
        // An empty HOME keeps `bash -l` from reading root's profile (see ARCHITECTURE.md).
        .env("HOME", dir.path())
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(1100)
            .build()
            .unwrap(),
        _dir: dir,
    }
}

impl Server {
    /// An authenticated admin request; the answer as JSON (`Null` when there is no body).
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Value {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .basic_auth("admin", Some(PASSWORD));
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null)
    }
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}
