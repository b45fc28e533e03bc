//! What the client prints: aligned columns for people, the API's JSON for scripts.

use serde_json::Value;

use super::Output;

fn json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field].as_str().unwrap_or("-")
}

/// Prints rows with each column as wide as its widest cell.
fn table(head: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(head.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}

fn outcome(run: &Value) -> String {
    match (run["exitCode"].as_i64(), run["signal"].as_i64()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => String::new(),
    }
}

pub fn scripts(output: Output, scripts: &Value) {
    if output == Output::Json {
        return json(scripts);
    }
    let rows = scripts
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let schedule = if s["schedule"]["enabled"] == true {
                text(&s["schedule"], "cron").to_string()
            } else {
                "-".into()
            };
            let last = match s.get("lastRun") {
                Some(r) => format!("{} {}", text(r, "status"), text(r, "queuedAt")),
                None => "-".into(),
            };
            vec![
                text(s, "codeIdentifier").into(),
                text(s, "name").into(),
                format!("{}/{}", text(s, "type"), text(s, "runner")),
                schedule,
                last,
            ]
        })
        .collect();
    table(&["CODE", "NAME", "TYPE", "SCHEDULE", "LAST RUN"], rows);
}

pub fn script(output: Output, s: &Value) {
    if output == Output::Json {
        return json(s);
    }
    for (label, value) in [
        ("name", text(s, "name").to_string()),
        ("code", text(s, "codeIdentifier").to_string()),
        ("id", text(s, "id").to_string()),
        (
            "type",
            format!("{} ({})", text(s, "type"), text(s, "runner")),
        ),
        ("enabled", s["enabled"].to_string()),
        ("concurrency", text(s, "concurrency").to_string()),
        ("timeout", format!("{} ms", s["timeoutMs"])),
        (
            "schedule",
            if s["schedule"]["enabled"] == true {
                format!(
                    "{} ({}), next {}",
                    text(&s["schedule"], "cron"),
                    text(&s["schedule"], "timezone"),
                    text(&s["schedule"], "nextRunAt")
                )
            } else {
                "off".into()
            },
        ),
        ("trigger", s["apiTrigger"]["enabled"].to_string()),
    ] {
        println!("{label:<12} {value}");
    }
    for var in s["env"].as_array().into_iter().flatten() {
        let value = if var["secret"] == true {
            "(secret)"
        } else {
            text(var, "value")
        };
        println!("{:<12} {}={value}", "env", text(var, "key"));
    }
    println!("\n{}", text(s, "script"));
}

pub fn runs(output: Output, page: &Value) {
    if output == Output::Json {
        return json(page);
    }
    let rows = page["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                text(r, "id").into(),
                text(r, "status").into(),
                text(r, "trigger").into(),
                r["startedAt"]
                    .as_str()
                    .unwrap_or(text(r, "queuedAt"))
                    .into(),
                r["durationMs"]
                    .as_i64()
                    .map_or("-".into(), |ms| format!("{ms} ms")),
                outcome(r),
            ]
        })
        .collect();
    table(
        &["RUN", "STATUS", "TRIGGER", "STARTED", "DURATION", "RESULT"],
        rows,
    );
}

pub fn started(output: Output, answer: &Value) {
    match output {
        Output::Json => json(answer),
        Output::Text => println!("{}", text(answer, "runId")),
    }
}

pub fn canceled(output: Output, answer: &Value) {
    match output {
        Output::Json => json(answer),
        Output::Text => eprintln!("scriptd: canceling run {}", text(answer, "runId")),
    }
}

/// The end of a followed run: its record for scripts, a status line for people.
pub fn finished(output: Output, run: &Value) {
    match output {
        Output::Json => json(run),
        Output::Text => {
            let mut line = format!("scriptd: run {} {}", text(run, "id"), text(run, "status"));
            let how = outcome(run);
            if !how.is_empty() {
                line.push_str(&format!(" ({how})"));
            }
            if let Some(error) = run["error"].as_str() {
                line.push_str(&format!(": {error}"));
            }
            eprintln!("{line}");
        }
    }
}
