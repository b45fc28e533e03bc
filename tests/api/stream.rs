//! Live output over SSE: format, live delivery, resume, replay, many subscribers.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{
    both_backends, log_lines, parse_sse, query_numbers, Backend, LiveStream, Options, TestApp,
};

both_backends!(
    a_finished_run_replays_its_log_then_done_and_closes,
    lines_arrive_while_the_run_is_still_going,
    resume_by_last_event_id_or_since_skips_and_repeats_nothing,
    many_subscribers_all_get_every_line,
    a_subscriber_that_disconnects_is_let_go_at_once,
    past_the_log_cap_no_line_changes_its_number,
    lines_come_back_exactly_whatever_they_contain,
    a_big_log_can_open_at_its_end,
    a_watcher_arriving_mid_run_first_gets_the_lines_already_stored,
    every_line_is_stored_as_it_was_streamed,
    a_replay_from_any_line_of_a_big_log_is_whole_and_in_order,
);

/// Interleaved stdout and stderr, stored in batches while watchers get them framed once per
/// batch: each line comes back from the store with its own stream, text and time, exactly as
/// it was streamed live.
async fn every_line_is_stored_as_it_was_streamed(b: Backend) {
    let app = TestApp::spawn(b).await;
    let id = app
        .bash(
            "for i in $(seq 1 500); do echo out$i; echo err$i >&2; done; sleep 0.05; echo last",
            json!({}),
        )
        .await;
    let run = app.run(&id).await;
    let mut live = app.open_stream(&run).await;
    live.read_until(|t| t.contains("event: done")).await;
    let data = |text: &str| -> Vec<serde_json::Value> {
        parse_sse(text)
            .into_iter()
            .filter(|e| e.event == "log")
            .map(|e| e.data)
            .collect()
    };
    let seen = data(&live.text);
    assert_eq!(seen.len(), 1001);
    let errors = seen.iter().filter(|l| l["stream"] == "stderr").count();
    assert_eq!(errors, 500, "both streams are told apart");
    assert_eq!(data(&read_all(&app, &run, None, None).await), seen);
    assert_eq!(
        data(&read_all(&app, &run, Some("700"), None).await),
        seen[700..].to_vec(),
        "a replay from the middle of a stored chunk"
    );
}

async fn a_big_log_can_open_at_its_end(b: Backend) {
    let app = TestApp::spawn(b).await;
    let run = app.run(&app.bash("seq 1 10000", json!({})).await).await;
    app.wait_run(&run).await;
    let seqs = |text: &str| -> Vec<i64> {
        log_lines(&parse_sse(text))
            .into_iter()
            .map(|l| l.0)
            .collect()
    };
    let tail = read_all(&app, &run, Some("0&tail=3"), None).await;
    assert_eq!(
        seqs(&tail),
        (1..=10000).collect::<Vec<_>>(),
        "an explicit since wins over tail"
    );
    let path = format!("/api/admin/scripts/runs/{run}/stream?tail=3");
    let text = app.call(Method::GET, &path).await.text().await.unwrap();
    assert_eq!(seqs(&text), [9998, 9999, 10000]);
    assert!(text.contains("event: done"), "then the end, as ever");
    // A reconnect's Last-Event-ID wins over the tail.
    let resumed = app
        .admin(Method::GET, &path)
        .header("last-event-id", "9990")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(seqs(&resumed), (9991..=10000).collect::<Vec<_>>());
    for bad in ["0", "-1", "1000001"] {
        let resp = app
            .call(
                Method::GET,
                &format!("/api/admin/scripts/runs/{run}/stream?tail={bad}"),
            )
            .await;
        assert_eq!(resp.status(), 400, "tail={bad}");
    }
}

/// A fast script stores chunks of thousands of lines, more than a replay reads at a time:
/// a replay (or a download) from any line, in the middle of a chunk or at its edge, gives each
/// line once, in order, to the end.
async fn a_replay_from_any_line_of_a_big_log_is_whole_and_in_order(b: Backend) {
    let app = TestApp::spawn(b).await;
    let run = app.run(&app.bash("seq 1 30000", json!({})).await).await;
    app.wait_run(&run).await;
    let chunks = query_numbers(
        &app.database_url,
        &format!("SELECT last_seq - first_seq + 1 FROM run_log_chunks WHERE run_id = '{run}'"),
    )
    .await;
    assert!(
        chunks.iter().any(|&n| n > 2000),
        "some chunk holds more lines than a replay reads at once: {chunks:?}"
    );
    for since in [0, 1, 1999, 2000, 2001, 12345, 29999, 30000] {
        let text = read_all(&app, &run, Some(&since.to_string()), None).await;
        let lines = log_lines(&parse_sse(&text));
        let expected: Vec<(i64, String)> =
            (since + 1..=30000).map(|i| (i, i.to_string())).collect();
        let got: Vec<(i64, String)> = lines.into_iter().map(|l| (l.0, l.2)).collect();
        assert!(
            got == expected,
            "replay after {since}: {} lines, expected {}",
            got.len(),
            expected.len()
        );
        assert!(text.ends_with("\n\n") && text.contains("event: done"));
    }
    let download = app
        .call(Method::GET, &format!("/api/admin/scripts/runs/{run}/log"))
        .await
        .text()
        .await
        .unwrap();
    let expected: String = (1..=30000).map(|i| format!("{i}\n")).collect();
    assert!(download == expected, "the download is the whole log, once");
}

async fn read_all(
    app: &TestApp,
    run: &str,
    since: Option<&str>,
    last_event_id: Option<&str>,
) -> String {
    let mut path = format!("/api/admin/scripts/runs/{run}/stream");
    if let Some(s) = since {
        path.push_str(&format!("?since={s}"));
    }
    let mut req = app.admin(Method::GET, &path);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(resp.headers()["cache-control"], "no-cache, no-transform");
    tokio::time::timeout(Duration::from_secs(30), resp.text())
        .await
        .expect("stream closes")
        .unwrap()
}

async fn a_finished_run_replays_its_log_then_done_and_closes(b: Backend) {
    let app = TestApp::spawn(b).await;
    // The two pipes are read concurrently: order across them is only certain with a pause.
    let id = app
        .bash("echo one; sleep 0.5; echo two >&2; exit 3", json!({}))
        .await;
    let run = app.run(&id).await;
    app.wait_run(&run).await;
    let text = read_all(&app, &run, None, None).await;
    assert!(
        text.contains(
            "id: 1\nevent: log\ndata: {\"seq\":1,\"stream\":\"stdout\",\"line\":\"one\",\"ts\":\""
        ),
        "{text}"
    );
    let events = parse_sse(&text);
    assert_eq!(
        log_lines(&events),
        vec![
            (1, "stdout".into(), "one".into()),
            (2, "stderr".into(), "two".into())
        ]
    );
    let done = events.last().unwrap();
    assert_eq!(done.event, "done");
    assert_eq!(done.data["status"], "failed");
    assert_eq!(done.data["exitCode"], 3);
    assert!(events
        .iter()
        .all(|e| e.event != "log" || e.id.as_deref() == Some(&e.data["seq"].to_string())));
    let missing = app
        .call(Method::GET, "/api/admin/scripts/runs/nope/stream")
        .await;
    assert_eq!(missing.status(), 404);
}

/// A file that holds a script back until the test opens it.
struct Gate {
    dir: tempfile::TempDir,
}

impl Gate {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("go")
    }

    /// Shell that waits until the gate is open.
    fn wait(&self) -> String {
        format!(
            "while [ ! -e {} ]; do sleep 0.02; done",
            self.path().display()
        )
    }

    fn open(&self) {
        std::fs::write(self.path(), "").unwrap();
    }
}

async fn lines_arrive_while_the_run_is_still_going(b: Backend) {
    let app = TestApp::spawn(b).await;
    let gate = Gate::new();
    let id = app
        .bash(
            &format!("echo before; {}; echo after", gate.wait()),
            json!({}),
        )
        .await;
    let run = app.run(&id).await;
    let mut stream = app.open_stream(&run).await;
    stream
        .read_until(|t| t.contains("\"line\":\"before\""))
        .await;
    assert_eq!(
        app.get_run(&run).await["status"],
        "running",
        "the line came while the run was going"
    );
    gate.open();
    stream.read_until(|t| t.contains("event: done")).await;
    let seen = stream.text;
    let lines: Vec<String> = log_lines(&parse_sse(&seen))
        .into_iter()
        .map(|l| l.2)
        .collect();
    assert_eq!(lines, vec!["before", "after"]);
}

async fn resume_by_last_event_id_or_since_skips_and_repeats_nothing(b: Backend) {
    let app = TestApp::spawn(b).await;
    let id = app
        .bash("for i in $(seq 1 5000); do echo line-$i; done", json!({}))
        .await;
    let run = app.run(&id).await;
    // Attach mid-run, drop the connection after some lines, resume from the last id seen.
    let mut stream = app.open_stream(&run).await;
    stream
        .read_until(|t| log_lines(&parse_sse(t)).len() >= 100)
        .await;
    let first = stream.text;
    // Keep only whole events, as a client would.
    let cut = first.rfind("\n\n").unwrap();
    let got = log_lines(&parse_sse(&first[..cut + 2]));
    let last = got.last().unwrap().0.to_string();
    let rest = read_all(&app, &run, None, Some(&last)).await;
    let mut all: Vec<String> = got.into_iter().map(|l| l.2).collect();
    all.extend(log_lines(&parse_sse(&rest)).into_iter().map(|l| l.2));
    let expected: Vec<String> = (1..=5000).map(|i| format!("line-{i}")).collect();
    assert_eq!(
        all, expected,
        "no line lost or repeated across the reconnect"
    );

    let since = read_all(&app, &run, Some("4990"), None).await;
    let seqs: Vec<i64> = log_lines(&parse_sse(&since))
        .into_iter()
        .map(|l| l.0)
        .collect();
    assert_eq!(seqs, (4991..=5000).collect::<Vec<_>>());
}

async fn many_subscribers_all_get_every_line(b: Backend) {
    let app = TestApp::spawn(b).await;
    let gate = Gate::new();
    let id = app
        .bash(&format!("{}; seq 1 3000", gate.wait()), json!({}))
        .await;
    let run = app.run(&id).await;
    app.wait_status(&run, "running").await;
    let mut readers = Vec::new();
    for _ in 0..20 {
        let req = app.admin(
            Method::GET,
            &format!("/api/admin/scripts/runs/{run}/stream"),
        );
        readers.push(tokio::spawn(async move {
            req.send().await.unwrap().text().await.unwrap()
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    gate.open();
    let expected: Vec<String> = (1..=3000).map(|i| i.to_string()).collect();
    for r in readers {
        let text = tokio::time::timeout(Duration::from_secs(30), r)
            .await
            .unwrap()
            .unwrap();
        let lines: Vec<String> = log_lines(&parse_sse(&text))
            .into_iter()
            .map(|l| l.2)
            .collect();
        assert_eq!(lines, expected);
    }
}

async fn a_subscriber_that_disconnects_is_let_go_at_once(b: Backend) {
    let app = TestApp::spawn(b).await;
    let run = app.run(&app.bash("sleep 30", json!({})).await).await;
    let subscribers = || async {
        let metrics = app
            .call(reqwest::Method::GET, "/metrics")
            .await
            .text()
            .await
            .unwrap();
        crate::helpers::metric(&metrics, "scriptd_stream_subscribers", &[]).unwrap() as u64
    };
    let mut stream = app.open_stream(&run).await;
    stream.read_until(|t| t.contains("event: status")).await;
    assert_eq!(subscribers().await, 1);
    drop(stream);
    // A quiet run sends nothing for seconds: the server must notice the client left anyway.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while subscribers().await != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the stream outlived its client"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.cancel(&run).await;
}

/// Output past the log cap is streamed live but not stored, and a marker says so: the marker
/// takes a number of its own, so a line a live watcher saw under seq N is under N in the
/// store too (or not stored at all).
async fn past_the_log_cap_no_line_changes_its_number(b: Backend) {
    let app = TestApp::spawn_with(
        b,
        Options {
            max_log_bytes: Some(2_000),
            ..Default::default()
        },
    )
    .await;
    let id = app
        .bash("sleep 0.3; seq 1 2000", json!({"concurrency": "parallel"}))
        .await;
    let run = app.run(&id).await;
    let mut live = app.open_stream(&run).await;
    live.read_until(|t| t.contains("event: done")).await;
    let seen = log_lines(&parse_sse(&live.text));
    assert_eq!(seen.len(), 2001, "every line and the marker streamed live");
    let stored = log_lines(&parse_sse(&read_all(&app, &run, None, None).await));
    let marker = stored.last().unwrap();
    assert!(marker.2.contains("not stored"), "{marker:?}");
    for (seq, stream, line) in &stored {
        let live_line = seen.iter().find(|l| l.0 == *seq).unwrap();
        assert_eq!(
            (&live_line.1, &live_line.2),
            (stream, line),
            "seq {seq} is the same line live and stored"
        );
    }
}

/// Quotes, backslashes, control characters and non-ASCII text survive the event framing.
async fn lines_come_back_exactly_whatever_they_contain(b: Backend) {
    let app = TestApp::spawn(b).await;
    let id = app
        .bash(
            r#"printf 'say "hi" \\ back\ttab \001 é </script>\n'"#,
            json!({}),
        )
        .await;
    let run = app.run(&id).await;
    app.wait_run(&run).await;
    let events = parse_sse(&read_all(&app, &run, None, None).await);
    assert_eq!(
        log_lines(&events),
        vec![(
            1,
            "stdout".into(),
            "say \"hi\" \\ back\ttab \u{1} é </script>".into()
        )]
    );
}

/// A run executing on the node a watcher asks: the lines stored before it arrived come from
/// the store, even when nothing more comes live before the end.
async fn a_watcher_arriving_mid_run_first_gets_the_lines_already_stored(b: Backend) {
    let app = TestApp::spawn(b).await;
    let gate = Gate::new();
    let id = app
        .bash(
            &format!("echo first; echo second; {}", gate.wait()),
            json!({}),
        )
        .await;
    let run = app.run(&id).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !app.log(&run).await.contains("second") {
        assert!(
            std::time::Instant::now() < deadline,
            "the lines were never stored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut stream = app.open_stream(&run).await;
    gate.open();
    stream.read_until(|t| t.contains("event: done")).await;
    let lines: Vec<(i64, String)> = log_lines(&parse_sse(&stream.text))
        .into_iter()
        .map(|l| (l.0, l.2))
        .collect();
    assert_eq!(lines, [(1, "first".into()), (2, "second".into())]);
}

/// A graceful stop ends every open event stream, the run events and a quiet run's output
/// alike, as a whole HTTP response: the server does not wait out its drain period for them,
/// nor cut them off mid-response when it runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_ends_open_streams_cleanly() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let run = app.run(&app.bash("sleep 60", json!({})).await).await;
    app.wait_status(&run, "running").await;
    let mut output = app.open_stream(&run).await;
    output.read_until(|t| t.contains("event: status")).await;
    let mut events =
        LiveStream::from_response(app.call(Method::GET, "/api/admin/scripts/events").await);
    events.read_until(|t| t.contains("retry:")).await;
    let stopping = tokio::spawn(app.stop());
    for (name, mut stream) in [("output", output), ("run events", events)] {
        if let Err(e) = stream.read_to_end().await {
            panic!("the {name} stream was cut off: {e}");
        }
    }
    stopping.await.unwrap();
}
