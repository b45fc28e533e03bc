//! Secret env values: masked in every output, encrypted at rest.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{both_backends, log_lines, parse_sse, Backend, TestApp};

both_backends!(secrets_are_masked_in_streams_logs_and_tails_even_split_across_reads);

const SECRET: &str = "s3cr3t-Value-42";

async fn secrets_are_masked_in_streams_logs_and_tails_even_split_across_reads(b: Backend) {
    let app = TestApp::spawn(b).await;
    // The second half of the secret arrives well after the partial-line flush delay.
    let script = r#"echo "whole: $TOKEN"; printf 'split: %s' "${TOKEN:0:6}"; sleep 0.6; printf '%s done\n' "${TOKEN:6}"; echo "$TOKEN" >&2; echo "short: $PIN""#;
    let id = app
        .bash(
            script,
            json!({"env": [{"key": "TOKEN", "value": SECRET, "secret": true}, {"key": "PIN", "value": "123", "secret": true}]}),
        )
        .await;
    let run = app.run(&id).await;
    // Watch live, too.
    let mut stream = app.open_stream(&run).await;
    stream.read_until(|t| t.contains("event: done")).await;
    let live = stream.text;
    let done = app.wait_run(&run).await;
    let log = app.log(&run).await;
    let replay = app
        .call(
            Method::GET,
            &format!("/api/admin/scripts/runs/{run}/stream"),
        )
        .await
        .text()
        .await
        .unwrap();
    for (what, text) in [
        ("live stream", live.as_str()),
        ("log", log.as_str()),
        ("tail", done["outputTail"].as_str().unwrap()),
        ("replay", replay.as_str()),
    ] {
        assert!(!text.contains(SECRET), "{what} shows the secret: {text}");
        assert!(
            !text.contains("s3cr3t"),
            "{what} shows part of the secret: {text}"
        );
    }
    let all = log_lines(&parse_sse(&replay));
    let lines: Vec<String> = all
        .iter()
        .filter(|l| l.1 == "stdout")
        .map(|l| l.2.clone())
        .collect();
    let stderr: Vec<String> = all
        .iter()
        .filter(|l| l.1 == "stderr")
        .map(|l| l.2.clone())
        .collect();
    assert!(lines.contains(&"whole: ***".to_string()), "{lines:?}");
    // The partial line is flushed up to where the secret begins and the secret waits for the
    // rest ("split: " then "*** done"); a reader slower than the script sees it whole instead.
    let split = lines
        .iter()
        .position(|l| l.starts_with("split: "))
        .expect("the split line shows");
    let joined = if lines[split] == "split: " {
        format!("{}{}", lines[split], lines[split + 1])
    } else {
        lines[split].clone()
    };
    assert_eq!(joined, "split: *** done", "{lines:?}");
    assert_eq!(stderr, vec!["***"]);
    assert!(
        lines.contains(&"short: 123".to_string()),
        "values under 4 characters are not masked"
    );
}

#[tokio::test]
async fn secrets_are_encrypted_in_the_database_file() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let id = app
        .bash("echo run", json!({"env": [{"key": "TOKEN", "value": SECRET, "secret": true}, {"key": "PLAIN", "value": "plain-visible-value", "secret": false}]}))
        .await;
    app.wait_run(&app.run(&id).await).await;
    let (dir, _) = app.stop().await;
    let mut all = Vec::new();
    for name in ["scriptd.db", "scriptd.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(name)) {
            all.extend(bytes);
        }
    }
    let text = String::from_utf8_lossy(&all);
    assert!(
        text.contains("plain-visible-value"),
        "non-secret values stay readable"
    );
    assert!(!text.contains(SECRET), "the secret is stored in clear");
    assert!(text.contains("enc:v1:"));
}
