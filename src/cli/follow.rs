//! Following a run in the terminal: its stdout to stdout and its stderr to stderr, as printed;
//! a dropped stream is reopened from the last line received (`Last-Event-ID`), so no line is
//! lost or repeated; the exit status says how the run ended.

use std::io::Write;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::Value;

use super::client::Client;
use super::{exit, show, Output};

/// How long to keep trying to reopen a stream that keeps failing.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// The exit status that tells how a run ended.
pub fn status_code(run: &Value) -> u8 {
    match run["status"].as_str() {
        Some("succeeded") => 0,
        Some("timed_out") => exit::TIMED_OUT,
        Some("canceled") => exit::CANCELED,
        _ => match (run["exitCode"].as_i64(), run["signal"].as_i64()) {
            (Some(code), _) => u8::try_from(code).unwrap_or(exit::FAILED_TO_RUN),
            (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(exit::FAILED_TO_RUN),
            (None, None) => exit::FAILED_TO_RUN,
        },
    }
}

enum Step {
    /// The stream ended with `done`: how the run ended.
    Done(Value),
    /// The stream broke off; reopen it after the last line received.
    Broken,
}

pub async fn follow(
    client: &Client,
    run_id: &str,
    cancel_on_interrupt: bool,
    output: Output,
) -> anyhow::Result<u8> {
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut last_seq = 0i64;
    let mut last_status = String::new();
    let mut failing_since: Option<tokio::time::Instant> = None;
    loop {
        let step = tokio::select! {
            step = follow_once(client, run_id, &mut last_seq, &mut last_status, output) => step,
            _ = &mut interrupted => {
                if cancel_on_interrupt {
                    client
                        .post_json(&format!("/api/admin/scripts/runs/{run_id}/cancel"), None)
                        .await?;
                    eprintln!("scriptd: run {run_id} canceled");
                } else {
                    eprintln!("scriptd: stopped following run {run_id}; it goes on (scriptd follow {run_id})");
                }
                return Ok(exit::CANCELED);
            }
        };
        match step {
            Ok(Step::Done(done)) => {
                let run = client
                    .get_json(&format!("/api/admin/scripts/runs/{run_id}"), &[])
                    .await
                    .unwrap_or(done);
                show::finished(output, &run);
                return Ok(status_code(&run));
            }
            Ok(Step::Broken) => failing_since = None,
            Err(e) => {
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() > GIVE_UP_AFTER {
                    return Err(e);
                }
            }
        }
        if output == Output::Text {
            eprintln!("scriptd: reconnecting to run {run_id} after line {last_seq}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One connection to the stream, from after `last_seq`.
async fn follow_once(
    client: &Client,
    run_id: &str,
    last_seq: &mut i64,
    last_status: &mut String,
    output: Output,
) -> anyhow::Result<Step> {
    let mut req = client.request(
        Method::GET,
        &format!("/api/admin/scripts/runs/{run_id}/stream"),
    );
    if *last_seq > 0 {
        req = req.header("Last-Event-ID", last_seq.to_string());
    }
    let resp = client.send(req).await?;
    let mut events = resp.bytes_stream().eventsource();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    while let Some(event) = events.next().await {
        let Ok(event) = event else {
            return Ok(Step::Broken);
        };
        let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
        match event.event.as_str() {
            "log" => {
                let seq = data["seq"].as_i64().unwrap_or_default();
                if seq <= *last_seq {
                    continue;
                }
                *last_seq = seq;
                if output == Output::Json {
                    continue;
                }
                let line = data["line"].as_str().unwrap_or_default();
                // A closed pipe (`| head`) is not an error worth more than stopping to print.
                let _ = if data["stream"] == "stderr" {
                    writeln!(stderr.lock(), "{line}")
                } else {
                    writeln!(stdout.lock(), "{line}")
                };
            }
            "status" if output == Output::Text => {
                // A stream opens with the run's status; say each one once.
                if let Some(status) = data["status"].as_str() {
                    if matches!(status, "queued" | "running") && *last_status != status {
                        eprintln!("scriptd: run {run_id} {status}");
                        *last_status = status.to_string();
                    }
                }
            }
            "done" => return Ok(Step::Done(data)),
            _ => {}
        }
    }
    Ok(Step::Broken)
}

/// Starts a script with its trigger token. A token cannot read streams, so this waits for the
/// end (the server caps a wait at 5 minutes) and prints the output tail.
pub async fn trigger(
    client: &Client,
    code: &str,
    token: &str,
    input: Option<Value>,
    detach: bool,
    output: Output,
) -> anyhow::Result<u8> {
    let mut req = client
        .request(Method::POST, &format!("/api/scripts/{code}/run"))
        .bearer_auth(token);
    if !detach {
        req = req.query(&[("wait", "true"), ("timeoutMs", "300000")]);
    }
    if let Some(input) = input {
        req = req.json(&input);
    }
    let resp = client.send(req).await?;
    let finished = resp.status() == reqwest::StatusCode::OK;
    let answer: Value = resp.json().await?;
    if !finished {
        show::started(output, &answer);
        if !detach {
            eprintln!("scriptd: the run had not ended after 5 minutes; it goes on");
        }
        return Ok(0);
    }
    if output == Output::Text {
        print!("{}", answer["outputTail"].as_str().unwrap_or_default());
    }
    show::finished(output, &answer);
    Ok(status_code(&answer))
}
