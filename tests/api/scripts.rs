//! Script definitions through the API: CRUD, every validation rule, error shapes.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{both_backends, merge, Backend, TestApp};

both_backends!(
    create_read_update_list_and_delete_round_trip,
    every_validation_rule_is_a_400_naming_its_field,
    duplicate_code_identifier_is_a_conflict,
    malformed_bodies_get_json_errors_not_500s,
    secret_values_are_write_only_and_kept_on_update,
    data_survives_a_restart,
    the_list_shows_every_change_at_once,
    the_search_matches_percent_underscore_and_backslash_as_themselves,
);

/// `?q=` searches names, codes and descriptions for the text as typed: `_`, `%` and `\` are
/// not wildcards (nor dropped).
async fn the_search_matches_percent_underscore_and_backslash_as_themselves(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.bash(
        "true",
        json!({"name": "My Tool 100%", "codeIdentifier": "my_tool"}),
    )
    .await;
    app.bash(
        "true",
        json!({"name": "My Tool 1000", "codeIdentifier": "mytool"}),
    )
    .await;
    app.bash(
        "true",
        json!({"name": "Paths", "codeIdentifier": "paths", "description": "C:\\temp"}),
    )
    .await;
    assert_eq!(app.script_codes("q=my_tool").await, ["my_tool"]);
    assert_eq!(app.script_codes("q=y_t").await, ["my_tool"]);
    assert_eq!(app.script_codes("q=_").await, ["my_tool"]);
    assert_eq!(app.script_codes("q=100%25").await, ["my_tool"]);
    assert_eq!(app.script_codes("q=%25").await, ["my_tool"]);
    assert_eq!(app.script_codes("q=%5C").await, ["paths"]);
    assert_eq!(app.script_codes("q=tool").await, ["my_tool", "mytool"]);
}

/// The server keeps the list it last read while the database's count of script changes says
/// it is current: every kind of change, the scheduler's and the token's included, shows in the
/// next list.
async fn the_list_shows_every_change_at_once(b: Backend) {
    let app = TestApp::spawn(b).await;
    let entry = |list: Value, id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .cloned()
    };
    let id = app.bash("true", json!({"name": "Before"})).await;
    let other = app.bash("true", json!({"name": "Other"})).await;
    let listed = app.get_json("/api/admin/scripts").await;
    assert_eq!(entry(listed, &id).unwrap()["name"], "Before");

    let path = format!("/api/admin/scripts/{id}");
    let edit = |field: &'static str, value: Value| app.edit_script(&id, field, value);
    edit("name", json!("After")).await;
    let listed = entry(app.get_json("/api/admin/scripts").await, &id).unwrap();
    assert_eq!(listed["name"], "After");
    assert_eq!(listed["version"], 2);

    let resp = app.call(Method::POST, &format!("{path}/api-token")).await;
    assert_eq!(resp.status(), 201);
    let listed = entry(app.get_json("/api/admin/scripts").await, &id).unwrap();
    assert_eq!(listed["apiTrigger"]["hasToken"], true);

    // The scheduler sets a schedule's next fire by itself, after the edit.
    edit(
        "schedule",
        json!({"enabled": true, "cron": "0 3 1 1 *", "timezone": "UTC"}),
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let listed = entry(app.get_json("/api/admin/scripts").await, &id).unwrap();
        if listed["schedule"]["nextRunAt"].is_string() {
            assert_eq!(listed["schedule"]["enabled"], true);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no next run listed: {listed}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let run = app.run(&id).await;
    app.wait_run(&run).await;
    let listed = entry(app.get_json("/api/admin/scripts").await, &id).unwrap();
    assert_eq!(listed["lastRun"]["id"], run.as_str());
    assert_eq!(listed["lastRun"]["status"], "succeeded");

    let resp = app.call(Method::DELETE, &path).await;
    assert_eq!(resp.status(), 204);
    let listed = app.get_json("/api/admin/scripts").await;
    assert!(entry(listed.clone(), &id).is_none(), "{listed}");
    assert_eq!(entry(listed, &other).unwrap()["name"], "Other");
}

fn valid() -> Value {
    json!({"name": "Sync Project", "codeIdentifier": "Sync Project!", "type": "bash", "script": "echo hi"})
}

async fn create_read_update_list_and_delete_round_trip(b: Backend) {
    let app = TestApp::spawn(b).await;
    let created = app
        .create_script(json!({
            "name": "Sync Project", "codeIdentifier": "Sync Project!", "type": "node",
            "runner": "host", "script": "console.log(1)", "description": "d",
            "env": [{"key": "A", "value": "1", "secret": false}],
            "timeoutMs": 5000, "concurrency": "queue",
            "schedule": {"enabled": true, "cron": "0 3 * * *", "timezone": "Europe/Berlin"}
        }))
        .await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["codeIdentifier"], "sync-project");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["concurrency"], "queue");
    assert_eq!(
        created["env"][0],
        json!({"key": "A", "value": "1", "secret": false})
    );
    assert!(created["schedule"]["nextRunAt"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(created["apiTrigger"]["hasToken"], false);

    let got: Value = app.get_json(&format!("/api/admin/scripts/{id}")).await;
    assert_eq!(got["script"], "console.log(1)");

    app.create_script(
        json!({"name": "Other", "codeIdentifier": "other", "type": "bash", "script": "true"}),
    )
    .await;
    let by_q: Value = app.get_json("/api/admin/scripts?q=sync").await;
    assert_eq!(by_q.as_array().unwrap().len(), 1);
    let by_type: Value = app.get_json("/api/admin/scripts?type=bash").await;
    assert_eq!(by_type.as_array().unwrap().len(), 1);
    assert_eq!(by_type[0]["codeIdentifier"], "other");
    let all: Value = app.get_json("/api/admin/scripts").await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    for s in all.as_array().unwrap() {
        assert!(
            s.get("script").is_none() && s.get("env").is_none(),
            "lists carry neither bodies nor env: {s}"
        );
    }

    let mut update = got.clone();
    update["name"] = json!("Renamed");
    update["enabled"] = json!(false);
    let resp = app
        .admin(Method::PUT, &format!("/api/admin/scripts/{id}"))
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let updated: Value = resp.json().await.unwrap();
    assert_eq!(updated["name"], "Renamed");
    assert_eq!(updated["enabled"], false);
    assert_eq!(updated["createdAt"], created["createdAt"]);

    let resp = app
        .call(Method::DELETE, &format!("/api/admin/scripts/{id}"))
        .await;
    assert_eq!(resp.status(), 204);
    let resp = app
        .call(Method::GET, &format!("/api/admin/scripts/{id}"))
        .await;
    assert_eq!(resp.status(), 404);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "not_found");
    let resp = app
        .admin(Method::PUT, &format!("/api/admin/scripts/{id}"))
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

async fn every_validation_rule_is_a_400_naming_its_field(b: Backend) {
    let app = TestApp::spawn(b).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(201)}), "name"),
        (json!({"codeIdentifier": "!!!"}), "codeIdentifier"),
        (json!({"codeIdentifier": "a".repeat(101)}), "codeIdentifier"),
        (json!({"description": "d".repeat(10_001)}), "description"),
        (json!({"type": "python"}), "type"),
        (json!({"runner": "vm2"}), "runner"),
        (json!({"type": "browser", "runner": "host"}), "runner"),
        (json!({"script": "  "}), "script"),
        (
            json!({"env": [{"key": "1BAD", "value": "v"}]}),
            "env[0].key",
        ),
        (
            json!({"env": [{"key": "A", "value": "v"}, {"key": "A", "value": "w"}]}),
            "env[1].key",
        ),
        (
            json!({"env": [{"key": "S", "value": null, "secret": true}]}),
            "env[0].value",
        ),
        (json!({"timeoutMs": 999}), "timeoutMs"),
        (json!({"timeoutMs": 86_400_001}), "timeoutMs"),
        (json!({"concurrency": "sometimes"}), "concurrency"),
        (
            json!({"defaultWorkingDirectory": "relative/dir"}),
            "defaultWorkingDirectory",
        ),
        (
            json!({"schedule": {"enabled": true, "cron": "61 * * * *"}}),
            "cron",
        ),
        (json!({"schedule": {"enabled": true, "cron": ""}}), "cron"),
        // Dates that never exist: refused rather than searched for on every scheduler pass.
        (
            json!({"schedule": {"enabled": true, "cron": "0 0 30 2 *"}}),
            "cron",
        ),
        (
            json!({"schedule": {"enabled": true, "cron": "0 0 31 4,6,9,11 *"}}),
            "cron",
        ),
        (json!({"name": "nul\u{0}byte"}), "name"),
        (json!({"script": "echo a\u{0}b"}), "script"),
        (
            json!({"defaultWorkingDirectory": "/tmp/\u{0}x"}),
            "defaultWorkingDirectory",
        ),
        (
            json!({"defaultWorkingDirectory": format!("/{}", "d".repeat(5000))}),
            "defaultWorkingDirectory",
        ),
        (
            json!({"schedule": {"enabled": false, "cron": "* * * * *", "timezone": "Mars/Olympus"}}),
            "timezone",
        ),
    ];
    for (patch, field) in cases {
        let mut body = valid();
        merge(&mut body, patch.clone());
        let resp = app
            .admin(Method::POST, "/api/admin/scripts")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{patch} should be refused");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], "validation_failed", "{patch}");
        assert_eq!(err["error"]["field"], field, "{patch}: {err}");
    }
    let list: Value = app.get_json("/api/admin/scripts").await;
    assert_eq!(list, json!([]), "refused requests change nothing");

    // vm2 is the plan's name for the isolated runner.
    let mut body = valid();
    merge(&mut body, json!({"type": "node", "runner": "vm2"}));
    assert_eq!(app.create_script(body).await["runner"], "isolated");

    // A script over 1 MiB is too large.
    let mut body = valid();
    merge(
        &mut body,
        json!({"codeIdentifier": "big", "script": "#".repeat(1024 * 1024 + 1)}),
    );
    let resp = app
        .admin(Method::POST, "/api/admin/scripts")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // A body past the server's limit is refused from its Content-Length, before it is read.
    // (Raw TCP: an HTTP client still uploading would race the early answer.)
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let auth = "YWRtaW46dGVzdC1wYXNzd29yZA=="; // admin:test-password
    let head = format!(
        "POST /api/admin/scripts HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        4 * 1024 * 1024
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut answer))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
}

async fn duplicate_code_identifier_is_a_conflict(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.create_script(valid()).await;
    let mut again = valid();
    again["codeIdentifier"] = json!("sync project");
    let resp = app
        .admin(Method::POST, "/api/admin/scripts")
        .json(&again)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["field"], "codeIdentifier");

    // Renaming another script onto a taken identifier is refused too.
    let other = app
        .create_script(
            json!({"name": "B", "codeIdentifier": "b", "type": "bash", "script": "true"}),
        )
        .await;
    let mut update = other.clone();
    update["codeIdentifier"] = json!("sync-project");
    let resp = app
        .admin(
            Method::PUT,
            &format!("/api/admin/scripts/{}", other["id"].as_str().unwrap()),
        )
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
}

async fn malformed_bodies_get_json_errors_not_500s(b: Backend) {
    let app = TestApp::spawn(b).await;
    let post = |body: &'static str, ct: Option<&'static str>| {
        let mut req = app.admin(Method::POST, "/api/admin/scripts").body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    let cases = [
        (
            post("{not json", Some("application/json")).await.unwrap(),
            400,
        ),
        (post("{}", Some("text/plain")).await.unwrap(), 415),
        (post("{}", None).await.unwrap(), 415),
        (
            post(r#"{"name": 5}"#, Some("application/json"))
                .await
                .unwrap(),
            422,
        ),
        (
            post("\"text\"", Some("application/json")).await.unwrap(),
            422,
        ),
    ];
    for (resp, status) in cases {
        assert_eq!(resp.status(), status);
        let err: Value = resp.json().await.unwrap();
        assert!(
            err["error"]["code"].is_string() && err["error"]["message"].is_string(),
            "{err}"
        );
    }
    let resp = app
        .call(Method::GET, "/api/admin/scripts/runs?limit=abc")
        .await;
    assert_eq!(resp.status(), 400);
    let resp = app.call(Method::GET, "/api/admin/scripts/runs/nope").await;
    assert_eq!(resp.status(), 404);
    let resp = app.call(Method::GET, "/api/admin/nothing-here").await;
    assert_eq!(resp.status(), 404);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "not_found");
}

async fn secret_values_are_write_only_and_kept_on_update(b: Backend) {
    let app = TestApp::spawn(b).await;
    let created = app
        .create_script(json!({
            "name": "S", "codeIdentifier": "s", "type": "bash",
            "script": "[ \"${TOKEN:0:4}\" = tok- ] && [ ${#TOKEN} -eq 10 ] && echo token-ok; echo plain=$PLAIN",
            "env": [{"key": "TOKEN", "value": "tok-123456", "secret": true},
                    {"key": "PLAIN", "value": "visible", "secret": false}]
        }))
        .await;
    assert_eq!(
        created["env"][0],
        json!({"key": "TOKEN", "value": null, "secret": true})
    );
    assert_eq!(created["env"][1]["value"], "visible");
    let id = created["id"].as_str().unwrap();
    let text = app
        .call(Method::GET, &format!("/api/admin/scripts/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!text.contains("tok-123456"));

    // The UI sends back what it got: the secret as null keeps the stored value.
    let mut update: Value = serde_json::from_str(&text).unwrap();
    update["description"] = json!("edited");
    let resp = app
        .admin(Method::PUT, &format!("/api/admin/scripts/{id}"))
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let run = app.run(id).await;
    let done = app.wait_run(&run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let log = app.log(&run).await;
    assert!(log.contains("token-ok"), "{log}");
    assert!(log.contains("plain=visible"));
}

async fn data_survives_a_restart(b: Backend) {
    let app = TestApp::spawn(b).await;
    let id = app.bash("echo persisted", json!({})).await;
    let run = app.run(&id).await;
    app.wait_run(&run).await;
    let (dir, url) = app.stop().await;
    let app = TestApp::start_on(dir, url, Default::default()).await;
    let got = app
        .call(Method::GET, &format!("/api/admin/scripts/{id}"))
        .await;
    assert_eq!(got.status(), 200);
    let run = app.get_run(&run).await;
    assert_eq!(run["status"], "succeeded");
    assert!(app
        .log(run["id"].as_str().unwrap())
        .await
        .contains("persisted"));
}
