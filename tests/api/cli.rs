//! The command-line client (`scriptd scripts|script|run|runs|log|follow|cancel`) against a
//! real server: output where it belongs, exit statuses, credentials from the environment or a
//! file, JSON for scripts, and a followed stream that survives a dropped connection.

use std::process::Output;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Backend, TestApp, PASSWORD};

/// Runs the client with `url`, admin credentials from the environment (unless `env` says
/// otherwise) and `args`.
async fn cli(url: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_scriptd"));
    cmd.args(args)
        .env("SCRIPTD_URL", url)
        .env("SCRIPTD_ADMIN_PASSWORD", PASSWORD)
        .env_remove("SCRIPTD_TOKEN")
        .env_remove("SCRIPTD_PASSWORD_FILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn run_follows_stdout_and_stderr_apart_and_exits_with_the_scripts_status() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let base = app.url("");
    app.create_script(
        json!({"name": "Noisy", "codeIdentifier": "noisy", "type": "bash",
        "script": "echo out1; echo err1 >&2; printf '\\033[31mred\\033[0m\\n'; exit 3"}),
    )
    .await;
    let o = cli(&base, &[], &["run", "noisy"]).await;
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert_eq!(
        out(&o),
        "out1\n\u{1b}[31mred\u{1b}[0m\n",
        "stdout only, colours kept"
    );
    let stderr = err(&o);
    assert!(stderr.lines().any(|l| l == "err1"), "{stderr}");
    assert!(!out(&o).contains("err1"));
    assert!(stderr.contains("failed (exit 3)"), "{stderr}");

    // With JSON output and an input: the run's record, the input as sent.
    let o = cli(
        &base,
        &[],
        &["run", "noisy", "--input", r#"{"a": 1}"#, "--output", "json"],
    )
    .await;
    assert_eq!(o.status.code(), Some(3));
    let run: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(run["input"], json!({"a": 1}));
    assert_eq!(run["exitCode"], 3);

    // Fields as KEY=VALUE: JSON where they parse, text otherwise.
    let o = cli(
        &base,
        &[],
        &[
            "run",
            "noisy",
            "since=2026-11-01",
            "limit=10",
            "dry=true",
            "tags=[1,2]",
            "--output",
            "json",
        ],
    )
    .await;
    let run: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(
        run["input"],
        json!({"since": "2026-11-01", "limit": 10, "dry": true, "tags": [1, 2]})
    );
    let o = cli(&base, &[], &["run", "noisy", "oops"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("KEY=VALUE"), "{}", err(&o));

    // The password from a file instead of the environment; none at all is a clear error.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let o = cli(
        &base,
        &[("SCRIPTD_ADMIN_PASSWORD", "")],
        &["scripts", "--password-file", file.to_str().unwrap()],
    )
    .await;
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("noisy"));
    let o = cli(&base, &[("SCRIPTD_ADMIN_PASSWORD", "")], &["scripts"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("SCRIPTD_ADMIN_PASSWORD"), "{}", err(&o));
    let o = cli(&base, &[("SCRIPTD_ADMIN_PASSWORD", "wrong")], &["scripts"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("credentials"), "{}", err(&o));
}

#[tokio::test]
async fn lists_logs_cancel_follow_timeouts_and_the_trigger_token() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let base = app.url("");
    let script = app
        .create_script(
            json!({"name": "Counter", "codeIdentifier": "counter", "type": "bash",
            "script": "seq 1 5", "concurrency": "parallel", "apiTrigger": {"enabled": true}}),
        )
        .await;
    let o = cli(&base, &[], &["run", "counter"]).await;
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(out(&o), "1\n2\n3\n4\n5\n");

    let o = cli(&base, &[], &["scripts", "--output", "json"]).await;
    let scripts: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(scripts[0]["codeIdentifier"], "counter");
    let o = cli(&base, &[], &["script", "counter"]).await;
    assert!(out(&o).contains("seq 1 5"), "{}", out(&o));
    let o = cli(
        &base,
        &[],
        &["runs", "--script", "counter", "--output", "json"],
    )
    .await;
    let runs: Value = serde_json::from_str(&out(&o)).unwrap();
    let run = runs["runs"][0]["id"].as_str().unwrap().to_string();
    let o = cli(&base, &[], &["log", &run]).await;
    assert_eq!(out(&o), "1\n2\n3\n4\n5\n");
    let o = cli(&base, &[], &["runs"]).await;
    assert!(
        out(&o).contains(&run) && out(&o).contains("succeeded"),
        "{}",
        out(&o)
    );

    // Detach, cancel from another command, and a follow that reports it.
    app.create_script(
        json!({"name": "Sleeper", "codeIdentifier": "sleeper", "type": "bash",
            "script": "sleep 30"}),
    )
    .await;
    let o = cli(&base, &[], &["run", "sleeper", "--detach"]).await;
    let sleeping = out(&o).trim().to_string();
    assert!(!sleeping.is_empty());
    let o = cli(&base, &[], &["cancel", &sleeping]).await;
    assert!(o.status.success(), "{}", err(&o));
    let o = cli(&base, &[], &["follow", &sleeping]).await;
    assert_eq!(o.status.code(), Some(130), "canceled: {}", err(&o));

    // A timeout is 124.
    let slow = app
        .create_script(
            json!({"name": "Slow", "codeIdentifier": "slow", "type": "bash",
            "script": "sleep 10", "timeoutMs": 1000}),
        )
        .await;
    let o = cli(&base, &[], &["run", slow["id"].as_str().unwrap()]).await;
    assert_eq!(o.status.code(), Some(124), "{}", err(&o));

    // With only the script's trigger token: the run waits to its end and its tail is printed.
    let issued: Value = app
        .admin(
            reqwest::Method::POST,
            &format!(
                "/api/admin/scripts/{}/api-token",
                script["id"].as_str().unwrap()
            ),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = issued["token"].as_str().unwrap().to_string();
    let o = cli(
        &base,
        &[("SCRIPTD_ADMIN_PASSWORD", ""), ("SCRIPTD_TOKEN", &token)],
        &["run", "counter"],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(out(&o), "1\n2\n3\n4\n5\n");
}

/// Forwards connections to `upstream`, but cuts the first stream request's connection after
/// `cut_after` bytes of its answer.
async fn cutting_proxy(upstream: String, cut_after: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cut_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            let cut_done = cut_done.clone();
            tokio::spawn(async move {
                let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let streaming = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let seen = streaming.clone();
                let up = tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                        if String::from_utf8_lossy(&buf[..n]).contains("/stream") {
                            seen.store(true, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                });
                let mut buf = vec![0u8; 512];
                let mut sent = 0;
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    if streaming.load(std::sync::atomic::Ordering::SeqCst) {
                        sent += n;
                        if sent > cut_after
                            && !cut_done.swap(true, std::sync::atomic::Ordering::SeqCst)
                        {
                            break;
                        }
                    }
                }
                up.abort();
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_followed_run_survives_a_dropped_connection_without_losing_or_repeating_a_line() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let base = app.url("");
    app.create_script(
        json!({"name": "Lines", "codeIdentifier": "lines", "type": "bash",
        "script": "seq 1 3000"}),
    )
    .await;
    let o = cli(&base, &[], &["run", "lines", "--detach"]).await;
    let run = out(&o).trim().to_string();
    let proxy = cutting_proxy(
        base.trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string(),
        4000,
    )
    .await;
    let o = cli(&proxy, &[], &["follow", &run]).await;
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        err(&o).contains("reconnecting"),
        "the connection was cut: {}",
        err(&o)
    );
    let expected: String = (1..=3000).map(|i| format!("{i}\n")).collect();
    assert_eq!(out(&o), expected, "every line once, in order");
}

#[tokio::test]
async fn ctrl_c_stops_following_and_with_cancel_on_interrupt_cancels_the_run() {
    use tokio::io::AsyncBufReadExt;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let base = app.url("");
    let script = app
        .create_script(
            json!({"name": "Long", "codeIdentifier": "long", "type": "bash",
            "script": "echo started; sleep 30", "concurrency": "parallel"}),
        )
        .await;
    let id = script["id"].as_str().unwrap();
    for cancel in [false, true] {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_scriptd"));
        cmd.args(["run", "long"]);
        if cancel {
            cmd.arg("--cancel-on-interrupt");
        }
        let mut child = cmd
            .env("SCRIPTD_URL", &base)
            .env("SCRIPTD_ADMIN_PASSWORD", PASSWORD)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Interrupted once the run's first line has reached the client.
        let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(
            stdout.next_line().await.unwrap().as_deref(),
            Some("started")
        );
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id().unwrap() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        assert_eq!(child.wait().await.unwrap().code(), Some(130));
        let runs = app
            .get_json(&format!("/api/admin/scripts/runs?scriptId={id}&limit=1"))
            .await;
        let run = runs["runs"][0]["id"].as_str().unwrap().to_string();
        if cancel {
            assert_eq!(app.wait_run(&run).await["status"], "canceled");
        } else {
            assert_eq!(
                app.get_json(&format!("/api/admin/scripts/runs/{run}"))
                    .await["status"],
                "running",
                "without the flag the run goes on"
            );
            app.cancel(&run).await;
            app.wait_run(&run).await;
        }
    }
}
