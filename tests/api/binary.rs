//! The real `scriptd serve` process: first start, restart, kill -9, what children inherit.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{eventually, processes_with};
use crate::process::free_port;

struct Server {
    child: Child,
    base: String,
    stdout: Vec<String>,
}

/// Starts the binary and waits until it answers `/healthz`, collecting what it printed.
fn start(data_dir: &std::path::Path, envs: &[(&str, &str)]) -> Server {
    start_with(data_dir, &[], envs)
}

/// `start` with more `serve` flags.
fn start_with(data_dir: &std::path::Path, flags: &[&str], envs: &[(&str, &str)]) -> Server {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scriptd"));
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(flags)
        .arg("--data-dir")
        .arg(data_dir)
        .env("HOME", data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Whatever the server printed before it listened is in the pipe; collect until it is quiet.
    let mut stdout = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        stdout.push(line);
    }
    Server {
        child,
        base,
        stdout,
    }
}

fn stop(mut s: Server) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(s.child.id().to_string())
        .status();
    let _ = s.child.wait();
}

/// Kills the server with SIGKILL, then waits until `gone` says what its runs started ended
/// (their supervisors end their trees once the server is gone).
async fn kill_9(mut s: Server, what: &str, gone: impl Fn() -> bool) {
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    eventually(10, what, gone).await;
}

/// Not on a terminal (a service, whose stdout goes to the journal), the first start leaves the
/// generated password in a private file and prints only where it is.
#[tokio::test]
async fn first_start_leaves_a_password_once_in_a_private_file_and_keeps_only_its_hash() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path(), &[]);
    let file = dir.path().join("initial-admin-password");
    let password = std::fs::read_to_string(&file)
        .expect("the first start leaves the password in a file")
        .trim()
        .to_string();
    assert!(password.len() >= 20);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the password file is private");
    let printed = first.stdout.join("\n");
    assert!(
        printed.contains("initial-admin-password") && printed.contains("admin"),
        "{printed}"
    );
    assert!(
        !printed.contains(&password),
        "the password is not printed to a pipe"
    );
    let stored = std::fs::read_to_string(dir.path().join("admin-password.argon2")).unwrap();
    let mode = std::fs::metadata(dir.path().join("admin-password.argon2"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the hash file is private");
    assert!(
        stored.starts_with("$argon2"),
        "only an Argon2 hash is stored"
    );
    assert!(!stored.contains(&password));
    let ok = Admin::new(&first.base, &password)
        .send(Method::GET, "/api/admin/scripts", None)
        .await;
    assert_eq!(ok.status(), 200);
    stop(first);

    std::fs::remove_file(&file).unwrap();
    let second = start(dir.path(), &[]);
    assert!(
        !file.exists() && second.stdout.is_empty(),
        "a later start neither writes nor prints it again: {:?}",
        second.stdout
    );
    let ok = Admin::new(&second.base, &password)
        .send(Method::GET, "/api/admin/scripts", None)
        .await;
    assert_eq!(ok.status(), 200, "the same password still works");
    let bad = Admin::new(&second.base, "nope")
        .send(Method::GET, "/api/admin/scripts", None)
        .await;
    assert_eq!(bad.status(), 401);
    stop(second);
}

#[tokio::test]
async fn kill_9_mid_run_leaves_no_process_and_the_run_is_failed_at_restart() {
    let dir = tempfile::tempdir().unwrap();
    let envs = [("SCRIPTD_ADMIN_PASSWORD", "pw-for-crash-test")];
    let server = start(dir.path(), &envs);
    let admin = Admin::new(&server.base, "pw-for-crash-test");
    let marker = format!("sdcrash{}", uuid::Uuid::now_v7().simple());
    let body = json!({"name": "long", "codeIdentifier": "long", "type": "bash",
        "script": format!("echo crash-line-1; echo crash-line-2; setsid bash -c 'exec -a {marker}-d sleep 300' & exec -a {marker} sleep 300")});
    let run_id = admin.create_and_run(&body).await;
    eventually(10, "the script runs", || processes_with(&marker).len() >= 2).await;
    admin.log_once_it_holds(&run_id, "crash-line-2").await;

    // Killed well before its node saves the run's tail (every 2 s): the restart reads it back.
    kill_9(server, "the supervisor ends the orphaned tree", || {
        processes_with(&marker).is_empty()
    })
    .await;

    let again = start(dir.path(), &envs);
    let run = Admin::new(&again.base, "pw-for-crash-test")
        .run(&run_id)
        .await;
    assert_eq!(run["status"], "failed");
    assert!(run["error"].as_str().unwrap().contains("crash"), "{run}");
    assert_eq!(run["outputTail"], "crash-line-1\ncrash-line-2\n", "{run}");
    assert_eq!(run["logBytes"], 26, "{run}");
    assert_eq!(run["logTruncated"], false, "{run}");
    stop(again);
}

/// A run whose log reached the cap before its server was killed: the restart reads back the
/// part stored, its size without the cap's marker, and that it was cut.
#[tokio::test]
async fn a_restart_reads_back_the_cut_log_of_a_run_a_killed_server_left() {
    let dir = tempfile::tempdir().unwrap();
    let envs = [("SCRIPTD_ADMIN_PASSWORD", "pw-for-cut-log")];
    let server = start_with(dir.path(), &["--max-log-bytes", "4096"], &envs);
    let admin = Admin::new(&server.base, "pw-for-cut-log");
    let marker = format!("sdcut{}", uuid::Uuid::now_v7().simple());
    let body = json!({"name": "cut", "codeIdentifier": "cut", "type": "bash",
        "script": format!("seq 1 2000; exec -a {marker} sleep 300")});
    let run_id = admin.create_and_run(&body).await;
    let log = admin
        .log_once_it_holds(&run_id, "[scriptd] log cut at 4096 bytes")
        .await;
    eventually(10, "the script sleeps", || {
        !processes_with(&marker).is_empty()
    })
    .await;
    kill_9(server, "the supervisor ends the tree", || {
        processes_with(&marker).is_empty()
    })
    .await;

    let again = start(dir.path(), &envs);
    let run = Admin::new(&again.base, "pw-for-cut-log").run(&run_id).await;
    stop(again);
    let stored: usize = log
        .lines()
        .take_while(|l| !l.starts_with("[scriptd] log cut"))
        .map(|l| l.len() + 1)
        .sum();
    assert!(stored > 0 && stored <= 4096, "{stored}");
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["logTruncated"], true, "{run}");
    assert_eq!(run["logBytes"], stored, "{run}");
    assert!(
        run["outputTail"]
            .as_str()
            .unwrap()
            .ends_with("later output was streamed live but not stored\n"),
        "{run}"
    );
}

/// A host run's script file outlives a `kill -9` of its server (nobody is left to remove it);
/// the next start removes it, and leaves what a live server made.
#[tokio::test]
async fn a_restart_removes_the_run_files_a_killed_server_left() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let tmp_path = tmp.path().to_str().unwrap();
    let envs = [
        ("SCRIPTD_ADMIN_PASSWORD", "pw-leftovers"),
        ("TMPDIR", tmp_path),
    ];
    let run_files = || {
        std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("scriptd-run-"))
            .collect::<Vec<_>>()
    };
    // What a live server process (this test, as far as names go) made stays.
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let ns = ns
        .to_str()
        .unwrap()
        .trim_start_matches("pid:[")
        .trim_end_matches(']');
    let live = format!("scriptd-run-{}.{ns}-live.js", std::process::id());
    std::fs::write(tmp.path().join(&live), "").unwrap();

    let server = start(dir.path(), &envs);
    let admin = Admin::new(&server.base, "pw-leftovers");
    let body = json!({"name": "node", "codeIdentifier": "node", "type": "node",
        "runner": "host", "script": "setTimeout(() => {}, 300000)"});
    admin.create_and_run(&body).await;
    eventually(20, "node runs its file", || {
        !processes_with(tmp_path).is_empty()
    })
    .await;
    kill_9(server, "the supervisor ends the tree", || {
        processes_with(tmp_path).is_empty()
    })
    .await;
    assert_eq!(
        run_files().len(),
        2,
        "the killed server's file is left behind"
    );

    let again = start(dir.path(), &envs);
    stop(again);
    assert_eq!(run_files(), [live]);
}

#[tokio::test]
async fn scripts_never_see_scriptd_settings_or_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/scriptd.db", dir.path().display());
    let key = "bXktbWFzdGVyLWtleS1mb3ItdGhlLXRlc3QtMzJieXQ=";
    let envs = [
        ("SCRIPTD_ADMIN_PASSWORD", "pw-env-test-secret"),
        ("SCRIPTD_DATABASE_URL", db.as_str()),
        ("SCRIPTD_MASTER_KEY", key),
        ("OPERATOR_VAR", "inherited"),
    ];
    let server = start(dir.path(), &envs);
    let admin = Admin::new(&server.base, "pw-env-test-secret");
    let body = json!({"name": "env", "codeIdentifier": "env", "type": "bash", "script": "env"});
    let script = admin
        .json(Method::POST, "/api/admin/scripts", Some(&body))
        .await;
    let (run_id, log) = admin.run_and_log(script["id"].as_str().unwrap()).await;
    stop(server);
    assert!(
        log.contains("OPERATOR_VAR=inherited"),
        "the server's environment is inherited"
    );
    assert!(log.contains(&format!("SCRIPTD_RUN_ID={run_id}")));
    for secret in [
        "pw-env-test-secret",
        key,
        db.as_str(),
        "SCRIPTD_ADMIN_PASSWORD",
        "SCRIPTD_DATABASE_URL",
        "SCRIPTD_MASTER_KEY",
    ] {
        assert!(
            !log.contains(secret),
            "{secret} leaked into the child environment"
        );
    }
}

/// Secrets given as flags leave the command line, which every local user and every script can
/// read (`/proc/<pid>/cmdline`, `ps`), and still take effect.
#[tokio::test]
async fn secrets_given_as_flags_are_kept_out_of_the_process_list() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/flags.db", dir.path().display());
    let key = "ZmxhZy1tYXN0ZXIta2V5LWZvci10aGUtdGVzdC0zMmI=";
    let server = start_with(
        dir.path(),
        &[
            "--admin-password",
            "pw-flag-secret",
            &format!("--master-key={key}"),
            "--database-url",
            &db,
        ],
        &[],
    );
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.child.id())).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains(" serve --listen "), "{cmdline}");
    // The password works, the key seals secrets, the database is the one named.
    let admin = Admin::new(&server.base, "pw-flag-secret");
    let body = json!({
        "name": "ps", "codeIdentifier": "ps", "type": "bash",
        "script": "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done",
        "env": [{"key": "S", "value": "sealed", "secret": true}]
    });
    let script = admin
        .json(Method::POST, "/api/admin/scripts", Some(&body))
        .await;
    let (_, log) = admin.run_and_log(script["id"].as_str().unwrap()).await;
    stop(server);
    assert!(
        log.contains("serve --listen"),
        "the script saw the server: {log}"
    );
    for secret in ["pw-flag-secret", key, db.as_str()] {
        assert!(
            !cmdline.contains(secret),
            "{secret} in the server's cmdline"
        );
        assert!(
            !log.contains(secret),
            "{secret} in a process list a script read"
        );
    }
    assert!(dir.path().join("flags.db").exists());
    assert!(
        !dir.path().join("master.key").exists(),
        "the key came from the flag"
    );
}

fn scriptd(args: &[&str], dir: &std::path::Path, envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scriptd"));
    cmd.args(args).arg("--data-dir").arg(dir).env("HOME", dir);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The admin API of a server started here.
struct Admin {
    base: String,
    password: String,
    client: reqwest::Client,
}

impl Admin {
    fn new(base: &str, password: &str) -> Self {
        Self {
            base: base.to_string(),
            password: password.to_string(),
            client: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .basic_auth("admin", Some(&self.password));
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.unwrap()
    }

    async fn json(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Value {
        self.send(method, path, body).await.json().await.unwrap()
    }

    /// Creates a script from `body` and starts a run of it; returns the run's id.
    async fn create_and_run(&self, body: &Value) -> String {
        let script = self
            .json(Method::POST, "/api/admin/scripts", Some(body))
            .await;
        let run_path = format!("/api/admin/scripts/{}/run", script["id"].as_str().unwrap());
        self.json(Method::POST, &run_path, None).await["runId"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn run(&self, run_id: &str) -> Value {
        self.json(
            Method::GET,
            &format!("/api/admin/scripts/runs/{run_id}"),
            None,
        )
        .await
    }

    /// The run's stored log once it holds `needle` (within 10 s).
    async fn log_once_it_holds(&self, run_id: &str, needle: &str) -> String {
        let log_path = format!("/api/admin/scripts/runs/{run_id}/log");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self
                .send(Method::GET, &log_path, None)
                .await
                .text()
                .await
                .unwrap();
            if log.contains(needle) {
                return log;
            }
            assert!(Instant::now() < deadline, "never stored: {needle}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs a script and returns the run id and its log once it ended.
    async fn run_and_log(&self, script_id: &str) -> (String, String) {
        let run = self
            .json(
                Method::POST,
                &format!("/api/admin/scripts/{script_id}/run"),
                None,
            )
            .await;
        let run_id = run["runId"].as_str().unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.run(&run_id).await;
            if !matches!(r["status"].as_str(), Some("queued" | "running")) {
                let log = self
                    .send(
                        Method::GET,
                        &format!("/api/admin/scripts/runs/{run_id}/log"),
                        None,
                    )
                    .await
                    .text()
                    .await
                    .unwrap();
                return (run_id, log);
            }
            assert!(Instant::now() < deadline, "run did not finish: {r}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn a_wrong_master_key_stops_the_start_and_rotation_keeps_secrets_usable() {
    let dir = tempfile::tempdir().unwrap();
    let pw = [("SCRIPTD_ADMIN_PASSWORD", "pw-rotate")];
    let server = start(dir.path(), &pw);
    let body = json!({"name": "k", "codeIdentifier": "k", "type": "bash",
        "script": "[ \"$TOKEN\" = \"$EXPECTED\" ] && echo secret-ok",
        "env": [{"key": "TOKEN", "value": "rotate-me-123", "secret": true},
                {"key": "EXPECTED", "value": "rotate-me-123", "secret": false}]});
    let script = Admin::new(&server.base, "pw-rotate")
        .json(Method::POST, "/api/admin/scripts", Some(&body))
        .await;
    let id = script["id"].as_str().unwrap().to_string();
    stop(server);
    let old_key = std::fs::read_to_string(dir.path().join("master.key")).unwrap();

    let wrong = "d3JvbmctbWFzdGVyLWtleS0tLS0tLS0tLS0tLS0tLS0=";
    let out = scriptd(
        &["serve", "--listen", "127.0.0.1:0"],
        dir.path(),
        &[("SCRIPTD_MASTER_KEY", wrong), pw[0]],
    );
    assert!(!out.status.success(), "a wrong key must not start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("master key"), "the error says why: {err}");

    let out = scriptd(&["rotate-master-key"], dir.path(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("re-encrypted the secrets of 1 script"));
    let new_key = std::fs::read_to_string(dir.path().join("master.key")).unwrap();
    assert_ne!(old_key.trim(), new_key.trim());
    let out = scriptd(
        &["serve", "--listen", "127.0.0.1:0"],
        dir.path(),
        &[("SCRIPTD_MASTER_KEY", old_key.trim()), pw[0]],
    );
    assert!(
        !out.status.success(),
        "the old key no longer opens the secrets"
    );

    let server = start(dir.path(), &pw);
    let admin = Admin::new(&server.base, "pw-rotate");
    let (_, log) = admin.run_and_log(&id).await;
    // The rotation is in the audit log, by the command line, with no key in it.
    let audit = admin
        .json(
            Method::GET,
            "/api/admin/audit?action=master_key.rotate",
            None,
        )
        .await;
    stop(server);
    assert!(
        log.contains("secret-ok"),
        "the secret still reaches the script: {log}"
    );
    let entry = &audit["entries"][0];
    assert_eq!(entry["target"], "master-key", "{audit}");
    assert_eq!(entry["summary"]["scripts"], 1);
    assert!(entry["actor"].as_str().unwrap().starts_with("cli:"));
    assert!(!audit.to_string().contains(new_key.trim()));
    assert!(!audit.to_string().contains(old_key.trim()));
}

#[tokio::test]
async fn secrets_never_reach_the_server_log_even_at_debug_level() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "debug-level-secret-987";
    let log_path = dir.path().join("server.log");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scriptd"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .env("HOME", dir.path())
        .env("SCRIPTD_ADMIN_PASSWORD", "pw-debug-log")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let base = format!("http://127.0.0.1:{port}");
    let admin = Admin::new(&base, "pw-debug-log");
    let body = json!({"name": "d", "codeIdentifier": "d", "type": "bash", "script": "echo \"value $TOKEN\"; exit 1",
        "env": [{"key": "TOKEN", "value": secret, "secret": true}]});
    let script = admin
        .json(Method::POST, "/api/admin/scripts", Some(&body))
        .await;
    let id = script["id"].as_str().unwrap().to_string();
    let mut update = script.clone();
    update["description"] = json!("edit");
    admin
        .send(
            Method::PUT,
            &format!("/api/admin/scripts/{id}"),
            Some(&update),
        )
        .await;
    let (_, log) = admin.run_and_log(&id).await;
    assert!(log.contains("value ***"));
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    let server_log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        server_log.contains("DEBUG"),
        "the server really logged at debug level"
    );
    assert!(
        !server_log.contains(secret),
        "the secret reached the server log"
    );
    assert!(
        !server_log.contains("pw-debug-log"),
        "the admin password reached the server log"
    );
}
