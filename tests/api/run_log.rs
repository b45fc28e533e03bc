//! A run's stored log read in parts: pages before and after any line, and search.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{
    both_backends, eventually, execute_sql, query_numbers, store_with_a_running_run, Backend,
    TestApp,
};

both_backends!(
    pages_of_the_stored_log_read_both_ways_across_chunks,
    a_search_finds_matching_lines_in_order_and_goes_on_in_parts,
    a_search_never_finds_a_masked_secret,
    appends_hold_to_the_lease_and_a_batch_sent_again_is_stored_once,
    an_append_that_meets_a_lease_expiry_waits_and_then_stores_nothing,
);

fn seqs(page: &Value, key: &str) -> Vec<i64> {
    page[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["seq"].as_i64().unwrap())
        .collect()
}

async fn pages_of_the_stored_log_read_both_ways_across_chunks(b: Backend) {
    let app = TestApp::spawn(b).await;
    // Printed in bursts, so the lines are stored in many chunks of different sizes.
    let run = app
        .run(
            &app.bash(
                "for i in $(seq 0 11); do seq $((i*1000+1)) $((i*1000+1000)); sleep 0.02; done; echo oops >&2",
                json!({}),
            )
            .await,
        )
        .await;
    app.wait_run(&run).await;
    let page = |q: String| {
        let app = &app;
        let run = run.clone();
        async move {
            app.get_json(&format!("/api/admin/scripts/runs/{run}/lines?{q}"))
                .await
        }
    };

    let first = page("limit=1000".into()).await;
    assert_eq!(seqs(&first, "lines"), (1..=1000).collect::<Vec<_>>());
    assert_eq!(first["lines"][0]["line"], "1");
    assert_eq!(first["lines"][0]["stream"], "stdout");
    assert!(first["lines"][0]["ts"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        (first["hasBefore"].as_bool(), first["hasAfter"].as_bool()),
        (Some(false), Some(true))
    );

    for (before, limit) in [
        (5001, 2000),
        (1500, 5000),
        (2, 10),
        (12001, 1),
        (7777, 3333),
    ] {
        let p = page(format!("before={before}&limit={limit}")).await;
        let want: Vec<i64> = ((before - limit).max(1)..before).collect();
        assert_eq!(seqs(&p, "lines"), want, "before={before} limit={limit}");
        for l in p["lines"].as_array().unwrap() {
            assert_eq!(l["line"], l["seq"].as_i64().unwrap().to_string());
        }
        assert_eq!(p["hasBefore"], before - limit > 1, "before={before}");
        assert_eq!(p["hasAfter"], true);
    }
    let end = page(format!("before={}&limit=3", i64::MAX)).await;
    assert_eq!(seqs(&end, "lines"), [11999, 12000, 12001]);
    assert_eq!(end["lines"][2]["line"], "oops");
    assert_eq!(end["lines"][2]["stream"], "stderr");
    assert_eq!(
        (end["hasBefore"].as_bool(), end["hasAfter"].as_bool()),
        (Some(true), Some(false))
    );
    let after = page("after=6543&limit=5000".into()).await;
    assert_eq!(seqs(&after, "lines"), (6544..=11543).collect::<Vec<_>>());
    let past = page("after=12001".into()).await;
    assert_eq!(seqs(&past, "lines"), Vec::<i64>::new());
    assert_eq!(
        (past["hasBefore"].as_bool(), past["hasAfter"].as_bool()),
        (Some(true), Some(false))
    );

    for bad in [
        "limit=0",
        "limit=5001",
        "after=-1",
        "before=0",
        "after=1&before=5",
        "from=3",
        "limit=x",
    ] {
        let resp = app
            .call(
                Method::GET,
                &format!("/api/admin/scripts/runs/{run}/lines?{bad}"),
            )
            .await;
        assert_eq!(resp.status(), 400, "{bad}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"]["message"].is_string(), "{bad}: {body}");
    }
    let missing = app
        .call(Method::GET, "/api/admin/scripts/runs/no-such-run/lines")
        .await;
    assert_eq!(missing.status(), 404);
    let anonymous = reqwest::get(app.url(&format!("/api/admin/scripts/runs/{run}/lines")))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

async fn a_search_finds_matching_lines_in_order_and_goes_on_in_parts(b: Backend) {
    let app = TestApp::spawn(b).await;
    // 250 000 lines: more than one search call reads, so the last match needs a second call.
    let run = app
        .run(
            &app.bash(
                // The pauses keep the two pipes' lines in this order.
                "echo 'first Needle'; seq 2 249998; sleep 0.2; echo 'NEEDLE in stderr' >&2; sleep 0.2; \
                 echo 'a \u{1b}[31mneedle\u{1b}[0m, red'",
                json!({}),
            )
            .await,
        )
        .await;
    app.wait_run(&run).await;
    let search = |q: String| {
        let app = &app;
        let run = run.clone();
        async move {
            app.get_json(&format!("/api/admin/scripts/runs/{run}/log/search?{q}"))
                .await
        }
    };

    let part = search("q=needle".into()).await;
    assert_eq!(
        seqs(&part, "matches"),
        [1],
        "the first call reads 200 000 lines"
    );
    let next = part["next"].as_i64().expect("a next place to go on from");
    assert!((200_000..249_999).contains(&next), "{next}");
    let rest = search(format!("q=needle&after={next}")).await;
    assert_eq!(seqs(&rest, "matches"), [249_999, 250_000]);
    assert_eq!(rest["matches"][0]["stream"], "stderr");
    assert_eq!(rest["matches"][0]["line"], "NEEDLE in stderr");
    assert_eq!(rest["next"], Value::Null, "the end of the log");

    let one = search("q=NeEdLe&limit=1".into()).await;
    assert_eq!(seqs(&one, "matches"), [1]);
    assert_eq!(one["next"], 1, "stopped at the limit");
    let number = search("q=123456".into()).await;
    assert_eq!(seqs(&number, "matches"), [123_456]);
    let nothing = search(format!("q=absent&after={next}")).await;
    assert_eq!(seqs(&nothing, "matches"), Vec::<i64>::new());
    assert_eq!(nothing["next"], Value::Null);

    let long = "x".repeat(201);
    for bad in [
        "q=",
        "",
        &format!("q={long}"),
        "q=a&limit=0",
        "q=a&limit=501",
        "q=a&after=-1",
        "q=a&regex=1",
    ] {
        let resp = app
            .call(
                Method::GET,
                &format!("/api/admin/scripts/runs/{run}/log/search?{bad}"),
            )
            .await;
        assert_eq!(resp.status(), 400, "{bad}");
    }
    let anonymous = reqwest::get(app.url(&format!("/api/admin/scripts/runs/{run}/log/search?q=a")))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

async fn a_search_never_finds_a_masked_secret(b: Backend) {
    let app = TestApp::spawn(b).await;
    let secret = "hunter2-log-search-secret";
    let run = app
        .run(
            &app.bash(
                "echo \"token is $TOKEN\"",
                json!({"env": [{"key": "TOKEN", "value": secret, "secret": true}]}),
            )
            .await,
        )
        .await;
    app.wait_run(&run).await;
    let found = app
        .get_json(&format!(
            "/api/admin/scripts/runs/{run}/log/search?q=hunter2"
        ))
        .await;
    assert_eq!(seqs(&found, "matches"), Vec::<i64>::new());
    let masked = app
        .get_json(&format!(
            "/api/admin/scripts/runs/{run}/log/search?q=token%20is"
        ))
        .await;
    assert_eq!(seqs(&masked, "matches"), [1]);
    assert!(!masked.to_string().contains(secret));
}

/// SQLite: a run's log reaches the database file soon after it is written, copied from the WAL
/// in the background rather than by the commits that wrote it (which do it themselves only past
/// a mark far above this log's size).
#[tokio::test]
async fn a_sqlite_log_is_copied_from_the_wal_in_the_background() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let db = app.data_dir.path().join("scriptd.db");
    let size = || std::fs::metadata(&db).unwrap().len();
    let before = size();
    let run = app.run(&app.bash("seq 1 600000", json!({})).await).await;
    assert_eq!(app.wait_run(&run).await["status"], "succeeded");
    // Stored, these lines take about 5.3 MB (their text and a few bytes of JSON each). While
    // they stream in, each look copies what is written; what the last look missed may stay in
    // the WAL until more is written (a quiet look copies only past 1 000 pages).
    eventually(10, "the log copied into the database file", || {
        size() > before + 2_000_000
    })
    .await;
}

fn log_lines(seqs: &[i64]) -> Vec<scriptd::domain::LogLine> {
    seqs.iter()
        .map(|&seq| scriptd::domain::LogLine {
            seq,
            stream: scriptd::domain::LogStream::Stdout,
            line: format!("line {seq}"),
            ts: chrono::Utc::now(),
        })
        .collect()
}

/// Lines are stored only under the run's lease and while it runs; a batch sent again (its
/// commit's answer lost) is taken as stored, and stored once.
async fn appends_hold_to_the_lease_and_a_batch_sent_again_is_stored_once(b: Backend) {
    let (store, url, _dir) = store_with_a_running_run(b).await;
    let append = |lease: &'static str, seqs: &'static [i64]| {
        let store = store.clone();
        async move {
            store
                .append_log("r", lease, &log_lines(seqs))
                .await
                .unwrap()
        }
    };
    let stored = || async {
        let lines = store.read_log("r", 0, 100).await.unwrap();
        lines.iter().map(|l| l.seq).collect::<Vec<_>>()
    };
    assert!(append("lease-a", &[1, 2, 3]).await);
    assert!(append("lease-a", &[1, 2, 3]).await, "a batch sent again");
    assert_eq!(stored().await, [1, 2, 3], "stored once");
    assert!(!append("lease-b", &[4, 5]).await, "another lease");
    // The log-cap marker comes after a gap: two chunks at once.
    assert!(append("lease-a", &[4, 5, 9]).await);
    assert_eq!(stored().await, [1, 2, 3, 4, 5, 9]);
    execute_sql(&url, &["UPDATE runs SET status = 'failed' WHERE id = 'r'"]).await;
    assert!(!append("lease-a", &[10]).await, "a run that has ended");
    assert!(!append("lease-a", &[10, 12]).await);
    assert_eq!(stored().await, [1, 2, 3, 4, 5, 9]);
}

/// A batch of lines that meets a lease expiry being written waits for it, then stores nothing:
/// no line lands in a run another node has ended.
async fn an_append_that_meets_a_lease_expiry_waits_and_then_stores_nothing(b: Backend) {
    use sqlx::Connection;
    let (store, url, _dir) = store_with_a_running_run(b).await;
    // Another node ends the run, its transaction still open.
    let mut expiry = match b {
        Backend::Sqlite => Client::Sqlite(sqlx::SqliteConnection::connect(&url).await.unwrap()),
        Backend::Postgres => Client::Postgres(sqlx::PgConnection::connect(&url).await.unwrap()),
    };
    let begin = match b {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    };
    expiry.execute(begin).await;
    expiry
        .execute("UPDATE runs SET status = 'failed', owner = NULL WHERE id = 'r'")
        .await;
    let append = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .append_log("r", "lease-a", &log_lines(&[1, 2, 3]))
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!append.is_finished(), "the batch waits for the expiry");
    expiry.execute("COMMIT").await;
    let stored = append.await.unwrap().unwrap();
    assert!(!stored, "the batch is refused once the run has ended");
    let chunks = query_numbers(&url, "SELECT COUNT(*) FROM run_log_chunks").await;
    assert_eq!(chunks, vec![0], "nothing was stored");
}

/// One connection of another client, on either backend.
enum Client {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Client {
    async fn execute(&mut self, sql: &str) {
        use sqlx::Executor;
        match self {
            Client::Sqlite(c) => c.execute(sql).await.map(drop),
            Client::Postgres(c) => c.execute(sql).await.map(drop),
        }
        .unwrap();
    }
}
