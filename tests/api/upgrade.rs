//! A database written by an older version keeps its data when a newer one starts on it.

use std::str::FromStr;

use sqlx::migrate::Migrator;

use crate::helpers::{
    both_backends, execute_sql, parse_sse, pg_schema_url, Backend, Options, TestApp,
};

both_backends!(logs_stored_line_by_line_by_an_older_version_survive_the_upgrade);

/// The first migration that stores logs as chunks: the database is built up to just before it.
const CHUNKS: i64 = 20261125000002;

const RUN_ID: &str = "01a2116a-0000-7000-8000-000000000002";

/// Applies only the migrations an older version had.
fn before_chunks(mut m: Migrator) -> Migrator {
    m.migrations = m
        .migrations
        .iter()
        .filter(|m| m.version < CHUNKS)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    m
}

/// The rows an older version wrote for a finished run with three lines of output.
const OLD_ROWS: [&str; 5] = [
    "INSERT INTO scripts (id, name, code_identifier, script_type, runner, script, timeout_ms, \
     enabled, concurrency, created_at, updated_at) VALUES ('01a2116a-0000-7000-8000-000000000001', \
     'old', 'old', 'bash', 'host', 'echo', 1000, TRUE, 'parallel', 1700000000000, 1700000000000)",
    "INSERT INTO runs (id, script_id, status, trigger_kind, queued_at, started_at, finished_at, \
     exit_code, log_bytes) VALUES ('01a2116a-0000-7000-8000-000000000002', \
     '01a2116a-0000-7000-8000-000000000001', 'succeeded', 'manual', 1700000000000, \
     1700000000001, 1700000000009, 0, 40)",
    "INSERT INTO run_logs (run_id, seq, stream, ts, line) VALUES \
     ('01a2116a-0000-7000-8000-000000000002', 1, 'stdout', 1700000000002, 'first line')",
    "INSERT INTO run_logs (run_id, seq, stream, ts, line) VALUES \
     ('01a2116a-0000-7000-8000-000000000002', 2, 'stderr', 1700000000003, 'a \"quoted\" é')",
    "INSERT INTO run_logs (run_id, seq, stream, ts, line) VALUES \
     ('01a2116a-0000-7000-8000-000000000002', 3, 'stdout', 1700000000004, '')",
];

async fn logs_stored_line_by_line_by_an_older_version_survive_the_upgrade(b: Backend) {
    let data_dir = tempfile::tempdir().unwrap();
    // The schema an older version had, then its rows.
    let url = match b {
        Backend::Sqlite => {
            let url = format!("sqlite://{}/scriptd.db", data_dir.path().display());
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
                .unwrap()
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            before_chunks(sqlx::migrate!("migrations/sqlite"))
                .run(&pool)
                .await
                .unwrap();
            pool.close().await;
            url
        }
        Backend::Postgres => {
            let url = pg_schema_url().await;
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            before_chunks(sqlx::migrate!("migrations/postgres"))
                .run(&pool)
                .await
                .unwrap();
            pool.close().await;
            url
        }
    };
    execute_sql(&url, &OLD_ROWS).await;

    let app = TestApp::start_on(data_dir, url, Options::default()).await;
    assert_eq!(app.log(RUN_ID).await, "first line\na \"quoted\" é\n\n");
    let text = app
        .admin(
            reqwest::Method::GET,
            &format!("/api/admin/scripts/runs/{RUN_ID}/stream?since=1"),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = parse_sse(&text);
    let lines: Vec<(Option<String>, serde_json::Value)> = events
        .iter()
        .filter(|e| e.event == "log")
        .map(|e| (e.id.clone(), e.data.clone()))
        .collect();
    assert_eq!(lines.len(), 2, "resumed after line 1: {text}");
    assert_eq!(lines[0].0.as_deref(), Some("2"));
    assert_eq!(lines[0].1["stream"], "stderr");
    assert_eq!(lines[0].1["line"], "a \"quoted\" é");
    assert_eq!(lines[1].1["line"], "");
    assert!(events.iter().any(|e| e.event == "done"));

    // A script stored before versions were kept gets its first version at the start; its old
    // runs ran no known version.
    let script = "01a2116a-0000-7000-8000-000000000001";
    assert_eq!(
        app.get_json(&format!("/api/admin/scripts/{script}")).await["version"],
        1
    );
    let versions = app
        .get_json(&format!("/api/admin/scripts/{script}/versions"))
        .await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 1);
    assert_eq!(versions["versions"][0]["author"], "system");
    let v1 = app
        .get_json(&format!("/api/admin/scripts/{script}/versions/1"))
        .await;
    assert_eq!(v1["definition"]["script"], "echo");
    assert_eq!(
        app.get_run(RUN_ID).await["scriptVersion"],
        serde_json::Value::Null
    );
}
