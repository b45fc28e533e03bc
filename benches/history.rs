//! History at scale (`cargo bench --bench history`): 500 scripts and 100 000 runs seeded into
//! a real release server's database, SQLite and PostgreSQL, then the pages an operator opens
//! most: one script's history, the scripts list, runs filtered by status. Prints p50 and p99
//! of each and the list's payload size. Figures are printed, never asserted.

mod common;

use std::time::Instant;

use common::{median, start_server, Server};
use reqwest::Method;
use serde_json::json;

const SCRIPTS: usize = 500;
const RUNS: usize = 100_000;
const SAMPLES: usize = 200;
const EDITS: usize = 20;

fn p99(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[(xs.len() * 99 / 100).min(xs.len() - 1)]
}

/// Creates the scripts through the API (bodies of a realistic size) and returns their ids.
async fn seed_scripts(server: &Server) -> Vec<String> {
    let body = "# a typical maintenance script\n".repeat(60);
    let mut ids = Vec::new();
    for i in 0..SCRIPTS {
        let v = server
            .call(
                Method::POST,
                "/api/admin/scripts",
                Some(
                    &json!({"name": format!("script {i}"), "codeIdentifier": format!("s{i}"),
                             "type": "bash", "script": body, "concurrency": "parallel",
                             "env": [{"key": "A", "value": "1", "secret": false}]}),
                ),
            )
            .await;
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    ids
}

/// The statements that insert the runs straight into the database, 1 000 rows each (the
/// values are generated here, so they are written inline).
fn run_inserts(scripts: &[String]) -> Vec<String> {
    let start = chrono::Utc::now().timestamp_millis() - RUNS as i64 * 1000;
    (0..RUNS)
        .collect::<Vec<_>>()
        .chunks(1000)
        .map(|chunk| {
            let rows: Vec<String> = chunk
                .iter()
                .map(|&i| {
                    let status = match i % 50 {
                        0..=3 => "failed",
                        4 => "canceled",
                        _ => "succeeded",
                    };
                    let t = start + i as i64 * 1000;
                    format!(
                        "('{}', '{}', '{status}', 'schedule', '{{}}', {t}, {}, {}, 'done', 'seeded')",
                        uuid::Uuid::now_v7(),
                        scripts[i % scripts.len()],
                        t + 5,
                        t + 900
                    )
                })
                .collect();
            format!(
                "INSERT INTO runs (id, script_id, status, trigger_kind, meta, queued_at, \
                 started_at, finished_at, output_tail, node_id) VALUES {}",
                rows.join(", ")
            )
        })
        .collect()
}

async fn timed(server: &Server, path: &str) -> (f64, usize) {
    let t = Instant::now();
    let body = server
        .client
        .get(format!("{}{path}", server.base))
        .basic_auth("admin", Some(common::PASSWORD))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    (t.elapsed().as_secs_f64() * 1000.0, body.len())
}

async fn measure(name: &str, server: &Server, scripts: &[String]) {
    let mut history = Vec::new();
    let mut by_status = Vec::new();
    let mut list = Vec::new();
    let mut list_bytes = 0;
    // A node reads the definitions whole at its first list and after each change (below);
    // between changes it reads only each script's newest run.
    timed(server, "/api/admin/scripts").await;
    for i in 0..SAMPLES {
        let s = &scripts[(i * 7919) % scripts.len()];
        history.push(
            timed(
                server,
                &format!("/api/admin/scripts/runs?scriptId={s}&limit=50"),
            )
            .await
            .0,
        );
        by_status.push(
            timed(server, "/api/admin/scripts/runs?status=failed&limit=50")
                .await
                .0,
        );
        if i % 4 == 0 {
            let (ms, bytes) = timed(server, "/api/admin/scripts").await;
            list.push(ms);
            list_bytes = bytes;
        }
    }
    println!(
        "{name:<12} one script's history (50)  p50 {:>6.2} ms  p99 {:>6.2} ms",
        median(history.clone()),
        p99(history)
    );
    println!(
        "{name:<12} runs with status=failed     p50 {:>6.2} ms  p99 {:>6.2} ms",
        median(by_status.clone()),
        p99(by_status)
    );
    println!(
        "{name:<12} scripts list ({SCRIPTS})        p50 {:>6.2} ms  p99 {:>6.2} ms  {} KB",
        median(list.clone()),
        p99(list),
        list_bytes / 1000
    );
    let mut after_edit = Vec::new();
    for i in 0..EDITS {
        let path = format!("/api/admin/scripts/{}", scripts[i * 31 % scripts.len()]);
        let mut script = server.call(Method::GET, &path, None).await;
        script["description"] = json!(format!("edit {i}"));
        server.call(Method::PUT, &path, Some(&script)).await;
        after_edit.push(timed(server, "/api/admin/scripts").await.0);
    }
    println!(
        "{name:<12} the list right after an edit p50 {:>6.2} ms  p99 {:>6.2} ms  ({EDITS} edits)",
        median(after_edit.clone()),
        p99(after_edit)
    );
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("scriptd history benchmark: {SCRIPTS} scripts, {RUNS} runs\n");

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/history.db", dir.path().display());
    let sqlite = start_server(&["--database-url", &db]);
    let scripts = seed_scripts(&sqlite).await;
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    for sql in run_inserts(&scripts) {
        sqlx::query(&sql).execute(&pool).await.unwrap();
    }
    measure("SQLite", &sqlite, &scripts).await;

    let base = std::env::var("SCRIPTD_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let Ok(pool) = sqlx::PgPool::connect(&base).await else {
        println!("skipping PostgreSQL: no server on 127.0.0.1:5432");
        return;
    };
    let schema = format!("hist_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let pg = start_server(&["--database-url", &url]);
    let scripts = seed_scripts(&pg).await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    for sql in run_inserts(&scripts) {
        sqlx::query(&sql).execute(&pool).await.unwrap();
    }
    sqlx::query("ANALYZE runs").execute(&pool).await.unwrap();
    measure("PostgreSQL", &pg, &scripts).await;
    // The 100 000 runs would otherwise stay in the database after every run of the bench.
    drop(pg);
    pool.close().await;
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
}
