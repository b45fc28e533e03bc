//! Runs through the API: statuses, exit codes, streams, environment, concurrency, history.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{
    both_backends, execute_sql, pg_schema_url, pg_url, query_numbers, store_with_a_running_run,
    Backend, Options, TestApp,
};

both_backends!(
    each_way_a_script_ends_is_recorded,
    stdout_and_stderr_are_tagged_and_input_reaches_the_script,
    node_scripts_run_from_a_private_file_that_is_removed,
    a_run_that_cannot_start_fails_with_a_clear_error,
    disabled_and_browser_scripts_are_refused,
    single_refuses_a_second_run_queue_waits_parallel_overlaps,
    the_global_limit_queues_runs_in_order,
    runs_are_listed_newest_first_with_cursor_pagination,
    the_log_is_cut_at_the_cap_and_old_runs_are_pruned,
    deleting_a_script_cancels_its_runs,
    a_graceful_shutdown_cancels_running_runs_and_leaves_queued_ones_for_the_next_start,
    lines_written_while_the_log_table_is_unavailable_are_stored_once_it_is_back,
    stats_count_runs_per_hour_by_status_and_what_is_active,
    runs_filter_by_trigger_and_time_range,
    a_claim_takes_no_more_runs_than_it_asks_for,
    a_running_run_shows_its_tail_and_log_size_so_far,
);

/// While a run goes on, its record shows the output so far (saved every 2 s): the tail and
/// the log's size, which a crash then keeps.
async fn a_running_run_shows_its_tail_and_log_size_so_far(b: Backend) {
    let app = TestApp::spawn(b).await;
    let id = app
        .bash("echo first; echo second; sleep 30", json!({}))
        .await;
    let run = app.run(&id).await;
    let r = app
        .wait_until(&run, |r| {
            r["outputTail"] == "first\nsecond\n" || r["status"] != "running"
        })
        .await;
    assert_eq!(r["status"], "running", "{r}");
    assert_eq!(r["outputTail"], "first\nsecond\n", "{r}");
    assert_eq!(r["logBytes"], 13, "{r}");
    assert_eq!(app.cancel(&run).await.status(), 202);
    app.wait_run(&run).await;
}

async fn runs_filter_by_trigger_and_time_range(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (id, code, token) = app
        .triggered_bash("true", json!({"concurrency": "parallel"}))
        .await;
    let first = app.run(&id).await;
    app.wait_run(&first).await;
    let started = app.trigger(&code, &token).await;
    let api_run = app.wait_run(started["runId"].as_str().unwrap()).await;
    let last = app.run(&id).await;
    app.wait_run(&last).await;
    let ids = |page: &Value| -> Vec<String> {
        page["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    let api_id = api_run["id"].as_str().unwrap().to_string();
    let by_api = app.get_json("/api/admin/scripts/runs?trigger=api").await;
    assert_eq!(ids(&by_api), std::slice::from_ref(&api_id));
    let manual = app.get_json("/api/admin/scripts/runs?trigger=manual").await;
    assert_eq!(ids(&manual), [last.clone(), first.clone()]);
    // A time range is a range of ids: from is inclusive, to exclusive.
    let at = api_run["queuedAt"].as_str().unwrap().replace('+', "%2B");
    let from = app
        .get_json(&format!("/api/admin/scripts/runs?from={at}"))
        .await;
    assert_eq!(ids(&from), [last.clone(), api_id.clone()]);
    let to = app
        .get_json(&format!("/api/admin/scripts/runs?to={at}&trigger="))
        .await;
    assert_eq!(ids(&to), std::slice::from_ref(&first));
    for bad in ["trigger=cron", "from=yesterday", "to=2026-13-01T00:00:00Z"] {
        let resp = app
            .call(Method::GET, &format!("/api/admin/scripts/runs?{bad}"))
            .await;
        assert_eq!(resp.status(), 400, "{bad}");
    }
}

async fn stats_count_runs_per_hour_by_status_and_what_is_active(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ok = app.bash("true", json!({"concurrency": "parallel"})).await;
    let bad = app.bash("exit 2", json!({})).await;
    let slow = app.bash("sleep 30", json!({})).await;
    for id in [&ok, &ok, &bad] {
        let run = app.run(id).await;
        app.wait_run(&run).await;
    }
    let running = app.run(&slow).await;
    app.wait_until(&running, |r| r["status"] == "running").await;
    let stats = app.get_json("/api/admin/scripts/runs/stats").await;
    let hours = stats["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 24, "{stats}");
    let total = |status: &str| -> i64 {
        hours
            .iter()
            .map(|h| h["counts"][status].as_i64().unwrap_or(0))
            .sum()
    };
    assert_eq!(total("succeeded"), 2, "{stats}");
    assert_eq!(total("failed"), 1, "{stats}");
    assert_eq!(total("running"), 1, "{stats}");
    assert_eq!(stats["running"], 1);
    assert_eq!(stats["queued"], 0);
    // Hours are consecutive, oldest first, the current one last.
    let starts: Vec<chrono::DateTime<chrono::Utc>> = hours
        .iter()
        .map(|h| h["start"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(starts
        .windows(2)
        .all(|w| w[1] - w[0] == chrono::Duration::hours(1)));
    assert!(chrono::Utc::now() - starts[23] < chrono::Duration::hours(1));
    let one = app.get_json("/api/admin/scripts/runs/stats?hours=1").await;
    assert_eq!(one["hours"].as_array().unwrap().len(), 1);
    for bad_hours in ["0", "169", "x"] {
        let resp = app
            .call(
                Method::GET,
                &format!("/api/admin/scripts/runs/stats?hours={bad_hours}"),
            )
            .await;
        assert_eq!(resp.status(), 400, "hours={bad_hours}");
    }
    app.cancel(&running).await;
}

async fn each_way_a_script_ends_is_recorded(b: Backend) {
    let app = TestApp::spawn(b).await;
    let cases = [
        ("exit 0", json!({}), "succeeded", Some(0), None),
        ("exit 7", json!({}), "failed", Some(7), None),
        ("kill -KILL $$", json!({}), "failed", None, Some(9)),
        (
            "sleep 30",
            json!({"timeoutMs": 1000}),
            "timed_out",
            None,
            None,
        ),
    ];
    for (script, extra, status, code, signal) in cases {
        let id = app.bash(script, extra).await;
        let run = app.run(&id).await;
        let done = app.wait_run(&run).await;
        assert_eq!(done["status"], status, "{script}: {done}");
        assert_eq!(done["exitCode"].as_i64(), code.map(i64::from), "{script}");
        assert_eq!(done["signal"].as_i64(), signal.map(i64::from), "{script}");
        assert_eq!(done["trigger"], "manual");
        assert_eq!(done["meta"]["user"], "admin");
        assert!(done["startedAt"].is_string() && done["finishedAt"].is_string());
        assert!(done["durationMs"].as_i64().unwrap() >= 0);
    }
    let id = app.bash("echo started; sleep 30", json!({})).await;
    let run = app.run(&id).await;
    app.wait_status(&run, "running").await;
    let resp = app.cancel(&run).await;
    assert_eq!(resp.status(), 202);
    let done = app.wait_run(&run).await;
    assert_eq!(done["status"], "canceled");
    let again = app.cancel(&run).await;
    assert_eq!(again.status(), 409);
    let unknown = app
        .call(Method::POST, "/api/admin/scripts/runs/nope/cancel")
        .await;
    assert_eq!(unknown.status(), 404);
}

async fn stdout_and_stderr_are_tagged_and_input_reaches_the_script(b: Backend) {
    let app = TestApp::spawn(b).await;
    let id = app
        .bash(
            "echo out; echo err >&2; echo \"input=$SCRIPTD_INPUT\"; echo \"trigger=$SCRIPTD_TRIGGER\"; \
             echo \"run=$SCRIPTD_RUN_ID\"; echo \"script=$SCRIPTD_SCRIPT_ID\"; printf '\\xff\\xfe\\n'",
            json!({}),
        )
        .await;
    let resp = app
        .start_run(&id, Some(json!({"input": {"project": "p1"}})))
        .await;
    assert_eq!(resp.status(), 202);
    let run = resp.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_string();
    let done = app.wait_run(&run).await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["input"], json!({"project": "p1"}));
    let text = app
        .call(
            Method::GET,
            &format!("/api/admin/scripts/runs/{run}/stream"),
        )
        .await
        .text()
        .await
        .unwrap();
    let lines = crate::helpers::log_lines(&crate::helpers::parse_sse(&text));
    let find = |needle: &str| {
        lines
            .iter()
            .find(|(_, _, l)| l.starts_with(needle))
            .cloned()
            .unwrap()
    };
    assert_eq!(find("out").1, "stdout");
    assert_eq!(find("err").1, "stderr");
    assert_eq!(find("input=").2, r#"input={"project":"p1"}"#);
    assert_eq!(find("trigger=").2, "trigger=manual");
    assert_eq!(find("run=").2, format!("run={run}"));
    assert_eq!(find("script=").2, format!("script={id}"));
    assert!(
        lines.iter().any(|(_, _, l)| l == "\u{fffd}\u{fffd}"),
        "invalid UTF-8 is replaced: {lines:?}"
    );
    let tail = done["outputTail"].as_str().unwrap();
    assert!(tail.contains("out\n") && tail.contains("err\n"));
}

async fn node_scripts_run_from_a_private_file_that_is_removed(b: Backend) {
    let app = TestApp::spawn(b).await;
    let created = app
        .create_script(json!({
            "name": "N", "codeIdentifier": "n", "type": "node",
            "script": "const fs = require('fs'); const f = process.argv[1]; \
                       console.log('mode=' + (fs.statSync(f).mode & 0o777).toString(8)); \
                       console.log('file=' + f); console.error('to stderr'); process.exit(4)"
        }))
        .await;
    let run = app.run(created["id"].as_str().unwrap()).await;
    let done = app.wait_run(&run).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["exitCode"], 4);
    let log = app.log(&run).await;
    assert!(log.contains("mode=600"), "{log}");
    assert!(log.contains("to stderr"));
    let file = log.lines().find_map(|l| l.strip_prefix("file=")).unwrap();
    assert!(
        !std::path::Path::new(file).exists(),
        "the script file is removed afterwards"
    );
}

async fn a_run_that_cannot_start_fails_with_a_clear_error(b: Backend) {
    let app = TestApp::spawn(b).await;
    let id = app
        .bash("pwd", json!({"defaultWorkingDirectory": "/no/such/dir"}))
        .await;
    let done = app.wait_run(&app.run(&id).await).await;
    assert_eq!(done["status"], "failed");
    assert!(
        done["error"].as_str().unwrap().contains("/no/such/dir"),
        "{done}"
    );

    let node = app
        .create_script(json!({
            "name": "No node", "codeIdentifier": "no-node", "type": "node", "script": "1",
            "env": [{"key": "PATH", "value": "/nonexistent"}]
        }))
        .await;
    let done = app
        .wait_run(&app.run(node["id"].as_str().unwrap()).await)
        .await;
    assert_eq!(done["status"], "failed");
    assert!(
        done["error"]
            .as_str()
            .unwrap()
            .contains("node was not found"),
        "{done}"
    );

    let cwd = app
        .bash("pwd", json!({"defaultWorkingDirectory": "/tmp"}))
        .await;
    let run = app.run(&cwd).await;
    app.wait_run(&run).await;
    assert_eq!(app.log(&run).await.trim(), "/tmp");
}

async fn disabled_and_browser_scripts_are_refused(b: Backend) {
    let app = TestApp::spawn(b).await;
    let id = app.bash("true", json!({"enabled": false})).await;
    assert_eq!(app.start_run(&id, None).await.status(), 409);
    let browser = app
        .create_script(json!({"name": "B", "codeIdentifier": "b", "type": "browser", "script": "console.log(1)"}))
        .await;
    assert_eq!(
        app.start_run(browser["id"].as_str().unwrap(), None)
            .await
            .status(),
        400
    );
    assert_eq!(app.start_run("missing", None).await.status(), 404);
    let bad = app
        .admin(Method::POST, &format!("/api/admin/scripts/{id}/run"))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let runs: Value = app.get_json("/api/admin/scripts/runs").await;
    assert_eq!(runs["runs"], json!([]), "refused runs leave no record");
}

async fn single_refuses_a_second_run_queue_waits_parallel_overlaps(b: Backend) {
    let app = TestApp::spawn(b).await;
    let single = app.bash("sleep 30", json!({})).await;
    let first = app.run(&single).await;
    let second = app.start_run(&single, None).await;
    assert_eq!(second.status(), 409);
    app.cancel(&first).await;
    app.wait_run(&first).await;

    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("order");
    let queue = app
        .bash(
            &format!(
                "echo start-$SCRIPTD_RUN_ID >> {0}; sleep 0.3; echo end-$SCRIPTD_RUN_ID >> {0}",
                marker.display()
            ),
            json!({"concurrency": "queue"}),
        )
        .await;
    let runs = [
        app.run(&queue).await,
        app.run(&queue).await,
        app.run(&queue).await,
    ];
    for r in &runs {
        assert_eq!(app.wait_run(r).await["status"], "succeeded");
    }
    let order = std::fs::read_to_string(&marker).unwrap();
    let expected: String = runs
        .iter()
        .map(|r| format!("start-{r}\nend-{r}\n"))
        .collect();
    assert_eq!(order, expected, "queued runs take turns, in order");

    let parallel = app
        .bash("sleep 30", json!({"concurrency": "parallel"}))
        .await;
    let a = app.run(&parallel).await;
    let b2 = app.run(&parallel).await;
    app.wait_status(&a, "running").await;
    app.wait_status(&b2, "running").await;
    for r in [&a, &b2] {
        app.cancel(r).await;
        assert_eq!(app.wait_run(r).await["status"], "canceled");
    }
}

async fn the_global_limit_queues_runs_in_order(b: Backend) {
    let app = TestApp::spawn_with(
        b,
        Options {
            max_concurrent_runs: Some(1),
            ..Default::default()
        },
    )
    .await;
    let slow = app.bash("sleep 30", json!({})).await;
    let quick = app.bash("echo quick", json!({})).await;
    // With the slot free, the admission itself starts the run; with none, runs wait queued.
    let blocker = app.run(&slow).await;
    assert_eq!(app.get_run(&blocker).await["status"], "running");
    let waiting = app.run(&quick).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.get_run(&waiting).await["status"], "queued");
    // A queued run can be canceled before it starts; another one starts when the slot frees.
    let canceled = app.run(&app.bash("echo never", json!({})).await).await;
    app.cancel(&canceled).await;
    assert_eq!(app.wait_run(&canceled).await["status"], "canceled");
    assert!(app.get_run(&canceled).await["startedAt"].is_null());
    app.cancel(&blocker).await;
    let done = app.wait_run(&waiting).await;
    assert_eq!(done["status"], "succeeded");
    // Woken by the end that freed the slot, not by the claim loop's 5 s safety poll.
    let at = |run: &Value, field: &str| {
        chrono::DateTime::parse_from_rfc3339(run[field].as_str().unwrap()).unwrap()
    };
    let freed = at(&app.get_run(&blocker).await, "finishedAt");
    let gap = at(&done, "startedAt") - freed;
    assert!(
        gap < chrono::Duration::seconds(2),
        "the queued run started {gap} after the slot freed"
    );
}

async fn runs_are_listed_newest_first_with_cursor_pagination(b: Backend) {
    let app = TestApp::spawn(b).await;
    let id = app.bash("exit 0", json!({"concurrency": "parallel"})).await;
    let other = app.bash("exit 1", json!({})).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let r = app.run(&id).await;
        app.wait_run(&r).await;
        ids.push(r);
    }
    let failed = app.run(&other).await;
    app.wait_run(&failed).await;
    let scripts = app.get_json("/api/admin/scripts").await;
    let last_of = |script: &str| {
        scripts
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == script)
            .unwrap()["lastRun"]["id"]
            .clone()
    };
    assert_eq!(
        last_of(&id),
        ids[4].as_str(),
        "each script lists its newest run"
    );
    assert_eq!(last_of(&other), failed.as_str());
    let page: Value = app
        .get_json(&format!("/api/admin/scripts/runs?scriptId={id}&limit=3"))
        .await;
    let got: Vec<&str> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[4].as_str(), ids[3].as_str(), ids[2].as_str()]);
    let cursor = page["nextBefore"].as_str().unwrap();
    let page2: Value = app
        .get_json(&format!(
            "/api/admin/scripts/runs?scriptId={id}&limit=3&before={cursor}"
        ))
        .await;
    let got2: Vec<&str> = page2["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(got2, vec![ids[1].as_str(), ids[0].as_str()]);
    assert!(page2["nextBefore"].is_null());
    // A page that ends exactly at the oldest run says there is nothing more.
    let exact: Value = app
        .get_json(&format!("/api/admin/scripts/runs?scriptId={id}&limit=5"))
        .await;
    assert_eq!(exact["runs"].as_array().unwrap().len(), 5);
    assert!(exact["nextBefore"].is_null(), "{exact}");
    let by_status: Value = app.get_json("/api/admin/scripts/runs?status=failed").await;
    assert_eq!(by_status["runs"].as_array().unwrap().len(), 1);
    assert_eq!(by_status["runs"][0]["id"], failed.as_str());
    let bad = app
        .call(Method::GET, "/api/admin/scripts/runs?status=exploded")
        .await;
    assert_eq!(bad.status(), 400);
    // A cursor is an id: anything else is refused rather than read as "from the start".
    for cursor in ["zzzz", "nonexistent", "1"] {
        let resp = app
            .call(
                Method::GET,
                &format!("/api/admin/scripts/runs?before={cursor}"),
            )
            .await;
        assert_eq!(resp.status(), 400, "{cursor}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["field"], "before", "{body}");
    }
    // The same cursor in capitals is the same cursor.
    let upper: Value = app
        .get_json(&format!(
            "/api/admin/scripts/runs?scriptId={id}&limit=3&before={}",
            cursor.to_uppercase()
        ))
        .await;
    assert_eq!(upper["runs"], page2["runs"]);
}

async fn the_log_is_cut_at_the_cap_and_old_runs_are_pruned(b: Backend) {
    let app = TestApp::spawn_with(
        b,
        Options {
            max_log_bytes: Some(10_000),
            keep_runs: Some(2),
            ..Default::default()
        },
    )
    .await;
    let id = app.bash("seq 1 20000; echo last-line", json!({})).await;
    let run = app.run(&id).await;
    let done = app.wait_run(&run).await;
    assert_eq!(done["status"], "succeeded", "the run goes on past the cap");
    assert_eq!(done["logTruncated"], true);
    assert!(
        done["outputTail"].as_str().unwrap().contains("last-line"),
        "the tail still has the end"
    );
    let log = app.log(&run).await;
    assert!(
        log.len() <= 10_200,
        "stored log is capped: {} bytes",
        log.len()
    );
    assert!(log.starts_with("1\n2\n3\n"));
    assert!(
        log.trim_end().ends_with("not stored"),
        "a marker shows the cut"
    );

    let mut runs = vec![run];
    for _ in 0..3 {
        let r = app.run(&id).await;
        app.wait_run(&r).await;
        runs.push(r);
    }
    // Retention applies just after a run is recorded as ended: wait for it, bounded.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let list = loop {
        let list = app
            .get_json(&format!("/api/admin/scripts/runs?scriptId={id}"))
            .await;
        if list["runs"].as_array().unwrap().len() <= 2 {
            break list;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "old runs were not pruned: {list}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let kept: Vec<&str> = list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(kept, vec![runs[3].as_str(), runs[2].as_str()]);
    let gone = app
        .call(Method::GET, &format!("/api/admin/scripts/runs/{}", runs[0]))
        .await;
    assert_eq!(gone.status(), 404);
    assert!(app.log(&runs[0]).await.contains("not_found"));
}

async fn deleting_a_script_cancels_its_runs(b: Backend) {
    let app = TestApp::spawn(b).await;
    let marker = format!("scriptd-del-{}", uuid::Uuid::now_v7().simple());
    let id = app
        .bash(&format!("exec -a {marker} sleep 60"), json!({}))
        .await;
    let run = app.run(&id).await;
    app.wait_status(&run, "running").await;
    crate::helpers::eventually(10, "the script starts", || {
        !crate::helpers::processes_with(&marker).is_empty()
    })
    .await;
    let resp = app
        .call(Method::DELETE, &format!("/api/admin/scripts/{id}"))
        .await;
    assert_eq!(resp.status(), 204);
    crate::helpers::eventually(15, "the process is gone", || {
        crate::helpers::processes_with(&marker).is_empty()
    })
    .await;
}

async fn a_graceful_shutdown_cancels_running_runs_and_leaves_queued_ones_for_the_next_start(
    b: Backend,
) {
    let app = TestApp::spawn_with(
        b,
        Options {
            max_concurrent_runs: Some(1),
            ..Default::default()
        },
    )
    .await;
    let marker = format!("scriptd-stop-{}", uuid::Uuid::now_v7().simple());
    let running = app
        .run(
            &app.bash(&format!("exec -a {marker} sleep 60"), json!({}))
                .await,
        )
        .await;
    let queued = app.run(&app.bash("echo never", json!({})).await).await;
    app.wait_status(&running, "running").await;
    crate::helpers::eventually(10, "the script starts", || {
        !crate::helpers::processes_with(&marker).is_empty()
    })
    .await;
    let (dir, url) = app.stop().await;
    assert!(
        crate::helpers::processes_with(&marker).is_empty(),
        "no process outlives the server"
    );
    let app = TestApp::start_on(dir, url, Default::default()).await;
    let r = app.get_run(&running).await;
    assert_eq!(r["status"], "canceled", "{r}");
    assert!(r["finishedAt"].is_string());
    // The queue lives in the store: a run still waiting is nobody's, and runs at the next start.
    let r = app.wait_run(&queued).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert!(app.log(&queued).await.contains("never"));
}

/// Two nodes share one PostgreSQL database: when one dies mid-run (here: a run held by a lease
/// nobody renews), another node marks the run failed once the lease expires. Each node's lease
/// length is its own: B's short lease does not expire A's live runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_node_fails_the_runs_of_a_node_that_died() {
    use sqlx::Connection;
    if crate::helpers::pg_url().is_none() {
        return;
    }
    let url = crate::helpers::pg_schema_url().await;
    let node_a = TestApp::start_on(
        tempfile::tempdir().unwrap(),
        url.clone(),
        Default::default(),
    )
    .await;
    let script = node_a.bash("sleep 60", json!({})).await;
    let orphan = node_a.run(&script).await;
    node_a.wait_status(&orphan, "running").await;
    // Node A "dies": its row stays running, held by a lease nobody renews, long expired.
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(
        "UPDATE runs SET node_id = 'vanished-node', owner = 'vanished-lease', lease_until = 0 \
         WHERE id = $1",
    )
    .bind(&orphan)
    .execute(&mut conn)
    .await
    .unwrap();
    let node_b = TestApp::start_on(
        tempfile::tempdir().unwrap(),
        url,
        Options {
            run_lease: Some(Duration::from_millis(600)),
            ..Default::default()
        },
    )
    .await;
    let run = node_b.wait_run(&orphan).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["error"].as_str().unwrap().contains("heartbeat"),
        "{run}"
    );
    // Live runs of live nodes keep their leases.
    let live = node_b
        .run(&node_b.bash("sleep 2; echo alive", json!({})).await)
        .await;
    assert_eq!(node_b.wait_run(&live).await["status"], "succeeded");
    drop(node_a);
}

/// The database refuses log writes for a moment (a trigger that aborts every insert into the
/// log, added under the running server and dropped again): the batches are retried, and the
/// stored log is whole, in order, without repeats.
async fn lines_written_while_the_log_table_is_unavailable_are_stored_once_it_is_back(b: Backend) {
    let app = TestApp::spawn(b).await;
    let id = app
        .bash(
            "for i in $(seq 1 40); do echo line $i; sleep 0.02; done",
            json!({}),
        )
        .await;
    let run = app.run(&id).await;
    app.wait_status(&run, "running").await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (refuse, allow): (&[&str], &[&str]) = match b {
        Backend::Sqlite => (
            &["CREATE TRIGGER refuse BEFORE INSERT ON run_log_chunks \
               BEGIN SELECT RAISE(ABORT, 'log storage down'); END"],
            &["DROP TRIGGER refuse"],
        ),
        Backend::Postgres => (
            &[
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'log storage down'; END $$",
                "CREATE TRIGGER refuse BEFORE INSERT ON run_log_chunks \
                 FOR EACH ROW EXECUTE FUNCTION refuse()",
            ],
            &["DROP TRIGGER refuse ON run_log_chunks"],
        ),
    };
    execute_sql(&app.database_url, refuse).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    execute_sql(&app.database_url, allow).await;
    let done = app.wait_run(&run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let expected: String = (1..=40).map(|i| format!("line {i}\n")).collect();
    assert_eq!(app.log(&run).await, expected);
}

/// A claim for one run with two queued takes one: the other stays queued for a node with room,
/// rather than marked running here with nothing to run it.
async fn a_claim_takes_no_more_runs_than_it_asks_for(b: Backend) {
    let (store, url, _dir) = store_with_a_running_run(b).await;
    execute_sql(
        &url,
        &[
            "INSERT INTO runs (id, script_id, status, trigger_kind, queued_at) \
           VALUES ('q1', 's', 'queued', 'manual', 1), ('q2', 's', 'queued', 'manual', 2), \
           ('q3', 's', 'queued', 'manual', 3)",
        ],
    )
    .await;
    let owner = scriptd::store::Owner {
        node_id: "n".into(),
        lease: "lease-n".into(),
    };
    let now = chrono::Utc::now();
    let until = now + chrono::Duration::seconds(60);
    let claimed = store.claim(&owner, now, until, 1).await.unwrap();
    let ids: Vec<&str> = claimed.iter().map(|c| c.run.id.as_str()).collect();
    assert_eq!(ids, ["q1"], "the oldest, alone");
    let running = query_numbers(
        &url,
        "SELECT COUNT(*) FROM runs WHERE owner = 'lease-n' AND status = 'running'",
    )
    .await;
    assert_eq!(running, [1], "no other run was marked running");
    let claimed = store.claim(&owner, now, until, 2).await.unwrap();
    assert_eq!(claimed.len(), 2, "two asked, two left");
}

/// Two nodes claim at the same moment. The first has marked run `c` of a `queue` script
/// running, not yet committed: in the second's snapshot `c` still looks queued, and with the
/// larger id (its admission committed after `b`'s) it does not come before `b`. The second
/// claim must not start `b` beside `c`; it waits for the first, and once that has committed it
/// finds `c` running and starts nothing. (PostgreSQL only: SQLite runs one statement at a time.)
#[tokio::test]
async fn concurrent_claims_never_run_two_runs_of_a_queue_script_at_once() {
    use sqlx::Connection;
    if pg_url().is_none() {
        eprintln!("skipped: PostgreSQL is not reachable on 127.0.0.1:5432");
        return;
    }
    let url = pg_schema_url().await;
    let key = scriptd::secrets::MasterKey::generate();
    let codec = scriptd::store::EnvCodec::new(scriptd::secrets::SecretBox::new(&key));
    let store = scriptd::store::connect(&url, codec).await.unwrap();
    execute_sql(
        &url,
        &[
            "INSERT INTO runs (id, script_id, status, trigger_kind, queued_at, concurrency) \
           VALUES ('b', 's', 'queued', 'manual', 1, 'queue'), \
           ('c', 's', 'queued', 'manual', 2, 'queue')",
        ],
    )
    .await;
    let mut first = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut first).await.unwrap();
    sqlx::query("UPDATE runs SET status = 'running', owner = 'lease-1' WHERE id = 'c'")
        .execute(&mut first)
        .await
        .unwrap();
    let second = tokio::spawn(async move {
        let owner = scriptd::store::Owner {
            node_id: "n2".into(),
            lease: "lease-2".into(),
        };
        let now = chrono::Utc::now();
        store
            .claim(&owner, now, now + chrono::Duration::seconds(60), 8)
            .await
    });
    // The first commits once the second claim is under way: waiting on it, or already done.
    let waiting_on_a_lock = || async {
        query_numbers(
            &url,
            "SELECT COUNT(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE NOT l.granted AND a.query LIKE 'UPDATE runs SET status = ''running''%'",
        )
        .await
            == [1]
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !second.is_finished() && !waiting_on_a_lock().await {
        assert!(
            std::time::Instant::now() < deadline,
            "the claim neither ran nor waited"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sqlx::query("COMMIT").execute(&mut first).await.unwrap();
    let claimed = second.await.unwrap().unwrap();
    let ids: Vec<&str> = claimed.iter().map(|c| c.run.id.as_str()).collect();
    assert!(ids.is_empty(), "started beside the running run: {ids:?}");
    let running = query_numbers(
        &url,
        "SELECT COUNT(*) FROM runs WHERE script_id = 's' AND status = 'running'",
    )
    .await;
    assert_eq!(running, [1]);
}
