//! Real `scriptd serve` processes for the tests that need them: several nodes on one
//! database, kills, stops and restarts. Each server leads its own process group, as under a
//! service manager, so a test can signal the group.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use reqwest::{Method, Response};
use serde_json::Value;

pub const PASSWORD: &str = "node-test-password";

pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub dir: PathBuf,
    args: Vec<String>,
    /// The admin password; `None` lets the server generate one (printed on its first start).
    password: Option<String>,
    /// Where stderr goes, logging at `info`; `None`: inherited, at `warn`.
    log: Option<PathBuf>,
    client: reqwest::Client,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts a server on `dir` (its data directory and HOME) with `args` after `serve`, and
    /// waits until it answers.
    pub async fn start(dir: &Path, args: &[&str]) -> Self {
        let mut s = Self::new(dir, args, Some(PASSWORD.to_string()));
        s.launch().await;
        s
    }

    /// Starts a server that generates its admin password; returns it with the password it
    /// left in the data directory (its stdout is not a terminal).
    pub async fn start_generating_password(dir: &Path, args: &[&str]) -> (Self, String) {
        let mut s = Self::new(dir, args, None);
        s.launch().await;
        let password = std::fs::read_to_string(dir.join("initial-admin-password"))
            .expect("the first start leaves the password in a file")
            .trim()
            .to_string();
        s.password = Some(password.clone());
        (s, password)
    }

    /// Starts a server whose stderr, logging at `info`, goes to `log`.
    pub async fn start_logging_to(dir: &Path, args: &[&str], log: &Path) -> Self {
        let mut s = Self::new(dir, args, Some(PASSWORD.to_string()));
        s.log = Some(log.to_path_buf());
        s.launch().await;
        s
    }

    fn new(dir: &Path, args: &[&str], password: Option<String>) -> Self {
        Self {
            child: None,
            base: String::new(),
            dir: dir.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            password,
            log: None,
            client: reqwest::Client::new(),
        }
    }

    /// Starts the process and waits until it answers.
    async fn launch(&mut self) {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scriptd"));
        cmd.arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(&self.dir)
            .args(&self.args)
            // An empty HOME keeps `bash -l` out of root's slow profile (ARCHITECTURE.md).
            .env("HOME", &self.dir)
            .env_remove("SCRIPTD_LOG_FORMAT")
            .stdout(Stdio::null())
            .process_group(0);
        match &self.log {
            Some(path) => cmd
                .env("RUST_LOG", "info")
                .stderr(std::fs::File::create(path).unwrap()),
            None => cmd.env("RUST_LOG", "warn").stderr(Stdio::inherit()),
        };
        if let Some(p) = &self.password {
            cmd.args(["--admin-password", p]);
        }
        self.child = Some(cmd.spawn().unwrap());
        self.base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.client.get(self.url("/healthz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "the server did not start");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    /// The server's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// This node's identity, as runs record it.
    pub fn node_id(&self) -> String {
        std::fs::read_to_string(self.dir.join("node-id"))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().expect("running").id() as i32)
    }

    pub fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).unwrap();
    }

    /// A graceful stop (SIGTERM), waiting for the process to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
            let _ = c.wait();
        }
    }

    /// `kill -9` of the server alone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `kill -9` of the server's whole process group.
    pub fn kill9_group(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = kill(Pid::from_raw(-(c.id() as i32)), Signal::SIGKILL);
            let _ = c.wait();
        }
    }

    /// Starts it again on the same data directory (the same node).
    pub async fn restart(&mut self) {
        self.kill9();
        self.launch().await;
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Response {
        let mut req = self
            .client
            .request(method, self.url(path))
            .basic_auth("admin", self.password.as_deref());
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.unwrap()
    }

    pub async fn json(&self, method: Method, path: &str, body: Option<&Value>) -> Value {
        self.send(method, path, body).await.json().await.unwrap()
    }

    pub async fn create(&self, body: Value) -> String {
        let created = self
            .json(Method::POST, "/api/admin/scripts", Some(&body))
            .await;
        created["id"]
            .as_str()
            .unwrap_or_else(|| panic!("not created: {created}"))
            .to_string()
    }

    /// Starts a run; the response as it came.
    pub async fn start_run(&self, script_id: &str) -> Response {
        self.send(
            Method::POST,
            &format!("/api/admin/scripts/{script_id}/run"),
            None,
        )
        .await
    }

    pub async fn run(&self, script_id: &str) -> String {
        let resp = self.start_run(script_id).await;
        assert_eq!(resp.status(), 202);
        resp.json::<Value>().await.unwrap()["runId"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn get_run(&self, run_id: &str) -> Value {
        self.json(
            Method::GET,
            &format!("/api/admin/scripts/runs/{run_id}"),
            None,
        )
        .await
    }

    /// Polls until `done` holds for the run (bounded).
    pub async fn wait_run_until(
        &self,
        run_id: &str,
        secs: u64,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let run = self.get_run(run_id).await;
            if done(&run) {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run not in the expected state: {run}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn wait_finished(&self, run_id: &str) -> Value {
        self.wait_run_until(run_id, 60, |r| {
            !matches!(r["status"].as_str(), Some("queued" | "running"))
        })
        .await
    }

    pub async fn log(&self, run_id: &str) -> String {
        self.send(
            Method::GET,
            &format!("/api/admin/scripts/runs/{run_id}/log"),
            None,
        )
        .await
        .text()
        .await
        .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            // SIGCONT first, in case a test left it stopped.
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGCONT);
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
            let _ = c.wait();
        }
    }
}

/// Several nodes on one fresh PostgreSQL schema, each with its own data directory.
pub struct Cluster {
    pub nodes: Vec<Server>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    pub async fn start(n: usize, args: &[&str]) -> Self {
        let url = crate::helpers::pg_schema_url().await;
        let dirs: Vec<tempfile::TempDir> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut all_args = vec!["--database-url", url.as_str()];
        all_args.extend_from_slice(args);
        let nodes =
            futures_util::future::join_all(dirs.iter().map(|d| Server::start(d.path(), &all_args)))
                .await;
        Self { nodes, _dirs: dirs }
    }

    /// The node a run is on (by its `node` field).
    pub fn owner_of(&self, run: &Value) -> usize {
        let node = run["node"].as_str().expect("the run has a node");
        self.nodes
            .iter()
            .position(|s| s.node_id() == node)
            .expect("a node of this cluster")
    }
}
