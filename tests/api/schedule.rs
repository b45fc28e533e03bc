//! Cron schedules through the API: previews, firing, overlap, disabling.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{both_backends, Backend, TestApp};

both_backends!(
    an_every_second_schedule_fires_runs_and_stops_when_disabled,
    a_single_script_slower_than_its_period_skips_overlapping_ticks,
    ticks_missed_while_down_are_recorded_or_caught_up_once,
    skipped_ticks_never_push_real_runs_out_of_the_history,
    a_disabled_script_shows_no_next_run_until_enabled_again,
);

/// A disabled script is never fired, so neither the script nor the list shows a next run for
/// it (which would otherwise stay frozen in the past); enabled again, it shows the next tick.
async fn a_disabled_script_shows_no_next_run_until_enabled_again(b: Backend) {
    let app = TestApp::spawn(b).await;
    let created = app
        .create_script(json!({
            "name": "Hourly", "codeIdentifier": "hourly", "type": "bash", "script": "true",
            "schedule": {"enabled": true, "cron": "0 * * * *", "timezone": "UTC"}
        }))
        .await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/admin/scripts/{id}");
    let put = |enabled: bool| app.edit_script(id, "enabled", json!(enabled));
    let listed_next = || async {
        let list = app.get_json("/api/admin/scripts").await;
        list.as_array().unwrap()[0]["schedule"]["nextRunAt"].clone()
    };
    assert!(listed_next().await.is_string());

    let disabled = put(false).await;
    assert_eq!(disabled["schedule"]["enabled"], true);
    assert!(disabled["schedule"]["nextRunAt"].is_null(), "{disabled}");
    assert!(app.get_json(&path).await["schedule"]["nextRunAt"].is_null());
    assert!(listed_next().await.is_null());

    let enabled = put(true).await;
    let next: chrono::DateTime<chrono::Utc> = enabled["schedule"]["nextRunAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(next > chrono::Utc::now());
    assert_eq!(listed_next().await, enabled["schedule"]["nextRunAt"]);
}

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
    // Each skipped tick is in the history, naming the run it collided with, whose time span
    // holds the tick.
    let all = schedule_runs(&app, id).await;
    let skips: Vec<&Value> = all.iter().filter(|r| r["status"] == "skipped").collect();
    assert!(
        !skips.is_empty(),
        "skipped ticks are in the history: {all:?}"
    );
    for skip in skips {
        assert_eq!(skip["trigger"], "schedule");
        assert_eq!(skip["meta"]["skipped"]["reason"], "still_running");
        assert!(skip["startedAt"].is_null() && skip["exitCode"].is_null());
        let tick = skip["meta"]["tick"].as_str().unwrap();
        let other = skip["meta"]["skipped"]["runId"].as_str().unwrap();
        let collided = app.get_run(other).await;
        let started = collided["startedAt"].as_str().unwrap_or(tick);
        assert!(started <= tick, "{other} started after the tick {tick}");
        if let Some(end) = collided["finishedAt"].as_str() {
            assert!(tick <= end, "{other} ended before the tick {tick}");
        }
    }
    let filtered: Value = app
        .get_json(&format!(
            "/api/admin/scripts/runs?scriptId={id}&status=skipped"
        ))
        .await;
    assert!(!filtered["runs"].as_array().unwrap().is_empty());
}

/// A script every second, stopped for over three seconds: with catch-up `none` the missed
/// ticks are one skipped entry; with `last`, one run fires for the latest of them.
async fn ticks_missed_while_down_are_recorded_or_caught_up_once(b: Backend) {
    let app = TestApp::spawn(b).await;
    let mut ids = Vec::new();
    for catch_up in ["none", "last"] {
        let created = app
            .create_script(json!({
                "name": catch_up, "codeIdentifier": format!("catch-up-{catch_up}"), "type": "bash",
                "script": "true", "concurrency": "parallel",
                "schedule": {"enabled": true, "cron": "* * * * * *", "catchUp": catch_up}
            }))
            .await;
        assert_eq!(created["schedule"]["catchUp"], catch_up);
        ids.push(created["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        wait_for_runs(&app, id, 1).await;
    }
    let (dir, url) = app.stop().await;
    let stopped = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let restarted = chrono::Utc::now();
    let app = TestApp::start_on(dir, url, Default::default()).await;

    let deadline = Instant::now() + Duration::from_secs(15);
    let (missed, caught_up) = loop {
        let none = schedule_runs(&app, &ids[0]).await;
        let last = schedule_runs(&app, &ids[1]).await;
        let missed = none.into_iter().find(|r| r["status"] == "skipped");
        let caught = last.into_iter().find(|r| r["meta"]["catchUp"] == true);
        if let (Some(m), Some(c)) = (&missed, &caught) {
            break (m.clone(), c.clone());
        }
        assert!(Instant::now() < deadline, "no missed entry or catch-up run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(missed["meta"]["skipped"]["reason"], "missed");
    assert!(
        missed["meta"]["skipped"]["ticks"].as_i64().unwrap() >= 3,
        "{missed}"
    );
    let tick =
        |v: &Value| -> chrono::DateTime<chrono::Utc> { v.as_str().unwrap().parse().unwrap() };
    assert!(tick(&missed["meta"]["tick"]) <= stopped + chrono::Duration::seconds(1));
    let latest = tick(&missed["meta"]["skipped"]["lastTick"]);
    assert!(
        latest >= restarted - chrono::Duration::seconds(1),
        "{missed}"
    );
    // The catch-up run is for the latest missed tick, not the first.
    let caught_tick = tick(&caught_up["meta"]["tick"]);
    assert!(
        caught_tick >= restarted - chrono::Duration::seconds(1),
        "{caught_up}"
    );
    assert_eq!(caught_up["trigger"], "schedule");
    app.wait_run(caught_up["id"].as_str().unwrap()).await;
    // Once: the ticks after it fire as usual, with no second catch-up.
    wait_for_runs(&app, &ids[1], 3).await;
    let runs = schedule_runs(&app, &ids[1]).await;
    assert_eq!(
        runs.iter().filter(|r| r["meta"]["catchUp"] == true).count(),
        1
    );
    assert_eq!(
        runs.iter().filter(|r| r["status"] == "skipped").count(),
        0,
        "caught up, not skipped"
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

/// With a retention of 2 runs, a script that skips a tick for each run it makes still keeps
/// its 2 latest real runs: skipped entries are kept apart, under a cap of their own.
async fn skipped_ticks_never_push_real_runs_out_of_the_history(b: Backend) {
    let app = TestApp::spawn_with(
        b,
        crate::helpers::Options {
            keep_runs: Some(2),
            ..Default::default()
        },
    )
    .await;
    let created = app
        .create_script(json!({
            "name": "Busy", "codeIdentifier": "busy", "type": "bash", "script": "sleep 1.3",
            "schedule": {"enabled": true, "cron": "* * * * * *"}
        }))
        .await;
    let id = created["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let runs = schedule_runs(&app, id).await;
        let count = |s: &str| runs.iter().filter(|r| r["status"] == s).count();
        assert!(
            count("skipped") <= 2,
            "skipped entries are capped: {runs:?}"
        );
        if count("succeeded") == 2 && count("skipped") == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "real runs were pushed out: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut doc = app.get_json(&format!("/api/admin/scripts/{id}")).await;
    doc["schedule"]["enabled"] = json!(false);
    app.admin(Method::PUT, &format!("/api/admin/scripts/{id}"))
        .json(&doc)
        .send()
        .await
        .unwrap();
}
