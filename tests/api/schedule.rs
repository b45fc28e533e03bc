//! Cron schedules through the API: previews, firing, overlap, disabling.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{both_backends, Backend, TestApp};

both_backends!(
    an_every_second_schedule_fires_runs_and_stops_when_disabled,
    a_single_script_slower_than_its_period_skips_overlapping_ticks,
);

async fn schedule_runs(app: &TestApp, id: &str) -> Vec<Value> {
    let v: Value = app
        .get_json(&format!("/api/admin/scripts/runs?scriptId={id}&limit=200"))
        .await;
    v["runs"].as_array().unwrap().clone()
}

async fn wait_for_runs(app: &TestApp, id: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let runs = schedule_runs(app, id).await;
        let done = runs.iter().filter(|r| r["status"] == "succeeded").count();
        if done >= n {
            return runs;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} scheduled runs finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn an_every_second_schedule_fires_runs_and_stops_when_disabled(b: Backend) {
    let app = TestApp::spawn(b).await;
    let created = app
        .create_script(json!({
            "name": "Tick", "codeIdentifier": "tick", "type": "bash", "script": "echo tick",
            "concurrency": "parallel",
            "schedule": {"enabled": true, "cron": "* * * * * *", "timezone": "Europe/Berlin"}
        }))
        .await;
    let id = created["id"].as_str().unwrap();
    assert!(created["schedule"]["nextRunAt"].is_string());
    let runs = wait_for_runs(&app, id, 3).await;
    let mut ticks: Vec<chrono::DateTime<chrono::Utc>> = Vec::new();
    for r in runs.iter().filter(|r| r["status"] == "succeeded") {
        assert_eq!(r["trigger"], "schedule");
        let tick: chrono::DateTime<chrono::Utc> =
            r["meta"]["tick"].as_str().unwrap().parse().unwrap();
        let queued: chrono::DateTime<chrono::Utc> =
            r["queuedAt"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            tick.timestamp_subsec_millis(),
            0,
            "ticks fall on whole seconds"
        );
        let late = (queued - tick).num_milliseconds();
        assert!((0..1000).contains(&late), "fired {late} ms after its tick");
        ticks.push(tick);
    }
    ticks.sort();
    ticks.dedup();
    assert_eq!(
        ticks.len(),
        runs.iter().filter(|r| r["status"] == "succeeded").count(),
        "each tick fires once"
    );

    let mut update = app
        .call(Method::GET, &format!("/api/admin/scripts/{id}"))
        .await
        .json::<Value>()
        .await
        .unwrap();
    update["schedule"]["enabled"] = json!(false);
    let resp = app
        .admin(Method::PUT, &format!("/api/admin/scripts/{id}"))
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let after: Value = resp.json().await.unwrap();
    assert!(after["schedule"]["nextRunAt"].is_null());
    // Let anything already started finish, then watch a few periods: nothing new fires.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = schedule_runs(&app, id).await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        schedule_runs(&app, id).await.len(),
        before,
        "a disabled schedule fires no more"
    );
}

async fn a_single_script_slower_than_its_period_skips_overlapping_ticks(b: Backend) {
    let app = TestApp::spawn(b).await;
    let created = app
        .create_script(json!({
            "name": "Slow", "codeIdentifier": "slow", "type": "bash", "script": "sleep 1.6",
            "schedule": {"enabled": true, "cron": "* * * * * *"}
        }))
        .await;
    let id = created["id"].as_str().unwrap();
    let runs = wait_for_runs(&app, id, 2).await;
    let mut spans: Vec<(String, String)> = runs
        .iter()
        .filter(|r| r["status"] == "succeeded")
        .map(|r| {
            (
                r["startedAt"].as_str().unwrap().to_string(),
                r["finishedAt"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "runs overlapped: {pair:?}");
    }
    let metrics = app
        .call(reqwest::Method::GET, "/metrics")
        .await
        .text()
        .await
        .unwrap();
    let skipped = crate::helpers::metric(&metrics, "scriptd_schedule_skipped_total", &[]).unwrap();
    assert!(
        skipped >= 1.0,
        "overlapping ticks are skipped and counted:\n{metrics}"
    );
}

#[tokio::test]
async fn schedule_preview_lists_fire_times_and_names_bad_fields() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ok: Value = app.get_json("/api/admin/scripts/schedule-preview?cron=30%202%20*%20*%20*&timezone=America/New_York&from=2026-03-07T12:00:00Z&count=3").await;
    assert_eq!(
        ok["times"],
        json!([
            "2026-03-08T07:00:00.000Z",
            "2026-03-09T06:30:00.000Z",
            "2026-03-10T06:30:00.000Z"
        ])
    );
    let default_count: Value = app
        .get_json("/api/admin/scripts/schedule-preview?cron=@daily")
        .await;
    assert_eq!(default_count["times"].as_array().unwrap().len(), 5);
    for (query, field) in [
        ("cron=nope", "cron"),
        ("cron=*%20*%20*%20*%20*&timezone=Not/AZone", "timezone"),
        ("cron=@daily&count=101", "count"),
        ("cron=@daily&from=yesterday", "from"),
    ] {
        let resp = app
            .call(
                Method::GET,
                &format!("/api/admin/scripts/schedule-preview?{query}"),
            )
            .await;
        assert_eq!(resp.status(), 400, "{query}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["field"], field, "{query}");
    }
}
