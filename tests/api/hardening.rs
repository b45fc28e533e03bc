//! Findings of the adversarial review that the other modules do not cover: caching and
//! browser-policy headers, CSRF through Referer and non-JSON bodies, private database files,
//! large inputs, the trigger's challenge and its body deadline, metrics behind the admin.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Backend, Options, TestApp};

#[tokio::test]
async fn api_answers_are_not_cached_and_pages_restrict_browser_features() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let id = app.bash("true", json!({})).await;
    let token = app
        .call(Method::POST, &format!("/api/admin/scripts/{id}/api-token"))
        .await;
    assert_eq!(
        token.headers()["cache-control"],
        "no-store",
        "the one-time token"
    );
    let list = app.call(Method::GET, "/api/admin/scripts").await;
    assert_eq!(list.headers()["cache-control"], "no-store");
    let page = app.call(Method::GET, "/admin/scripts").await;
    let policy = page.headers()["permissions-policy"].to_str().unwrap();
    assert!(policy.contains("camera=()") && policy.contains("microphone=()"));
    assert_eq!(page.headers()["cross-origin-opener-policy"], "same-origin");
}

#[tokio::test]
async fn metrics_need_the_admin_unless_made_public() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let anonymous = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let admin = app.call(Method::GET, "/metrics").await;
    assert_eq!(admin.status(), 200);
    assert!(admin.text().await.unwrap().contains("scriptd_runs_running"));
}

#[tokio::test]
async fn cross_site_requests_are_refused_by_referer_and_by_content_type() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let id = app.bash("true", json!({})).await;
    let by_referer = app
        .admin(Method::POST, &format!("/api/admin/scripts/{id}/run"))
        .header("referer", "http://evil.example/page")
        .send()
        .await
        .unwrap();
    assert_eq!(by_referer.status(), 403);
    let other_port = app
        .admin(Method::POST, &format!("/api/admin/scripts/{id}/run"))
        .header("origin", "http://127.0.0.1:1")
        .send()
        .await
        .unwrap();
    assert_eq!(other_port.status(), 403, "another port is another origin");
    // What an HTML form could send: refused whatever it claims to be.
    let form = app
        .admin(Method::POST, &format!("/api/admin/scripts/{id}/run"))
        .header("content-type", "text/plain")
        .body(r#"{"input": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    let runs: Value = app.get_json("/api/admin/scripts/runs").await;
    assert_eq!(runs["runs"], json!([]), "nothing ran");
}

#[tokio::test]
async fn the_database_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.bash("true", json!({})).await;
    for name in ["scriptd.db", "scriptd.db-wal"] {
        let path = app.data_dir.path().join(name);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name} is {mode:o}");
    }
}

#[tokio::test]
async fn a_large_input_reaches_the_script_through_a_private_file() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let id = app
        .bash(
            "if [ -n \"$SCRIPTD_INPUT_FILE\" ]; then stat -c %a \"$SCRIPTD_INPUT_FILE\"; wc -c < \"$SCRIPTD_INPUT_FILE\"; else echo inline ${#SCRIPTD_INPUT}; fi",
            json!({}),
        )
        .await;
    let big = "z".repeat(300 * 1024);
    let resp = app.start_run(&id, Some(json!({"input": big}))).await;
    assert_eq!(resp.status(), 202);
    let run_id = resp.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_string();
    let run = app.wait_run(&run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let log = app.log(&run_id).await;
    assert!(log.starts_with("600\n"), "{log}");
    assert!(log.contains(&(300 * 1024 + 2).to_string()), "{log}");
    let small = app.start_run(&id, Some(json!({"input": "s"}))).await;
    let small_id = small.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_string();
    app.wait_run(&small_id).await;
    assert_eq!(app.log(&small_id).await.trim(), "inline 3");
}

#[tokio::test]
async fn the_trigger_challenges_with_bearer_and_bounds_its_body() {
    let opts = Options {
        body_read_timeout: Some(Duration::from_millis(700)),
        ..Default::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, opts).await;
    let (_, code, token) = app.triggered_bash("true", json!({})).await;
    let wrong = app
        .client
        .post(app.url(&format!("/api/scripts/{code}/run")))
        .bearer_auth("sdt_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));

    // A wrong token is refused from the headers, before a body that never comes.
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/scripts/{code}/run HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sdt_wrong\r\n\
         Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut answer))
        .await
        .expect("answered without reading the body")
        .unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 401"));

    // With the right token, a body trickling in too slowly is cut off.
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/scripts/{code}/run HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(20), tcp.read(&mut answer))
        .await
        .expect("a trickled body is not waited for forever")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
}

#[tokio::test]
async fn the_queue_is_bounded_and_says_when_to_retry() {
    let opts = Options {
        max_concurrent_runs: Some(1),
        max_queued_per_script: Some(3),
        ..Default::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, opts).await;
    let blocker = app.run(&app.bash("sleep 30", json!({})).await).await;
    app.wait_status(&blocker, "running").await;
    let queue = app.bash("true", json!({"concurrency": "queue"})).await;
    for _ in 0..3 {
        assert_eq!(app.start_run(&queue, None).await.status(), 202);
    }
    let refused = app.start_run(&queue, None).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "queue_full");
    // Other scripts are not held back by this one's bound.
    let other = app.bash("true", json!({"concurrency": "parallel"})).await;
    assert_eq!(app.start_run(&other, None).await.status(), 202);
    app.cancel(&blocker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_hashes_little_and_keeps_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    // Behind a proxy that names the client, as a deployment would be.
    let (server, password) = crate::process::Server::start_generating_password(
        dir.path(),
        &["--client-ip-header", "X-Forwarded-For"],
    )
    .await;
    let before = server.rss_kib();
    let guesses = (0..100).map(|i| {
        server
            .client()
            .get(server.url("/api/admin/scripts"))
            .header("x-forwarded-for", "198.51.100.7")
            .basic_auth("admin", Some(format!("wrong-{i}")))
            .send()
    });
    let answers = futures_util::future::join_all(guesses).await;
    let statuses: Vec<u16> = answers
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    let hashed = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(hashed + refused, 100, "{statuses:?}");
    assert!(
        hashed <= 20,
        "{hashed} wrong passwords were hashed; the budget is 20"
    );
    let grown_mib = server.rss_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 100, "memory grew by {grown_mib} MiB");
    // The admin, another client with the right password, is not locked out by the flood.
    let ok = server
        .client()
        .get(server.url("/api/admin/scripts"))
        .header("x-forwarded-for", "203.0.113.9")
        .basic_auth("admin", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    println!("wrong-password flood: {hashed} hashed, {refused} refused, +{grown_mib} MiB");
}

/// Small contract bugs from the API fuzz review (issue 17: A2, E5, A3, negative `since`).
#[tokio::test]
async fn api_contract_edge_cases_get_the_documented_answers() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // E5: arrays where objects belong are refused and create nothing.
    let positional = json!(["n", "code", "", "bash", "host", "true"]);
    for body in [
        positional,
        json!({"name": "x", "codeIdentifier": "x", "type": "bash", "script": "true", "schedule": [false, "", "UTC"]}),
        json!({"name": "x", "codeIdentifier": "x", "type": "bash", "script": "true", "apiTrigger": [true]}),
        json!({"name": "x", "codeIdentifier": "x", "type": "bash", "script": "true", "env": [["K", "v", false]]}),
    ] {
        let resp = app
            .admin(Method::POST, "/api/admin/scripts")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 422, "{body}");
    }
    assert_eq!(app.get_json("/api/admin/scripts").await, json!([]));

    // A2: a wait that runs out answers like a start without wait.
    let (_, code, token) = app.triggered_bash("sleep 5", json!({})).await;
    let resp = app
        .client
        .post(app.url(&format!("/api/scripts/{code}/run?wait=true&timeoutMs=0")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert!(body["runId"].is_string(), "{body}");
    app.cancel(body["runId"].as_str().unwrap()).await;

    // The trigger answers an unauthenticated call 401 whatever its query says.
    let resp = app
        .client
        .post(app.url(&format!("/api/scripts/{code}/run?wait=maybe")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // A3: no time past year 9999 is listed.
    let preview = app
        .get_json(
            "/api/admin/scripts/schedule-preview?cron=0%200%20*%20*%20*&from=9999-12-31T23:59:59Z",
        )
        .await;
    assert_eq!(preview["times"], json!([]), "{preview}");

    // A negative `since` is refused, not taken as 0.
    let run = app.run(&app.bash("true", json!({})).await).await;
    let resp = app
        .call(
            Method::GET,
            &format!("/api/admin/scripts/runs/{run}/stream?since=-5"),
        )
        .await;
    assert_eq!(resp.status(), 400);

    // A codeIdentifier of separators only is refused with a message that does not ask for one.
    let resp = app
        .admin(Method::POST, "/api/admin/scripts")
        .json(&json!({"name": "n", "codeIdentifier": "---", "type": "bash", "script": "true"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["field"], "codeIdentifier");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("letter, digit or '_'"), "{message}");

    // Integers as JSON Schema counts them: 600000.0 is an integer, 600000.5 is not.
    let created = app
        .create_script(
            json!({"name": "f", "codeIdentifier": "float-int", "type": "bash",
                              "script": "true", "timeoutMs": 600000.0, "memoryLimitMb": 64.0}),
        )
        .await;
    assert_eq!(created["timeoutMs"], 600000);
    assert_eq!(created["memoryLimitMb"], 64);
    let resp = app
        .admin(Method::POST, "/api/admin/scripts")
        .json(
            &json!({"name": "f", "codeIdentifier": "float-frac", "type": "bash",
                      "script": "true", "timeoutMs": 600000.5}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);

    // The trigger's wait refuses a negative timeout instead of reading it as unsigned.
    let resp = app
        .client
        .post(app.url(&format!("/api/scripts/{code}/run?wait=true&timeoutMs=-1")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["field"], "timeoutMs");

    // Plain words rather than the parser's or a field name.
    let dup = json!({"name": "d", "codeIdentifier": "dup", "type": "bash", "script": "true"});
    app.create_script(dup.clone()).await;
    let resp = app
        .admin(Method::POST, "/api/admin/scripts")
        .json(&dup)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["field"], "codeIdentifier");
    assert_eq!(
        err["error"]["message"],
        "another script already uses this code"
    );
    for (cron, says) in [
        ("61 * * * *", "out of range"),
        ("* * *", "needs 5 or 6 fields"),
    ] {
        let resp = app
            .call(
                Method::GET,
                &format!(
                    "/api/admin/scripts/schedule-preview?cron={}",
                    cron.replace(' ', "%20")
                ),
            )
            .await;
        assert_eq!(resp.status(), 400);
        let err: Value = resp.json().await.unwrap();
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{cron}: {message}");
        assert!(!message.contains("Component") && !message.contains("Invalid pattern"));
    }

    // A JSON `null` body starts a run without input, as the document allows.
    let script = app.bash("true", json!({"concurrency": "parallel"})).await;
    let resp = app
        .admin(Method::POST, &format!("/api/admin/scripts/{script}/run"))
        .header("content-type", "application/json")
        .body("null")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let run: Value = resp.json().await.unwrap();
    let done = app.wait_run(run["runId"].as_str().unwrap()).await;
    assert_eq!(done["input"], Value::Null);
    assert_eq!(done["status"], "succeeded");
}

#[tokio::test]
async fn allowed_runners_keep_code_off_the_host() {
    use scriptd::domain::Runner;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let host_script = app.bash("echo on-the-host", json!({})).await;
    let (dir, url) = app.stop().await;
    let opts = Options {
        allowed_runners: Some(vec![Runner::Isolated, Runner::Browser]),
        ..Default::default()
    };
    let app = TestApp::start_on(dir, url, opts).await;
    let refused = app
        .admin(Method::POST, "/api/admin/scripts")
        .json(&json!({"name": "h", "codeIdentifier": "h", "type": "bash", "script": "true"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let err: Value = refused.json().await.unwrap();
    assert_eq!(err["error"]["field"], "runner");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not allowed"));
    // A host script saved before cannot run now.
    let run = app.start_run(&host_script, None).await;
    assert_eq!(run.status(), 403);
    let runs: Value = app.get_json("/api/admin/scripts/runs").await;
    assert_eq!(runs["runs"], json!([]), "nothing ran");
    // Isolated scripts still do.
    let iso = app
        .create_script(json!({"name": "i", "codeIdentifier": "i", "type": "node",
                              "runner": "isolated", "script": "1 + 2"}))
        .await;
    let run = app.run(iso["id"].as_str().unwrap()).await;
    assert_eq!(app.wait_run(&run).await["result"], 3);
}

/// A misspelt filter (`staus=failed`) must not silently list everything: unknown query
/// parameters are refused with the ones the endpoint knows.
#[tokio::test]
async fn unknown_query_parameters_are_refused_by_name() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let id = app.bash("true", json!({})).await;
    let run = app.run(&id).await;
    app.wait_run(&run).await;
    for path in [
        "/api/admin/scripts?typ=bash".to_string(),
        "/api/admin/scripts/runs?staus=failed".to_string(),
        "/api/admin/scripts/schedule-preview?cron=*+*+*+*+*&zone=UTC".to_string(),
        format!("/api/admin/scripts/runs/{run}/stream?from=0"),
    ] {
        let resp = app.call(Method::GET, &path).await;
        assert_eq!(resp.status(), 400, "{path}");
        let body: Value = resp.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("unknown field"), "{path}: {message}");
    }
    let (_, code, token) = app.triggered_bash("true", json!({})).await;
    let resp = app
        .client
        .post(app.url(&format!("/api/scripts/{code}/run?wiat=true")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let known = app
        .call(Method::GET, "/api/admin/scripts/runs?status=failed&limit=5")
        .await;
    assert_eq!(known.status(), 200, "known parameters still work");
}

/// No body means no input; a body must be JSON, and whitespace alone is not.
#[tokio::test]
async fn an_empty_body_starts_a_run_and_a_blank_one_is_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let id = app.bash("true", json!({"concurrency": "parallel"})).await;
    let path = format!("/api/admin/scripts/{id}/run");
    let empty = app.admin(Method::POST, &path).send().await.unwrap();
    assert_eq!(empty.status(), 202);
    let blank = app
        .admin(Method::POST, &path)
        .header("content-type", "application/json")
        .body("\n")
        .send()
        .await
        .unwrap();
    assert_eq!(blank.status(), 400);
    let (_, code, token) = app.triggered_bash("true", json!({})).await;
    let blank = app
        .client
        .post(app.url(&format!("/api/scripts/{code}/run")))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(" ")
        .send()
        .await
        .unwrap();
    assert_eq!(blank.status(), 400);
}
