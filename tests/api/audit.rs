//! The audit log: every admin action that changes something (found in the OpenAPI document,
//! so a new endpoint without an entry fails here), written with the change; filters, pages,
//! the JSON lines export; failed logins counted per client; no secret in any entry.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{both_backends, Backend, Options, TestApp, PASSWORD, USER};

both_backends!(
    every_changing_admin_operation_is_recorded_with_no_secret,
    failed_logins_are_counted_per_client_in_one_entry,
    filters_pages_and_the_export_read_the_log,
    a_start_that_is_refused_records_nothing,
);

async fn entries(app: &TestApp, query: &str) -> Vec<Value> {
    app.get_json(&format!("/api/admin/audit?limit=500&{query}"))
        .await["entries"]
        .as_array()
        .unwrap()
        .clone()
}

/// The newest entry; asserts its action and target.
async fn newest(app: &TestApp, action: &str, target: &str) -> Value {
    let all = entries(app, "").await;
    let e = all
        .iter()
        .find(|e| e["action"] == action)
        .unwrap_or_else(|| panic!("no {action} entry in {all:#?}"))
        .clone();
    assert_eq!(e["target"], target, "{e}");
    assert_eq!(e, all[0], "{action} is not the newest entry");
    e
}

async fn every_changing_admin_operation_is_recorded_with_no_secret(b: Backend) {
    let app = TestApp::spawn(b).await;
    // Each operation that changes something, and the action it records. The document decides
    // which operations there are: one without an entry here fails the test.
    let expected: BTreeMap<&str, &str> = [
        ("createScript", "script.create"),
        ("updateScript", "script.update"),
        ("deleteScript", "script.delete"),
        ("runScript", "run.start"),
        ("cancelRun", "run.cancel"),
        ("createTriggerToken", "token.create"),
        ("revokeTriggerToken", "token.revoke"),
        ("restoreVersion", "script.restore"),
        ("importScripts", "scripts.import"),
        ("exportScripts", "scripts.export"),
        ("testNotifications", "notification.test"),
    ]
    .into_iter()
    .collect();
    let doc = app.get_json("/api/openapi.json").await;
    let mut changing: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if path.starts_with("/api/admin") && method != "get" {
                changing.push(op["operationId"].as_str().unwrap().to_string());
            }
        }
    }
    changing.sort();
    let mut known: Vec<String> = expected.keys().map(|k| k.to_string()).collect();
    known.sort();
    assert_eq!(changing, known, "admin operations that change something");

    let secret = "sekrit-value-4711";
    let body = json!({
        "name": "Audited", "codeIdentifier": "audited", "type": "bash",
        "script": "sleep 30", "concurrency": "parallel",
        "env": [{"key": "PASSWORD", "value": secret, "secret": true}],
        "notifications": [{"url": "http://127.0.0.1:9/hook", "on": ["failure"], "secret": "hook-secret-0815"}]
    });
    let created = app.create_script(body.clone()).await;
    let id = created["id"].as_str().unwrap().to_string();
    let e = newest(&app, "script.create", "script:audited").await;
    assert_eq!(e["actor"], format!("admin:{USER}"));
    assert_eq!(e["client"], "127.0.0.1");
    assert!(e["at"].is_string());

    let mut edited = body.clone();
    edited["timeoutMs"] = json!(9000);
    edited["env"][0]["value"] = json!("another-secret-0000");
    let put = |b: Value| {
        let app = &app;
        let id = id.clone();
        async move {
            let resp = app
                .admin(Method::PUT, &format!("/api/admin/scripts/{id}"))
                .json(&b)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
    };
    put(edited.clone()).await;
    let e = newest(&app, "script.update", "script:audited").await;
    assert_eq!(e["summary"]["fields"], json!(["timeoutMs"]));
    assert_eq!(e["summary"]["secretsChanged"], json!(["env:PASSWORD"]));
    assert_eq!(e["summary"]["version"], 2);

    let mut off = edited.clone();
    off["enabled"] = json!(false);
    off["env"][0]["value"] = Value::Null;
    off["notifications"][0]["secret"] = Value::Null;
    put(off.clone()).await;
    newest(&app, "script.disable", "script:audited").await;
    off["enabled"] = json!(true);
    put(off.clone()).await;
    newest(&app, "script.enable", "script:audited").await;

    let resp = app
        .call(
            Method::POST,
            &format!("/api/admin/scripts/{id}/versions/1/restore"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let e = newest(&app, "script.restore", "script:audited").await;
    assert_eq!(e["summary"]["restoredFrom"], 1);

    let token: Value = app
        .call(Method::POST, &format!("/api/admin/scripts/{id}/api-token"))
        .await
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    newest(&app, "token.create", "script:audited").await;
    app.call(Method::POST, &format!("/api/admin/scripts/{id}/api-token"))
        .await;
    newest(&app, "token.rotate", "script:audited").await;
    app.call(
        Method::DELETE,
        &format!("/api/admin/scripts/{id}/api-token"),
    )
    .await;
    newest(&app, "token.revoke", "script:audited").await;

    let run = app.run(&id).await;
    let e = newest(&app, "run.start", &format!("run:{run}")).await;
    assert_eq!(e["summary"]["script"], "audited");
    assert_eq!(e["summary"]["trigger"], "manual");
    assert_eq!(app.cancel(&run).await.status(), 202);
    newest(&app, "run.cancel", &format!("run:{run}")).await;
    app.wait_run(&run).await;

    app.call(
        Method::POST,
        &format!("/api/admin/scripts/{id}/notifications/test"),
    )
    .await;
    newest(&app, "notification.test", "script:audited").await;

    let resp = app
        .admin(Method::POST, "/api/admin/scripts/export")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let e = newest(&app, "scripts.export", "export").await;
    assert_eq!(e["summary"], json!({"scripts": 1, "sealed": false}));

    let file = "# x\nname = \"Imported\"\ncodeIdentifier = \"imported\"\ntype = \"bash\"\nrunner = \"host\"\n\
        enabled = true\nconcurrency = \"single\"\ntimeoutMs = 1000\nscript = \"echo hi\"\n\
        [schedule]\nenabled = false\n[apiTrigger]\nenabled = false\n";
    let resp = app
        .admin(Method::POST, "/api/admin/scripts/import")
        .json(&json!({"files": [{"name": "imported.toml", "content": file}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let e = newest(&app, "scripts.import", "import").await;
    assert_eq!(e["summary"]["created"], json!(["imported"]));
    let created = entries(&app, "action=script.create&target=script:imported").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["summary"]["via"], "import");

    let resp = app
        .call(Method::DELETE, &format!("/api/admin/scripts/{id}"))
        .await;
    assert_eq!(resp.status(), 204);
    newest(&app, "script.delete", "script:audited").await;

    // A trigger token's run is its own actor.
    let (_, tcode, ttoken) = app.triggered_bash("true", json!({})).await;
    let accepted = app.trigger(&tcode, &ttoken).await;
    let trun = accepted["runId"].as_str().unwrap();
    let e = newest(&app, "run.start", &format!("run:{trun}")).await;
    assert_eq!(e["actor"], format!("token:{tcode}"));

    // No secret value or token anywhere in the log.
    let all = app
        .admin(Method::GET, "/api/admin/audit/export")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for hidden in [
        secret,
        "another-secret-0000",
        "hook-secret-0815",
        &token,
        &ttoken,
        PASSWORD,
    ] {
        assert!(!all.contains(hidden), "{hidden} is in the audit log");
    }
}

async fn failed_logins_are_counted_per_client_in_one_entry(b: Backend) {
    let app = TestApp::spawn_with(
        b,
        Options {
            auth_failure_limit: Some(1000),
            ..Default::default()
        },
    )
    .await;
    for _ in 0..25 {
        let resp = app
            .client
            .get(app.url("/api/admin/scripts"))
            .basic_auth(USER, Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
    }
    // A request without credentials is a browser's first, not a failure.
    app.client
        .get(app.url("/api/admin/scripts"))
        .send()
        .await
        .unwrap();
    let mut last = Vec::new();
    for _ in 0..100 {
        last = entries(&app, "action=login.failed").await;
        if last.len() == 1 && last[0]["count"] == 25 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last.len(), 1, "{last:?}");
    assert_eq!(last[0]["count"], 25);
    assert_eq!(last[0]["client"], "127.0.0.1");
    assert_eq!(last[0]["target"], "admin-login");
    assert!(!last[0].to_string().contains("wrong"));
}

async fn filters_pages_and_the_export_read_the_log(b: Backend) {
    let app = TestApp::spawn(b).await;
    let mut ids = Vec::new();
    for n in 0..7 {
        ids.push(app.bash(&format!("echo {n}"), json!({})).await);
    }
    // Start-up settings are recorded once; then the seven creations.
    let settings = entries(&app, "action=settings.change").await;
    assert_eq!(settings.len(), 1);
    assert_eq!(settings[0]["actor"], "system");
    assert!(settings[0]["summary"]["settings"]["keepRuns"].is_number());
    assert!(!settings[0].to_string().contains(PASSWORD));

    let page = app
        .get_json("/api/admin/audit?action=script.create&limit=3")
        .await;
    let first: Vec<Value> = page["entries"].as_array().unwrap().clone();
    assert_eq!(first.len(), 3);
    let mut seen: Vec<String> = first
        .iter()
        .map(|e| e["id"].as_str().unwrap().into())
        .collect();
    let mut before = page["nextBefore"].as_str().unwrap().to_string();
    loop {
        let page = app
            .get_json(&format!(
                "/api/admin/audit?action=script.create&limit=3&before={before}"
            ))
            .await;
        seen.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string()),
        );
        match page["nextBefore"].as_str() {
            Some(next) => before = next.to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first");

    assert_eq!(entries(&app, "actor=admin:admin").await.len(), 7);
    assert_eq!(entries(&app, "actor=schedule").await.len(), 0);
    assert_eq!(entries(&app, "target=script:").await.len(), 7);
    let future = "2999-01-01T00:00:00Z";
    assert_eq!(entries(&app, &format!("from={future}")).await.len(), 0);
    assert_eq!(entries(&app, &format!("to={future}")).await.len(), 8);
    for bad in [
        "action=nope",
        "from=yesterday",
        "limit=0",
        "limit=501",
        "colour=red",
        "before=zzzz",
    ] {
        let resp = app
            .call(Method::GET, &format!("/api/admin/audit?{bad}"))
            .await;
        assert_eq!(resp.status(), 400, "{bad}");
    }

    let resp = app
        .admin(Method::GET, "/api/admin/audit/export?action=script.create")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let text = resp.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 7);
    assert!(lines.iter().all(|l| l["action"] == "script.create"));

    // A restart with the same settings records nothing; a changed one records what changed.
    let (dir, url) = app.stop().await;
    let app = TestApp::start_on(dir, url, Options::default()).await;
    assert_eq!(entries(&app, "action=settings.change").await.len(), 1);
    let (dir, url) = app.stop().await;
    let app = TestApp::start_on(
        dir,
        url,
        Options {
            keep_runs: Some(7),
            ..Default::default()
        },
    )
    .await;
    let settings = entries(&app, "action=settings.change").await;
    assert_eq!(settings.len(), 2);
    assert_eq!(settings[0]["summary"]["changed"], json!(["keepRuns"]));
}

async fn a_start_that_is_refused_records_nothing(b: Backend) {
    let app = TestApp::spawn_with(
        b,
        Options {
            max_queued_per_script: Some(1),
            ..Default::default()
        },
    )
    .await;
    let single = app.bash("sleep 30", json!({"concurrency": "single"})).await;
    let run = app.run(&single).await;
    assert_eq!(app.start_run(&single, None).await.status(), 409);
    let queued = app.bash("sleep 30", json!({"concurrency": "queue"})).await;
    let first = app.run(&queued).await;
    // Running, so the one place in the queue is free for the next.
    app.wait_status(&first, "running").await;
    let second = app.run(&queued).await;
    assert_eq!(
        app.start_run(&queued, None).await.status(),
        429,
        "the queue is full"
    );
    let mut started: Vec<String> = entries(&app, "action=run.start")
        .await
        .iter()
        .map(|e| e["target"].as_str().unwrap().to_string())
        .collect();
    started.sort();
    let mut admitted: Vec<String> = [&run, &first, &second]
        .iter()
        .map(|r| format!("run:{r}"))
        .collect();
    admitted.sort();
    assert_eq!(
        started, admitted,
        "one entry per admitted run, none for the refused ones"
    );
    for r in [&run, &first, &second] {
        app.cancel(r).await;
    }
}
