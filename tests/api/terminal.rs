//! A script's `tty` mode: host runs under a pseudo-terminal, so programs that buffer on a
//! pipe print line by line; stdout and stderr come as one stream.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    both_backends, eventually, log_lines, parse_sse, processes_with, Backend, TestApp,
};

both_backends!(
    a_tty_run_sees_a_terminal_and_its_lines_come_as_one_stream,
    a_program_that_buffers_on_a_pipe_prints_live_under_a_terminal,
    a_terminal_is_refused_for_runs_that_are_not_on_the_host,
);

async fn a_tty_run_sees_a_terminal_and_its_lines_come_as_one_stream(b: Backend) {
    let app = TestApp::spawn(b).await;
    let script = app
        .bash(
            "test -t 1 && echo 'stdout is a terminal'; test -t 2 && echo 'stderr is one too' >&2; \
             python3 -c 'import os; print(os.get_terminal_size(1))'; echo \"TERM=$TERM\"; \
             printf 'one\\ntwo\\n'; printf '\\033[31mred\\033[0m\\n'",
            json!({"tty": true}),
        )
        .await;
    let stored = app.get_json(&format!("/api/admin/scripts/{script}")).await;
    assert_eq!(stored["tty"], true);
    let run = app.run(&script).await;
    let done = app.wait_run(&run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let lines = log_lines(&parse_sse(
        &app.call(
            reqwest::Method::GET,
            &format!("/api/admin/scripts/runs/{run}/stream"),
        )
        .await
        .text()
        .await
        .unwrap(),
    ));
    let text: Vec<(&str, &str)> = lines.iter().map(|l| (l.1.as_str(), l.2.as_str())).collect();
    assert_eq!(
        text,
        [
            ("stdout", "stdout is a terminal"),
            ("stdout", "stderr is one too"),
            ("stdout", "os.terminal_size(columns=160, lines=50)"),
            ("stdout", "TERM=xterm-256color"),
            ("stdout", "one"),
            ("stdout", "two"),
            ("stdout", "\u{1b}[31mred\u{1b}[0m"),
        ],
        "one stream, lines ending in a plain newline"
    );

    // The script's own TERM wins (the server's own does not); without tty, stdout is a pipe
    // as ever.
    let own = app
        .bash(
            "echo \"TERM=$TERM\"",
            json!({"tty": true, "env": [{"key": "TERM", "value": "dumb"}]}),
        )
        .await;
    let run = app.run(&own).await;
    app.wait_run(&run).await;
    assert_eq!(app.log(&run).await, "TERM=dumb\n");
    let piped = app.bash("test -t 1 || echo 'a pipe'", json!({})).await;
    let run = app.run(&piped).await;
    app.wait_run(&run).await;
    assert_eq!(app.log(&run).await, "a pipe\n");
}

/// Python block-buffers stdout on a pipe: its first line waits for the exit there. Under a
/// terminal it arrives while the program still waits for a file the test creates only then.
async fn a_program_that_buffers_on_a_pipe_prints_live_under_a_terminal(b: Backend) {
    let app = TestApp::spawn(b).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("tty-live-{}", uuid::Uuid::now_v7().simple());
    let program = |go: &std::path::Path| {
        format!(
            // Whatever this machine sets, Python buffers as it does by default.
            "env -u PYTHONUNBUFFERED python3 -c 'import os, time\nprint(\"early\")\nwhile not os.path.exists(\"{}\"): time.sleep(0.02)\nprint(\"late\")' {marker}",
            go.display()
        )
    };

    let tty_go = dir.path().join("tty-go");
    let script = app.bash(&program(&tty_go), json!({"tty": true})).await;
    let run = app.run(&script).await;
    let mut live = app.open_stream(&run).await;
    live.read_until(|t| t.contains("\"early\"")).await;
    assert_eq!(app.get_run(&run).await["status"], "running");
    // Cancel ends the tree as with pipes, leaving no process behind.
    assert_eq!(app.cancel(&run).await.status(), 202);
    assert_eq!(app.wait_run(&run).await["status"], "canceled");
    eventually(10, "no process of the run left", || {
        processes_with(&marker).is_empty()
    })
    .await;

    let pipe_go = dir.path().join("pipe-go");
    let piped = app.bash(&program(&pipe_go), json!({})).await;
    let run = app.run(&piped).await;
    let mut live = app.open_stream(&run).await;
    let early = tokio::time::timeout(
        Duration::from_millis(1500),
        live.read_until(|t| t.contains("\"early\"")),
    )
    .await;
    assert!(
        early.is_err(),
        "on a pipe the line is held back: {}",
        live.text
    );
    std::fs::write(&pipe_go, "").unwrap();
    live.read_until(|t| t.contains("event: done")).await;
    let lines: Vec<String> = log_lines(&parse_sse(&live.text))
        .into_iter()
        .map(|l| l.2)
        .collect();
    assert_eq!(lines, ["early", "late"]);
}

async fn a_terminal_is_refused_for_runs_that_are_not_on_the_host(b: Backend) {
    let app = TestApp::spawn(b).await;
    for (kind, runner) in [("node", "isolated"), ("browser", "browser")] {
        let resp = app
            .admin(reqwest::Method::POST, "/api/admin/scripts")
            .json(
                &json!({"name": "t", "codeIdentifier": format!("t-{kind}"), "type": kind,
                          "runner": runner, "script": "1", "tty": true}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{kind}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["field"], "tty", "{err}");
    }
    let listed = app.get_json("/api/admin/scripts").await;
    assert_eq!(listed, json!([]), "nothing was created");
}
