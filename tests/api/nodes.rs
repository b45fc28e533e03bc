//! Several real `scriptd serve` nodes on one PostgreSQL database (SPEC §9), and the same rules
//! on one SQLite node: the runs table is the queue, concurrency holds across nodes, cancel
//! reaches the node that runs the process, leases fence off a node that lost its run, output
//! streams from any node, schedules survive a node, and no process outlives a kill.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{
    eventually, log_lines, parse_sse, pg_url, processes_named, processes_with, LiveStream,
};
use crate::process::{Cluster, Server};

fn bash(script: String, extra: Value) -> Value {
    let mut body = json!({
        "name": format!("n {}", uuid::Uuid::now_v7().simple()),
        "codeIdentifier": format!("n-{}", uuid::Uuid::now_v7().simple()),
        "type": "bash",
        "script": script,
    });
    crate::helpers::merge(&mut body, extra);
    body
}

/// A script that records when it starts and ends in `file`. It also holds an exclusive lock
/// on `file`.lock while it lives: a run that finds the lock taken writes an `overlap` mark. The
/// kernel drops the lock when the last process holding it dies, however it dies (a run on a
/// killed node may die of SIGPIPE before writing its end mark), so overlaps show either way.
fn marking(file: &Path, work: &str) -> String {
    let f = file.display();
    format!(
        "exec 9>>{f}.lock\n\
         flock -n 9 || {{ echo \"overlap $SCRIPTD_RUN_ID\" >> {f}; exit 3; }}\n\
         echo \"start $SCRIPTD_RUN_ID\" >> {f}\n{work}\necho \"end $SCRIPTD_RUN_ID\" >> {f}"
    )
}

/// The marks as (kind, run id), checked to alternate start/end of one run at a time.
fn alternating_marks(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut order = Vec::new();
    let mut open: Option<String> = None;
    for line in text.lines() {
        let (kind, id) = line.split_once(' ').unwrap();
        match (kind, open.take()) {
            ("start", None) => {
                open = Some(id.to_string());
                order.push(id.to_string());
            }
            ("end", Some(started)) => assert_eq!(started, id, "runs overlapped:\n{text}"),
            _ => panic!("runs overlapped at {line:?}:\n{text}"),
        }
    }
    order
}

async fn queue_runs_take_turns_in_start_order(nodes: &[Server]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("marks");
    let script = nodes[0]
        .create(bash(
            marking(&file, "sleep 0.2"),
            json!({"concurrency": "queue"}),
        ))
        .await;
    let mut runs = Vec::new();
    for i in 0..6 {
        runs.push(nodes[i % nodes.len()].run(&script).await);
    }
    for r in &runs {
        assert_eq!(nodes[0].wait_finished(r).await["status"], "succeeded");
    }
    assert_eq!(
        alternating_marks(&file),
        runs,
        "queued runs take turns, in the order they were accepted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_runs_never_overlap_and_start_in_order_across_nodes() {
    if pg_url().is_none() {
        return;
    }
    let cluster = Cluster::start(3, &[]).await;
    queue_runs_take_turns_in_start_order(&cluster.nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_runs_never_overlap_and_start_in_order_on_one_sqlite_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = Server::start(dir.path(), &[]).await;
    queue_runs_take_turns_in_start_order(std::slice::from_ref(&node)).await;
}

async fn single_admits_one_of_two_simultaneous_starts(a: &Server, b: &Server) {
    let script = a.create(bash("sleep 0.5".into(), json!({}))).await;
    for round in 0..5 {
        let (ra, rb) = tokio::join!(a.start_run(&script), b.start_run(&script));
        let mut codes = [ra.status().as_u16(), rb.status().as_u16()];
        codes.sort();
        assert_eq!(codes, [202, 409], "round {round}");
        let winner = if ra.status() == 202 { ra } else { rb };
        let run = winner.json::<Value>().await.unwrap()["runId"]
            .as_str()
            .unwrap()
            .to_string();
        // While it runs (or waits), every node refuses another.
        assert_eq!(a.start_run(&script).await.status(), 409);
        assert_eq!(b.start_run(&script).await.status(), 409);
        a.wait_finished(&run).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_admits_exactly_one_of_simultaneous_starts_on_two_nodes() {
    if pg_url().is_none() {
        return;
    }
    let cluster = Cluster::start(2, &[]).await;
    single_admits_one_of_two_simultaneous_starts(&cluster.nodes[0], &cluster.nodes[1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_admits_exactly_one_of_simultaneous_starts_on_one_sqlite_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = Server::start(dir.path(), &[]).await;
    single_admits_one_of_two_simultaneous_starts(&node, &node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_queued_on_a_full_node_are_claimed_by_idle_ones() {
    if pg_url().is_none() {
        return;
    }
    let cluster = Cluster::start(3, &["--max-concurrent-runs", "1"]).await;
    let a = &cluster.nodes[0];
    let script = a
        .create(bash("sleep 60".into(), json!({"concurrency": "parallel"})))
        .await;
    let runs = [
        a.run(&script).await,
        a.run(&script).await,
        a.run(&script).await,
    ];
    let mut owners = HashSet::new();
    for r in &runs {
        let run = a.wait_run_until(r, 10, |r| r["status"] == "running").await;
        owners.insert(cluster.owner_of(&run));
    }
    let mut now = Vec::new();
    for r in &runs {
        let run = a.get_run(r).await;
        now.push(format!(
            "{} {} on {}: {}",
            r, run["status"], run["node"], run["error"]
        ));
    }
    assert_eq!(owners.len(), 3, "each node took one run: {now:#?}");
    for r in &runs {
        assert_eq!(
            a.get_run(r).await["status"],
            "running",
            "all three ran at once"
        );
    }
    for r in &runs {
        a.send(
            Method::POST,
            &format!("/api/admin/scripts/runs/{r}/cancel"),
            None,
        )
        .await;
    }
    for r in &runs {
        assert_eq!(a.wait_finished(r).await["status"], "canceled");
    }
}

/// A node with a free slot starts what it admits in the same statement: the run is already
/// running there when the start request returns, and the other nodes never see it queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_room_runs_what_it_admits_at_once() {
    if pg_url().is_none() {
        return;
    }
    let cluster = Cluster::start(2, &["--max-concurrent-runs", "3"]).await;
    let script = cluster.nodes[0]
        .create(bash("sleep 60".into(), json!({"concurrency": "parallel"})))
        .await;
    let mut all = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        for _ in 0..3 {
            let r = node.run(&script).await;
            let run = node.get_run(&r).await;
            assert_eq!(run["status"], "running", "started by its admission: {run}");
            assert_eq!(cluster.owner_of(&run), i, "on the node that admitted it");
            all.push(r);
        }
    }
    // Both nodes are full now: the next run waits in the queue for a free slot.
    let queued = cluster.nodes[0].run(&script).await;
    assert_eq!(cluster.nodes[0].get_run(&queued).await["status"], "queued");
    all.push(queued);
    for r in &all {
        cluster.nodes[1]
            .send(
                Method::POST,
                &format!("/api/admin/scripts/runs/{r}/cancel"),
                None,
            )
            .await;
    }
    for r in &all {
        assert_eq!(
            cluster.nodes[1].wait_finished(r).await["status"],
            "canceled"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_through_any_node_stops_the_process_where_it_runs() {
    if pg_url().is_none() {
        return;
    }
    let cluster = Cluster::start(
        3,
        &["--max-concurrent-runs", "1", "--kill-grace-ms", "1000"],
    )
    .await;
    let marker = format!("sdnodecancel{}", uuid::Uuid::now_v7().simple());
    let a = &cluster.nodes[0];
    let sleeper = a
        .create(bash(
            format!("exec -a {marker} sleep 300"),
            json!({"concurrency": "parallel"}),
        ))
        .await;
    let runs = [
        a.run(&sleeper).await,
        a.run(&sleeper).await,
        a.run(&sleeper).await,
    ];
    let mut running = Vec::new();
    for r in &runs {
        running.push(a.wait_run_until(r, 10, |r| r["status"] == "running").await);
    }
    eventually(10, "the three sleepers run", || {
        processes_named(&marker) == 3
    })
    .await;

    // Every node is full: this one waits in the queue, and a cancel on any node drops it.
    let dir = tempfile::tempdir().unwrap();
    let never = dir.path().join("never");
    let waiting_script = a
        .create(bash(format!("touch {}", never.display()), json!({})))
        .await;
    let waiting = a.run(&waiting_script).await;
    assert_eq!(a.get_run(&waiting).await["status"], "queued");
    let resp = cluster.nodes[2]
        .send(
            Method::POST,
            &format!("/api/admin/scripts/runs/{waiting}/cancel"),
            None,
        )
        .await;
    assert_eq!(resp.status(), 202);

    // A running one canceled through a node that is not its own.
    let owner = cluster.owner_of(&running[0]);
    let other = &cluster.nodes[(owner + 1) % 3];
    let asked = Instant::now();
    let resp = other
        .send(
            Method::POST,
            &format!("/api/admin/scripts/runs/{}/cancel", runs[0]),
            None,
        )
        .await;
    assert_eq!(resp.status(), 202);
    let done = other.wait_finished(&runs[0]).await;
    assert_eq!(done["status"], "canceled", "{done}");
    eventually(10, "the canceled process is gone", || {
        processes_named(&marker) == 2
    })
    .await;
    println!(
        "cross-node cancel: process gone {} ms after the request",
        asked.elapsed().as_millis()
    );

    for r in &runs[1..] {
        other
            .send(
                Method::POST,
                &format!("/api/admin/scripts/runs/{r}/cancel"),
                None,
            )
            .await;
        assert_eq!(other.wait_finished(r).await["status"], "canceled");
    }
    eventually(10, "no sleeper is left", || {
        processes_with(&marker).is_empty()
    })
    .await;
    let w = a.get_run(&waiting).await;
    assert_eq!(w["status"], "canceled", "{w}");
    assert!(
        w["startedAt"].is_null(),
        "a canceled queued run never starts: {w}"
    );
    assert!(!never.exists(), "the canceled queued run never ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_lease_can_no_longer_write_and_ends_its_process() {
    if pg_url().is_none() {
        return;
    }
    let cluster = Cluster::start(2, &["--run-lease-secs", "2"]).await;
    let marker = format!("sdfence{}", uuid::Uuid::now_v7().simple());
    let a = &cluster.nodes[0];
    let script = a
        .create(bash(
            format!("exec -a {marker} bash -c 'for i in $(seq 1 100); do echo tick $i; sleep 0.1; done'"),
            json!({}),
        ))
        .await;
    let run_id = a.run(&script).await;
    let running = a
        .wait_run_until(&run_id, 10, |r| r["status"] == "running")
        .await;
    let owner = cluster.owner_of(&running);
    let survivor = &cluster.nodes[1 - owner];
    // A line stored, not only a process up: the survivor reads the stored log back.
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.log(&run_id).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the script's first line was never stored"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // The owner hangs: the other node ends the run once the lease runs out.
    cluster.nodes[owner].signal(Signal::SIGSTOP);
    let failed = survivor
        .wait_run_until(&run_id, 15, |r| r["status"] != "running")
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("lease"),
        "{failed}"
    );
    let lines_then = survivor.log(&run_id).await.lines().count();

    // It comes back: it must neither overwrite the outcome nor add lines, and it ends the
    // process it no longer owns.
    cluster.nodes[owner].signal(Signal::SIGCONT);
    eventually(15, "the fenced-off node ends its process", || {
        processes_with(&marker).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = survivor.get_run(&run_id).await;
    assert_eq!(
        after["status"], "failed",
        "the outcome was overwritten: {after}"
    );
    assert_eq!(after["finishedAt"], failed["finishedAt"]);
    let log = survivor.log(&run_id).await;
    assert_eq!(
        log.lines().count(),
        lines_then,
        "lines were appended after the run was taken away"
    );
    // The node that ended it read the tail and size back from the stored log.
    assert!(lines_then > 0);
    assert_eq!(after["logBytes"], log.len(), "{after}");
    assert_eq!(after["outputTail"], log, "{after}");
}

/// Reads `n` streams until each has `done`.
async fn read_all_done(streams: &mut [LiveStream]) {
    for s in streams.iter_mut() {
        s.read_until(|t| t.contains("event: done")).await;
    }
}

async fn open_stream(node: &Server, run_id: &str, last_event_id: Option<i64>) -> LiveStream {
    let mut req = reqwest::Client::new()
        .get(node.url(&format!("/api/admin/scripts/runs/{run_id}/stream")))
        .basic_auth("admin", Some(crate::process::PASSWORD));
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id.to_string());
    }
    LiveStream::from_response(req.send().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_output_reaches_subscribers_on_every_node_with_resume() {
    if pg_url().is_none() {
        return;
    }
    let cluster = Cluster::start(3, &[]).await;
    let a = &cluster.nodes[0];
    let script = a
        .create(bash(
            "sleep 0.5; for i in $(seq 1 200); do echo line $i; done; sleep 0.3; echo last".into(),
            json!({}),
        ))
        .await;
    let run_id = a.run(&script).await;
    let mut streams = Vec::new();
    for n in &cluster.nodes {
        streams.push(open_stream(n, &run_id, None).await);
    }
    read_all_done(&mut streams).await;
    let expected: Vec<String> = (1..=200)
        .map(|i| format!("line {i}"))
        .chain(["last".to_string()])
        .collect();
    for (i, s) in streams.iter().enumerate() {
        let events = parse_sse(&s.text);
        let lines = log_lines(&events);
        let seqs: Vec<i64> = lines.iter().map(|l| l.0).collect();
        assert_eq!(
            seqs,
            (1..=201).collect::<Vec<i64>>(),
            "node {i}: every line once, in order"
        );
        let texts: Vec<String> = lines.into_iter().map(|l| l.2).collect();
        assert_eq!(texts, expected, "node {i}");
        let done = events.iter().find(|e| e.event == "done").unwrap();
        assert_eq!(done.data["status"], "succeeded", "node {i}");
    }
    // Resume on another node from where a client left off.
    let mut resumed = open_stream(&cluster.nodes[2], &run_id, Some(100)).await;
    resumed.read_until(|t| t.contains("event: done")).await;
    let seqs: Vec<i64> = log_lines(&parse_sse(&resumed.text))
        .iter()
        .map(|l| l.0)
        .collect();
    assert_eq!(seqs, (101..=201).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_keeps_firing_once_per_tick_when_its_node_stops() {
    if pg_url().is_none() {
        return;
    }
    let mut cluster = Cluster::start(3, &[]).await;
    let script = cluster.nodes[0]
        .create(bash(
            "true".into(),
            json!({"concurrency": "parallel",
                   "schedule": {"enabled": true, "cron": "* * * * * *", "timezone": "UTC"}}),
        ))
        .await;
    let path = format!("/api/admin/scripts/runs?scriptId={script}&limit=200");
    async fn runs_of(node: &Server, path: &str) -> Vec<Value> {
        let v = node.json(Method::GET, path, None).await;
        v["runs"].as_array().unwrap().clone()
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let newest = loop {
        let runs = runs_of(&cluster.nodes[0], &path).await;
        if runs.len() >= 3 && runs[0]["node"].is_string() {
            break runs[0].clone();
        }
        assert!(Instant::now() < deadline, "the schedule does not fire");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let firing = cluster.owner_of(&newest);
    let killed_at = chrono::Utc::now();
    cluster.nodes[firing].kill9();
    let watcher = &cluster.nodes[(firing + 1) % 3];
    tokio::time::sleep(Duration::from_secs(5)).await;
    let runs = runs_of(watcher, &path).await;
    let mut ticks: Vec<chrono::DateTime<chrono::Utc>> = runs
        .iter()
        .map(|r| r["meta"]["tick"].as_str().unwrap().parse().unwrap())
        .collect();
    ticks.sort();
    let unique: HashSet<_> = ticks.iter().collect();
    assert_eq!(unique.len(), ticks.len(), "a tick fired twice: {ticks:?}");
    let after: Vec<_> = ticks.iter().filter(|t| **t > killed_at).collect();
    assert!(
        after.len() >= 3,
        "the schedule stopped with its node: {ticks:?}"
    );
    // The tick after the stop came within 2 s of the last one before it.
    let last_before = ticks.iter().filter(|t| **t <= killed_at).max().unwrap();
    let first_after = ticks.iter().filter(|t| **t > killed_at).min().unwrap();
    let gap = *first_after - *last_before;
    assert!(
        gap <= chrono::Duration::seconds(2),
        "a gap of {gap} across the stop: {ticks:?}"
    );
    watcher
        .send(
            Method::PUT,
            &format!("/api/admin/scripts/{script}"),
            Some(&bash(
                "true".into(),
                json!({"schedule": {"enabled": false, "cron": "* * * * * *"}}),
            )),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_after_every_node_was_down_fires_once_across_nodes() {
    if pg_url().is_none() {
        return;
    }
    let mut cluster = Cluster::start(2, &[]).await;
    let script = cluster.nodes[0]
        .create(bash(
            "true".into(),
            json!({"concurrency": "parallel",
                   "schedule": {"enabled": true, "cron": "* * * * * *", "catchUp": "last"}}),
        ))
        .await;
    let path = format!("/api/admin/scripts/runs?scriptId={script}&limit=200");
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster.nodes[0].json(Method::GET, &path, None).await["runs"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the schedule does not fire");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for node in &mut cluster.nodes {
        node.kill9();
    }
    let down_until = chrono::Utc::now() + chrono::Duration::milliseconds(3500);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (a, b) = cluster.nodes.split_at_mut(1);
    futures_util::future::join(a[0].restart(), b[0].restart()).await;

    let catch_ups = |runs: &Value| -> Vec<Value> {
        runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["meta"]["catchUp"] == true)
            .cloned()
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let first = loop {
        let found = catch_ups(&cluster.nodes[1].json(Method::GET, &path, None).await);
        if let Some(run) = found.first() {
            break run.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no catch-up run after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let tick: chrono::DateTime<chrono::Utc> =
        first["meta"]["tick"].as_str().unwrap().parse().unwrap();
    assert!(
        tick >= down_until - chrono::Duration::seconds(1),
        "the latest missed tick: {first}"
    );
    // Both nodes race for the overdue tick: one wins, the run fires once, and later ticks go on.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let runs = cluster.nodes[0].json(Method::GET, &path, None).await;
        let after = runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["meta"]["catchUp"].is_null()
                    && r["meta"]["tick"].as_str() > first["meta"]["tick"].as_str()
            })
            .count();
        if after >= 2 {
            assert_eq!(
                catch_ups(&runs).len(),
                1,
                "one catch-up across both nodes: {runs}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the schedule did not go on after the catch-up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.nodes[0]
        .send(
            Method::PUT,
            &format!("/api/admin/scripts/{script}"),
            Some(&bash(
                "true".into(),
                json!({"schedule": {"enabled": false, "cron": "* * * * * *"}}),
            )),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_is_taken_by_another_node_when_the_first_one_is_gone() {
    if pg_url().is_none() {
        return;
    }
    let mut cluster = Cluster::start(2, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("count");
    let script = cluster.nodes[0]
        .create(bash(
            format!(
                "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; [ $n -ge 2 ]",
                c = count.display()
            ),
            json!({"retry": {"retries": 2, "delayMs": 2000}}),
        ))
        .await;
    let first = cluster.nodes[0].run(&script).await;
    let ended = cluster.nodes[0].wait_finished(&first).await;
    assert_eq!(ended["status"], "failed");
    let ran_it = cluster.owner_of(&ended);
    cluster.nodes[ran_it].kill9();
    let other = &cluster.nodes[1 - ran_it];
    let path = format!("/api/admin/scripts/runs?scriptId={script}&limit=10");
    let deadline = Instant::now() + Duration::from_secs(20);
    let retry = loop {
        let runs = other.json(Method::GET, &path, None).await;
        let retry = runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["meta"]["retry"]["of"] == first.as_str())
            .cloned();
        if let Some(r) = retry.filter(|r| r["status"] == "succeeded") {
            break r;
        }
        assert!(Instant::now() < deadline, "the retry was not run: {runs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(retry["node"], other.node_id(), "run by the node still up");
    assert_eq!(retry["meta"]["retry"]["attempt"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_notification_is_delivered_once_across_nodes() {
    if pg_url().is_none() {
        return;
    }
    let (url, got) = crate::helpers::webhook_receiver(axum::http::StatusCode::OK).await;

    let cluster = Cluster::start(2, &[]).await;
    let script = cluster.nodes[0]
        .create(bash(
            "exit 3".into(),
            json!({"concurrency": "parallel",
                   "notifications": [{"url": url, "on": ["failure"]}]}),
        ))
        .await;
    let mut runs = Vec::new();
    for i in 0..8 {
        runs.push(cluster.nodes[i % 2].run(&script).await);
    }
    for run in &runs {
        cluster.nodes[0].wait_finished(run).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut delivered = 0;
        for run in &runs {
            let d = cluster.nodes[1]
                .json(
                    Method::GET,
                    &format!("/api/admin/scripts/runs/{run}/deliveries"),
                    None,
                )
                .await;
            delivered += d
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["status"] == "delivered")
                .count();
        }
        if delivered == runs.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {delivered} of {} delivered",
            runs.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids: Vec<String> = got
        .all()
        .iter()
        .map(|(h, _)| h["x-scriptd-delivery"].to_str().unwrap().to_string())
        .collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), runs.len(), "one request per run: {ids:?}");
    assert_eq!(unique.len(), ids.len(), "no delivery sent twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_of_the_process_group_leaves_no_process_and_queued_runs_survive() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Server::start(dir.path(), &["--max-concurrent-runs", "1"]).await;
    let marker = format!("sdgroup{}", uuid::Uuid::now_v7().simple());
    let tree = node
        .create(bash(
            format!(
                "setsid bash -c 'exec -a {marker}-d sleep 300' & \
                 bash -c 'exec -a {marker}-c sleep 300' & exec -a {marker} sleep 300"
            ),
            json!({}),
        ))
        .await;
    let quick = node
        .create(bash("echo queued-and-kept".into(), json!({})))
        .await;
    let running = node.run(&tree).await;
    node.wait_run_until(&running, 10, |r| r["status"] == "running")
        .await;
    eventually(10, "the whole tree runs", || {
        processes_with(&marker).len() >= 3
    })
    .await;
    let queued = node.run(&quick).await;
    assert_eq!(node.get_run(&queued).await["status"], "queued");

    node.kill9_group();
    eventually(10, "no process of the run outlives its node", || {
        processes_with(&marker).is_empty()
    })
    .await;

    node.restart().await;
    let r = node.get_run(&running).await;
    assert_eq!(r["status"], "failed", "{r}");
    assert!(r["error"].as_str().unwrap().contains("crash"), "{r}");
    let q = node.wait_finished(&queued).await;
    assert_eq!(
        q["status"], "succeeded",
        "the queued run was kept and ran: {q}"
    );
    assert!(node.log(&queued).await.contains("queued-and-kept"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_two_hundred_queue_runs_across_three_nodes_with_one_killed_and_restarted() {
    if pg_url().is_none() {
        return;
    }
    let started = Instant::now();
    let mut cluster =
        Cluster::start(3, &["--run-lease-secs", "2", "--kill-grace-ms", "1000"]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("marks");
    let marker = format!("sdchaos{}", uuid::Uuid::now_v7().simple());
    let script = cluster.nodes[0]
        .create(bash(
            marking(&file, &format!("bash -c 'exec -a {marker} sleep 0.03'")),
            json!({"concurrency": "queue"}),
        ))
        .await;
    let bases: Vec<String> = cluster.nodes.iter().map(|n| n.base.clone()).collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    // Four clients send 50 starts each, round-robin over the nodes, moving on to the next
    // node when one does not answer.
    let senders = (0..4).map(|c| {
        let (bases, client, script) = (bases.clone(), client.clone(), script.clone());
        tokio::spawn(async move {
            let mut accepted = Vec::new();
            for i in 0..50 {
                let mut target = (c + i) % bases.len();
                loop {
                    let resp = client
                        .post(format!("{}/api/admin/scripts/{script}/run", bases[target]))
                        .basic_auth("admin", Some(crate::process::PASSWORD))
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status() == 202 => {
                            let v: Value = r.json().await.unwrap();
                            accepted.push(v["runId"].as_str().unwrap().to_string());
                            break;
                        }
                        _ => target = (target + 1) % bases.len(),
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            accepted
        })
    });
    let senders: Vec<_> = senders.collect();
    // Once about a third of the runs are done, kill the node running one right now, and bring
    // it back.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let marks = std::fs::read_to_string(&file).unwrap_or_default();
        if marks.lines().filter(|l| l.starts_with("end")).count() >= 60 {
            break;
        }
        assert!(Instant::now() < deadline, "runs are not progressing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let victim = loop {
        let running: Value = cluster.nodes[0]
            .json(
                Method::GET,
                &format!("/api/admin/scripts/runs?scriptId={script}&status=running&limit=1"),
                None,
            )
            .await;
        if let Some(run) = running["runs"].as_array().and_then(|r| r.first()) {
            break cluster.owner_of(run);
        }
        assert!(Instant::now() < deadline, "no run is running");
    };
    cluster.nodes[victim].kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.nodes[victim].restart().await;

    let mut accepted = Vec::new();
    for s in senders {
        accepted.extend(s.await.unwrap());
    }
    assert_eq!(accepted.len(), 200);
    let observer = &cluster.nodes[0];
    let mut succeeded = 0;
    let mut failed = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    for r in &accepted {
        let run = observer
            .wait_run_until(
                r,
                deadline
                    .saturating_duration_since(Instant::now())
                    .as_secs()
                    .max(1),
                |r| !matches!(r["status"].as_str(), Some("queued" | "running")),
            )
            .await;
        match run["status"].as_str() {
            Some("succeeded") => succeeded += 1,
            Some("failed") => failed += 1,
            other => panic!("unexpected final status {other:?}: {run}"),
        }
    }
    let marks = std::fs::read_to_string(&file).unwrap();
    assert!(!marks.contains("overlap"), "runs overlapped:\n{marks}");
    let starts: Vec<&str> = marks
        .lines()
        .filter_map(|l| l.strip_prefix("start "))
        .collect();
    let unique: HashSet<&&str> = starts.iter().collect();
    assert_eq!(unique.len(), starts.len(), "a run ran twice");
    for r in &accepted {
        let run = observer.get_run(r).await;
        if run["status"] == "succeeded" {
            assert!(marks.contains(&format!("start {r}")) && marks.contains(&format!("end {r}")));
        }
    }
    let listed: Value = observer
        .json(
            Method::GET,
            &format!("/api/admin/scripts/runs?scriptId={script}&limit=200"),
            None,
        )
        .await;
    assert_eq!(
        listed["runs"].as_array().unwrap().len(),
        200,
        "none lost, none added"
    );
    eventually(10, "no process is left", || {
        processes_with(&marker).is_empty()
    })
    .await;
    println!(
        "chaos: 200 runs, {succeeded} succeeded, {failed} failed with the killed node, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Every node's heartbeat is listed on every node, with its running count; a node that stops
/// beating is shown late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_listed_with_their_heartbeat_and_running_count() {
    if pg_url().is_none() {
        return;
    }
    let cluster = Cluster::start(2, &["--run-lease-secs", "2"]).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let script = a.create(bash("sleep 30".to_string(), json!({}))).await;
    let run = a.run(&script).await;
    let running = a
        .wait_run_until(&run, 10, |r| r["status"] == "running")
        .await;
    let owner = cluster.owner_of(&running);
    let owner_id = cluster.nodes[owner].node_id();
    let listed = |nodes: &Value, id: &str| -> Value {
        nodes
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let nodes = b.json(Method::GET, "/api/admin/scripts/nodes", None).await;
        let mine = listed(&nodes, &owner_id);
        let other = listed(&nodes, &cluster.nodes[1 - owner].node_id());
        if mine["running"] == 1 && other["running"] == 0 {
            assert_eq!(mine["late"], false, "{nodes}");
            assert_eq!(other["late"], false, "{nodes}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "both nodes with their counts: {nodes}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A hung node is late on the other's list.
    let watcher = &cluster.nodes[1 - owner];
    cluster.nodes[owner].signal(Signal::SIGSTOP);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let nodes = watcher
            .json(Method::GET, "/api/admin/scripts/nodes", None)
            .await;
        if listed(&nodes, &owner_id)["late"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the hung node shown late: {nodes}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.nodes[owner].signal(Signal::SIGCONT);
    a.send(
        Method::POST,
        &format!("/api/admin/scripts/runs/{run}/cancel"),
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_and_the_audit_log_are_one_history_across_nodes() {
    if pg_url().is_none() {
        return;
    }
    let cluster = Cluster::start(2, &[]).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let body = |script: &str| json!({"name": "Shared", "codeIdentifier": "shared", "type": "bash", "script": script});
    let id = a.create(body("echo one")).await;
    let path = format!("/api/admin/scripts/{id}");
    assert_eq!(
        b.json(Method::PUT, &path, Some(&body("echo two"))).await["version"],
        2
    );

    // Two edits at the same moment through two nodes: two versions, numbered one after the other.
    let (three, four) = (body("echo three"), body("echo four"));
    let (x, y) = tokio::join!(
        a.json(Method::PUT, &path, Some(&three)),
        b.json(Method::PUT, &path, Some(&four)),
    );
    let mut numbers = [
        x["version"].as_i64().unwrap(),
        y["version"].as_i64().unwrap(),
    ];
    numbers.sort();
    assert_eq!(numbers, [3, 4]);
    let current = a.json(Method::GET, &path, None).await;
    assert_eq!(current["version"], 4);

    // A run started on one node and claimed by either records the version it ran.
    let run = b.run(&id).await;
    let done = a.wait_finished(&run).await;
    assert_eq!(done["scriptVersion"], 4);
    assert_eq!(
        a.log(&run).await,
        format!("{}\n", &current["script"].as_str().unwrap()[5..])
    );

    let restored = b
        .json(Method::POST, &format!("{path}/versions/2/restore"), None)
        .await;
    assert_eq!(restored["version"], 5);
    for node in [a, b] {
        let list = node
            .json(Method::GET, &format!("{path}/versions"), None)
            .await;
        let numbers: Vec<i64> = list["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_i64().unwrap())
            .collect();
        assert_eq!(numbers, [5, 4, 3, 2, 1]);
        let audit = node
            .json(Method::GET, "/api/admin/audit?target=script:shared", None)
            .await;
        let actions: Vec<&str> = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            [
                "script.restore",
                "script.update",
                "script.update",
                "script.update",
                "script.create"
            ]
        );
        let started = node
            .json(
                Method::GET,
                &format!("/api/admin/audit?target=run:{run}"),
                None,
            )
            .await;
        assert_eq!(started["entries"][0]["action"], "run.start");
    }
}

/// Each node holds the definitions of scripts it ran, to start their next runs without reading
/// them: an edit through another node (body, variable, secret) must reach every node's next run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_through_one_node_reaches_the_next_run_on_every_node() {
    if pg_url().is_none() {
        return;
    }
    // Nodes sharing secrets share the master key.
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let cluster = Cluster::start(2, &["--max-concurrent-runs", "1", "--master-key", key]).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let body = |script: &str, word: &str, secret: &str| {
        json!({
            "name": "Held", "codeIdentifier": "held", "type": "bash", "script": script,
            "concurrency": "parallel",
            "env": [{"key": "WORD", "value": word}, {"key": "SECRET", "value": secret, "secret": true}],
        })
    };
    // The secret's length tells its value, which the output would show masked.
    let script = "sleep 0.3; echo \"one $WORD ${#SECRET}\"";
    let id = a.create(body(script, "w1", "a-secret-of-20-chars")).await;
    // Both nodes run one at a time, so two runs at once are one on each.
    let on_both = || async {
        let runs = [a.run(&id).await, b.run(&id).await];
        let mut owners = HashSet::new();
        let mut logs = Vec::new();
        for r in &runs {
            let done = a.wait_finished(r).await;
            assert_eq!(done["status"], "succeeded", "{done}");
            owners.insert(cluster.owner_of(&done));
            logs.push(a.log(r).await);
        }
        assert_eq!(owners.len(), 2, "each node ran one");
        logs
    };
    assert_eq!(on_both().await, ["one w1 20\n", "one w1 20\n"]);

    let path = format!("/api/admin/scripts/{id}");
    let edited = "sleep 0.3; echo \"two $WORD ${#SECRET}\"";
    b.json(
        Method::PUT,
        &path,
        Some(&body(edited, "w2", "a-secret-of-20-chars")),
    )
    .await;
    assert_eq!(on_both().await, ["two w2 20\n", "two w2 20\n"]);

    // A new secret value alone is a new version too.
    a.json(
        Method::PUT,
        &path,
        Some(&body(edited, "w2", "a-longer-secret-of-27-chars")),
    )
    .await;
    assert_eq!(on_both().await, ["two w2 27\n", "two w2 27\n"]);
}

/// Each node keeps the scripts list it last read while the database's count of script changes
/// says it is current: what changes through one node shows in the other's next list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_node_shows_in_every_nodes_next_list() {
    if pg_url().is_none() {
        return;
    }
    let cluster = Cluster::start(2, &[]).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let listed = |node: &'static str, list: Value, id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("not in {node}'s list"))
    };
    let id = a
        .create(bash("true".into(), json!({"name": "Before"})))
        .await;
    for (name, node) in [("a", a), ("b", b)] {
        let list = node.json(Method::GET, "/api/admin/scripts", None).await;
        assert_eq!(listed(name, list, &id)["name"], "Before");
    }
    let path = format!("/api/admin/scripts/{id}");
    let mut body = b.json(Method::GET, &path, None).await;
    body["name"] = json!("After");
    b.json(Method::PUT, &path, Some(&body)).await;
    let list = a.json(Method::GET, "/api/admin/scripts", None).await;
    assert_eq!(listed("a", list, &id)["name"], "After");

    let run = b.run(&id).await;
    a.wait_finished(&run).await;
    let list = a.json(Method::GET, "/api/admin/scripts", None).await;
    assert_eq!(listed("a", list, &id)["lastRun"]["id"], run.as_str());

    let deleted = b.send(Method::DELETE, &path, None).await;
    assert_eq!(deleted.status(), 204);
    let list = a.json(Method::GET, "/api/admin/scripts", None).await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|s| s["id"] != id.as_str()),
        "deleted through b, still in a's list: {list}"
    );
}
