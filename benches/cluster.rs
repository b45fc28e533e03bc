//! The several-nodes benchmark (`cargo bench --bench cluster`): release `scriptd serve`
//! processes on one SQLite file, one PostgreSQL node, and three PostgreSQL nodes on one
//! database. Prints claim latency (start request → run `running`), runs/s for `true` at 1 and 8
//! clients, and the first-line latency of a subscriber on another node against one on the
//! run's own node, all measured in the same run. Figures are printed, never asserted.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{median, start_server, Server, PASSWORD};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

const SAMPLES: usize = 100;
const THROUGHPUT_RUNS: usize = 200;
const LATENCY_RUNS: usize = 25;

async fn create(server: &Server, script: &str) -> String {
    let code = format!("b-{}", uuid::Uuid::now_v7().simple());
    let body = json!({"name": code, "codeIdentifier": code, "type": "bash",
                      "script": script, "concurrency": "parallel"});
    let v = server
        .call(Method::POST, "/api/admin/scripts", Some(&body))
        .await;
    v["id"].as_str().unwrap().to_string()
}

async fn start_run(server: &Server, script: &str) -> String {
    let v = server
        .call(
            Method::POST,
            &format!("/api/admin/scripts/{script}/run"),
            None,
        )
        .await;
    v["runId"].as_str().unwrap().to_string()
}

async fn get_run(server: &Server, run: &str) -> Value {
    server
        .call(Method::GET, &format!("/api/admin/scripts/runs/{run}"), None)
        .await
}

/// When the first line was printed (its `ts`) and when it arrived here.
type FirstLine = Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>;

/// Follows a run's stream until `done`; when its first `log` event was printed and arrived.
async fn follow(server: &Server, run: &str) -> FirstLine {
    let resp = server
        .client
        .get(format!(
            "{}/api/admin/scripts/runs/{run}/stream",
            server.base
        ))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let mut first = None;
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if first.is_none() {
            if let Some(at) = text.find("event: log\ndata: ") {
                let arrived = chrono::Utc::now();
                let data = &text[at + "event: log\ndata: ".len()..];
                if let Some(end) = data.find('\n') {
                    let v: Value = serde_json::from_str(&data[..end]).unwrap();
                    let ts = v["ts"].as_str().unwrap().parse().unwrap();
                    first = Some((ts, arrived));
                }
            }
        }
        if text.contains("event: done\n") {
            break;
        }
    }
    first
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn pg_schema_url() -> Option<String> {
    use sqlx::Connection;
    let base = std::env::var("SCRIPTD_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut conn = sqlx::PgConnection::connect(&base).await.ok()?;
    let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .ok()?;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

/// Median of `startedAt - queuedAt` (as the store recorded them) and of the client's wait from
/// the start request to seeing the run `running` or later, one run at a time.
async fn claim_latency(nodes: &[Server]) -> (f64, f64) {
    let script = create(&nodes[0], "true").await;
    let mut stored = Vec::new();
    let mut seen = Vec::new();
    for i in 0..SAMPLES {
        let node = &nodes[i % nodes.len()];
        let t = Instant::now();
        let run = start_run(node, &script).await;
        let claimed = loop {
            let r = get_run(node, &run).await;
            if r["status"] != "queued" {
                break r;
            }
        };
        seen.push(ms(t.elapsed()));
        let parse = |v: &Value| {
            v.as_str()
                .unwrap()
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
        };
        let waited = parse(&claimed["startedAt"]) - parse(&claimed["queuedAt"]);
        stored.push(waited.num_microseconds().unwrap_or(0) as f64 / 1000.0);
        follow(node, &run).await;
    }
    (median(stored), median(seen))
}

/// Runs of `true` per second, `clients` at a time, each start followed to `done` on the node
/// that accepted it; starts spread round-robin over the nodes.
async fn throughput(nodes: &[Server], clients: usize) -> f64 {
    let script = create(&nodes[0], "true").await;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let t = Instant::now();
    let workers = (0..clients).map(|_| async {
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= THROUGHPUT_RUNS {
                return;
            }
            let node = &nodes[i % nodes.len()];
            let run = start_run(node, &script).await;
            follow(node, &run).await;
        }
    });
    futures_util::future::join_all(workers).await;
    THROUGHPUT_RUNS as f64 / t.elapsed().as_secs_f64()
}

/// Which of `nodes` has this id (each node says its id in `/healthz`).
async fn node_index(nodes: &[Server], node_id: &str) -> usize {
    for (i, n) in nodes.iter().enumerate() {
        let health: Value = n
            .client
            .get(format!("{}/healthz", n.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if health["node"] == node_id {
            return i;
        }
    }
    panic!("no node has id {node_id}")
}

/// First-line latency (arrival minus the line's timestamp) on the run's own node and on the
/// other nodes, and the difference between the two for each run.
async fn cross_node_first_line(nodes: &[Server]) -> (f64, f64, f64) {
    let script = create(&nodes[0], "sleep 0.3; echo first; sleep 0.2").await;
    let mut own = Vec::new();
    let mut other = Vec::new();
    let mut diff = Vec::new();
    for i in 0..LATENCY_RUNS {
        let run = start_run(&nodes[i % nodes.len()], &script).await;
        let firsts = futures_util::future::join_all(nodes.iter().map(|n| follow(n, &run))).await;
        let r = get_run(&nodes[0], &run).await;
        let owner = node_index(nodes, r["node"].as_str().unwrap()).await;
        let latency = |f: FirstLine| {
            let (ts, arrived) = f.expect("the first line arrived");
            (arrived - ts).num_microseconds().unwrap_or(0) as f64 / 1000.0
        };
        let own_ms = latency(firsts[owner]);
        own.push(own_ms);
        for (j, f) in firsts.iter().enumerate() {
            if j != owner {
                let l = latency(*f);
                other.push(l);
                diff.push(l - own_ms);
            }
        }
    }
    (median(own), median(other), median(diff))
}

fn print(label: &str, value: String) {
    println!("{label:<64} {value}");
    let _ = std::io::stdout().flush();
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("scriptd several-nodes benchmark (medians; every figure measured in this run)\n");
    let sqlite = vec![start_server(&["--max-concurrent-runs", "16"])];
    let Some(pg_one_url) = pg_schema_url().await else {
        println!("skipping the PostgreSQL figures: no server on 127.0.0.1:5432");
        return;
    };
    let pg_one = vec![start_server(&[
        "--max-concurrent-runs",
        "16",
        "--database-url",
        &pg_one_url,
    ])];
    let pg_url = pg_schema_url().await.unwrap();
    let pg_three: Vec<Server> = (0..3)
        .map(|_| start_server(&["--max-concurrent-runs", "16", "--database-url", &pg_url]))
        .collect();

    for (name, nodes) in [
        ("SQLite, 1 node", &sqlite),
        ("PostgreSQL, 1 node", &pg_one),
        ("PostgreSQL, 3 nodes", &pg_three),
    ] {
        let (stored, seen) = claim_latency(nodes).await;
        print(
            &format!("claim latency, {name} (startedAt - queuedAt; client sees it)"),
            format!("{stored:>7.2} ms   {seen:>7.2} ms"),
        );
    }
    println!();
    let mut base = 0.0;
    for (name, nodes) in [
        ("SQLite, 1 node", &sqlite),
        ("PostgreSQL, 1 node", &pg_one),
        ("PostgreSQL, 3 nodes", &pg_three),
    ] {
        let c1 = throughput(nodes, 1).await;
        let c8 = throughput(nodes, 8).await;
        if base == 0.0 {
            base = c8;
        }
        print(
            &format!("runs/s of `true`, {name} (c=1; c=8; c=8 vs SQLite)"),
            format!("{c1:>7.1}   {c8:>7.1}   {:>5.2}x", c8 / base),
        );
    }
    println!();
    let (own, other, diff) = cross_node_first_line(&pg_three).await;
    print(
        "first line printed -> subscriber (own node; other node; difference)",
        format!("{own:>7.2} ms   {other:>7.2} ms   {diff:>7.2} ms"),
    );
}
