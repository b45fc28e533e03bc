//! A scriptd per test on a random port, against a fresh SQLite file or PostgreSQL schema.

use std::time::{Duration, Instant};

use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{json, Value};
use tokio::sync::oneshot;

pub const USER: &str = "admin";
pub const PASSWORD: &str = "test-password";

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one test per backend from an `async fn(Backend)`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(_) = $crate::helpers::pg_url() {
                        super::$name($crate::helpers::Backend::Postgres).await
                    }
                }
            )*
        }
    };
}
pub(crate) use both_backends;

/// The PostgreSQL server URL for tests, or `None` (with the reason printed) to skip locally.
/// With `SCRIPTD_TEST_REQUIRE_PG=1` (as in CI) a missing server fails the test instead.
pub fn pg_url() -> Option<String> {
    let url = std::env::var("SCRIPTD_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let reachable = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5432".parse().unwrap(),
        Duration::from_millis(300),
    )
    .is_ok();
    if reachable {
        return Some(url);
    }
    if std::env::var("SCRIPTD_TEST_REQUIRE_PG").as_deref() == Ok("1") {
        panic!("PostgreSQL is required (SCRIPTD_TEST_REQUIRE_PG=1) but not reachable on 127.0.0.1:5432");
    }
    eprintln!("skipping PostgreSQL test: no server on 127.0.0.1:5432 (set SCRIPTD_TEST_REQUIRE_PG=1 to fail instead)");
    None
}

/// Runs statements, in order, on the test database `url` names (SQLite or PostgreSQL), as
/// another client of it would.
pub async fn execute_sql(url: &str, statements: &[&str]) {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        for sql in statements {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        for sql in statements {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
}

/// The first column of a query's rows, as numbers, read as another client of the test
/// database `url` names would.
pub async fn query_numbers(url: &str, sql: &str) -> Vec<i64> {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let rows: Vec<(i64,)> = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows.into_iter().map(|r| r.0).collect()
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows: Vec<(i64,)> = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows.into_iter().map(|r| r.0).collect()
    }
}

/// A fresh schema for one test, as a URL whose connections use it.
pub async fn pg_schema_url() -> String {
    use sqlx::Connection;
    let base = pg_url().expect("postgres reachable");
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .expect("connect to postgres");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .expect("create schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// A store of its own on `b`, holding a run `r` that `lease-a` runs; with its URL and the
/// directory that must outlive it.
pub async fn store_with_a_running_run(
    b: Backend,
) -> (scriptd::store::DynStore, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = match b {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("t.db").display()),
        Backend::Postgres => pg_schema_url().await,
    };
    let key = scriptd::secrets::MasterKey::generate();
    let codec = scriptd::store::EnvCodec::new(scriptd::secrets::SecretBox::new(&key));
    let store = scriptd::store::connect(&url, codec).await.unwrap();
    execute_sql(
        &url,
        &[
            "INSERT INTO runs (id, script_id, status, trigger_kind, queued_at, owner) \
           VALUES ('r', 's', 'running', 'manual', 0, 'lease-a')",
        ],
    )
    .await;
    (store, url, dir)
}

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub data_dir: tempfile::TempDir,
    pub database_url: String,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// Settings tweaks for one test.
#[derive(Default, Clone)]
pub struct Options {
    pub max_concurrent_runs: Option<usize>,
    pub max_log_bytes: Option<u64>,
    pub keep_runs: Option<u32>,
    pub keep_versions: Option<u32>,
    pub kill_grace_ms: Option<u64>,
    pub auth_failure_limit: Option<u32>,
    pub auth_failure_window: Option<Duration>,
    pub header_read_timeout: Option<Duration>,
    pub keep_alive_idle: Option<Duration>,
    pub body_read_timeout: Option<Duration>,
    pub max_queued_per_script: Option<u32>,
    pub allowed_runners: Option<Vec<scriptd::domain::Runner>>,
    pub max_connections: Option<usize>,
    pub run_lease: Option<Duration>,
}

/// The environment scripts inherit in tests: this process's, with an empty HOME so that
/// `bash -l` does not spend 100+ ms in root's profile.
pub fn child_env(home: &std::path::Path) -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k != "HOME")
        .chain([("HOME".to_string(), home.display().to_string())])
        .collect()
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, Options::default()).await
    }

    pub async fn spawn_with(backend: Backend, opts: Options) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}/scriptd.db", data_dir.path().display()),
            Backend::Postgres => pg_schema_url().await,
        };
        Self::start_on(data_dir, database_url, opts).await
    }

    pub async fn start_on(
        data_dir: tempfile::TempDir,
        database_url: String,
        opts: Options,
    ) -> Self {
        let mut settings = scriptd::config::Settings::with_data_dir(data_dir.path());
        settings.database_url = database_url.clone();
        settings.admin_user = USER.into();
        settings.admin_password = Some(PASSWORD.into());
        settings.supervisor_exe = Some(env!("CARGO_BIN_EXE_scriptd").into());
        settings.child_env = Some(child_env(data_dir.path()));
        if let Some(n) = opts.max_concurrent_runs {
            settings.max_concurrent_runs = n;
        }
        if let Some(n) = opts.max_log_bytes {
            settings.max_log_bytes = n;
        }
        if let Some(n) = opts.keep_runs {
            settings.keep_runs = n;
        }
        if let Some(n) = opts.keep_versions {
            settings.keep_versions = n;
        }
        if let Some(n) = opts.auth_failure_limit {
            settings.auth_failure_limit = n;
        }
        if let Some(l) = opts.run_lease {
            settings.run_lease = l;
        }
        if let Some(t) = opts.header_read_timeout {
            settings.header_read_timeout = t;
        }
        if let Some(t) = opts.keep_alive_idle {
            settings.keep_alive_idle = t;
        }
        if let Some(t) = opts.body_read_timeout {
            settings.body_read_timeout = t;
        }
        if let Some(n) = opts.max_queued_per_script {
            settings.max_queued_per_script = n;
        }
        if let Some(r) = opts.allowed_runners {
            settings.allowed_runners = r;
        }
        settings.max_connections = opts.max_connections;
        if let Some(w) = opts.auth_failure_window {
            settings.auth_failure_window = w;
        }
        settings.kill_grace = Duration::from_millis(opts.kill_grace_ms.unwrap_or(2000));
        let app = scriptd::app::build(settings).await.expect("build app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            scriptd::app::serve(app, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        Self {
            base: format!("http://{addr}"),
            client: Client::new(),
            data_dir,
            database_url,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Stops the server gracefully and returns what a restart needs.
    pub async fn stop(mut self) -> (tempfile::TempDir, String) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
        let dir = std::mem::replace(&mut self.data_dir, tempfile::tempdir().unwrap());
        (dir, self.database_url.clone())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// An authenticated admin request.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .basic_auth(USER, Some(PASSWORD))
    }

    /// An authenticated request without a body.
    pub async fn call(&self, method: Method, path: &str) -> Response {
        self.admin(method, path).send().await.unwrap()
    }

    /// An authenticated GET, its body as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.call(Method::GET, path).await.json().await.unwrap()
    }

    /// Attaches to a run's live output.
    pub async fn open_stream(&self, run_id: &str) -> LiveStream {
        let resp = self
            .call(
                Method::GET,
                &format!("/api/admin/scripts/runs/{run_id}/stream"),
            )
            .await;
        LiveStream::from_response(resp)
    }

    /// Asks for a run to be canceled.
    pub async fn cancel(&self, run_id: &str) -> Response {
        self.call(
            Method::POST,
            &format!("/api/admin/scripts/runs/{run_id}/cancel"),
        )
        .await
    }

    pub async fn create_script(&self, body: Value) -> Value {
        let resp = self
            .admin(Method::POST, "/api/admin/scripts")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let json: Value = resp.json().await.unwrap();
        assert_eq!(status, 201, "create failed: {json}");
        json
    }

    /// Creates a bash script with this body and extra fields.
    pub async fn bash(&self, script: &str, extra: Value) -> String {
        let mut body = json!({
            "name": format!("t {}", uuid::Uuid::now_v7().simple()),
            "codeIdentifier": format!("t-{}", uuid::Uuid::now_v7().simple()),
            "type": "bash",
            "script": script,
        });
        merge(&mut body, extra);
        self.create_script(body).await["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The codeIdentifiers the scripts list gives for `query` (`q=…`, or "" for all), sorted.
    pub async fn script_codes(&self, query: &str) -> Vec<String> {
        let list = self.get_json(&format!("/api/admin/scripts?{query}")).await;
        let mut codes: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["codeIdentifier"].as_str().unwrap().to_string())
            .collect();
        codes.sort();
        codes
    }

    /// Changes one field of a script through the API as the editor does (the whole script,
    /// read and sent back); returns the updated script.
    pub async fn edit_script(&self, id: &str, field: &str, value: Value) -> Value {
        let path = format!("/api/admin/scripts/{id}");
        let mut body = self.get_json(&path).await;
        body[field] = value;
        let resp = self
            .admin(Method::PUT, &path)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    pub async fn start_run(&self, script_id: &str, body: Option<Value>) -> Response {
        let mut req = self.admin(Method::POST, &format!("/api/admin/scripts/{script_id}/run"));
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// A bash script with its API trigger on (and `extra` fields): its id, its codeIdentifier
    /// and a fresh token.
    pub async fn triggered_bash(&self, script: &str, extra: Value) -> (String, String, String) {
        let mut fields = json!({"apiTrigger": {"enabled": true}});
        merge(&mut fields, extra);
        let id = self.bash(script, fields).await;
        let code = self.get_json(&format!("/api/admin/scripts/{id}")).await["codeIdentifier"]
            .as_str()
            .unwrap()
            .to_string();
        let token: Value = self
            .call(Method::POST, &format!("/api/admin/scripts/{id}/api-token"))
            .await
            .json()
            .await
            .unwrap();
        (id, code, token["token"].as_str().unwrap().to_string())
    }

    /// Starts a run through the public trigger; the answer's body.
    pub async fn trigger(&self, code: &str, token: &str) -> Value {
        self.client
            .post(self.url(&format!("/api/scripts/{code}/run")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn run(&self, script_id: &str) -> String {
        let resp = self.start_run(script_id, None).await;
        assert_eq!(resp.status(), 202);
        let v: Value = resp.json().await.unwrap();
        v["runId"].as_str().unwrap().to_string()
    }

    pub async fn get_run(&self, run_id: &str) -> Value {
        self.get_json(&format!("/api/admin/scripts/runs/{run_id}"))
            .await
    }

    /// Polls the run until it is finished (bounded), and returns it.
    pub async fn wait_run(&self, run_id: &str) -> Value {
        self.wait_until(run_id, |r| {
            !matches!(r["status"].as_str(), Some("queued" | "running"))
        })
        .await
    }

    pub async fn wait_status(&self, run_id: &str, status: &str) -> Value {
        self.wait_until(run_id, |r| r["status"] == status).await
    }

    pub async fn wait_until(&self, run_id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let run = self.get_run(run_id).await;
            if done(&run) {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run did not reach the state in time: {run}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn log(&self, run_id: &str) -> String {
        self.admin(
            Method::GET,
            &format!("/api/admin/scripts/runs/{run_id}/log"),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The value of one series in a `/metrics` exposition: the line of `name` whose labels
/// include every one of `labels` (given as `key="value"`).
pub fn metric(exposition: &str, name: &str, labels: &[&str]) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let found: Vec<&str> = series_labels.split(',').collect();
        (series_name == name && labels.iter().all(|l| found.contains(l)))
            .then(|| value.parse().ok())
            .flatten()
    })
}

pub fn merge(base: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

/// Waits for a condition, polling; panics after `secs`.
pub async fn eventually<F: Fn() -> bool>(secs: u64, what: &str, check: F) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(marker)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Processes whose name (argv[0]) is exactly `name`, as `exec -a NAME` sets it.
pub fn processes_named(name: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).next() == Some(name.as_bytes()))
        })
        .count()
}

/// An SSE response read as it arrives.
pub struct LiveStream {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    /// Everything received so far.
    pub text: String,
}

impl LiveStream {
    pub fn from_response(resp: Response) -> Self {
        LiveStream {
            body: Box::pin(resp.bytes_stream()),
            text: String::new(),
        }
    }

    /// Reads until `done` holds for what was received (each chunk must come within 15 s).
    pub async fn read_until(&mut self, done: impl Fn(&str) -> bool) {
        use futures_util::StreamExt;
        while !done(&self.text) {
            let chunk = tokio::time::timeout(Duration::from_secs(15), self.body.next())
                .await
                .expect("the stream went quiet")
                .expect("the stream ended early")
                .unwrap();
            self.text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Reads to the end of the response: an error if it was cut off before its end. It must
    /// end within 30 s (an open stream sends a ping every 15 s, so no quiet spell ends it).
    pub async fn read_to_end(&mut self) -> reqwest::Result<()> {
        use futures_util::StreamExt;
        let body = &mut self.body;
        let text = &mut self.text;
        tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(chunk) = body.next().await {
                text.push_str(&String::from_utf8_lossy(&chunk?));
            }
            Ok(())
        })
        .await
        .expect("the stream was left open")
    }
}

/// A parsed SSE event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
}

/// Parses the complete events of a stream (a trailing partial event is left out).
pub fn parse_sse(text: &str) -> Vec<SseEvent> {
    let complete = text.rfind("\n\n").map_or("", |end| &text[..end]);
    complete
        .split("\n\n")
        .filter_map(|block| {
            let mut id = None;
            let mut event = String::from("message");
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_string();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            (!data.is_empty()).then(|| SseEvent {
                id,
                event,
                data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
            })
        })
        .collect()
}

pub fn log_lines(events: &[SseEvent]) -> Vec<(i64, String, String)> {
    events
        .iter()
        .filter(|e| e.event == "log")
        .map(|e| {
            (
                e.data["seq"].as_i64().unwrap(),
                e.data["stream"].as_str().unwrap().to_string(),
                e.data["line"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// What a test webhook receiver got: headers and body of each request.
#[derive(Clone, Default)]
pub struct Received(std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>);

impl Received {
    pub fn all(&self) -> Vec<(axum::http::HeaderMap, String)> {
        self.0.lock().unwrap().clone()
    }
}

/// A webhook receiver on a random port answering `status` to every POST; its URL.
pub async fn webhook_receiver(status: axum::http::StatusCode) -> (String, Received) {
    webhook_receiver_holding(status, Duration::ZERO).await
}

/// The same, holding each request `hold` before it answers.
pub async fn webhook_receiver_holding(
    status: axum::http::StatusCode,
    hold: Duration,
) -> (String, Received) {
    let got = Received::default();
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let keep = keep.clone();
            async move {
                keep.0.lock().unwrap().push((headers, body));
                tokio::time::sleep(hold).await;
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}
