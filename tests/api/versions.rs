//! Script versions: one per change of the definition, with author and message; runs link to
//! theirs; diff and restore; retention.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{both_backends, Backend, Options, TestApp};

both_backends!(
    each_change_makes_a_version_and_a_run_records_the_one_it_ran,
    a_diff_shows_the_body_fields_and_secrets_and_restore_adds_a_version,
    a_version_runs_point_to_outlives_the_retention_count,
    each_run_runs_the_definition_current_when_it_starts,
    a_start_is_checked_against_the_current_form_not_a_held_one,
);

fn body(code: &str, script: &str, token: &str) -> Value {
    json!({
        "name": "Versioned",
        "codeIdentifier": code,
        "type": "bash",
        "script": script,
        "timeoutMs": 5000,
        "env": [
            {"key": "PLAIN", "value": "visible"},
            {"key": "TOKEN", "value": token, "secret": true}
        ]
    })
}

async fn put(app: &TestApp, id: &str, body: &Value) -> Value {
    let resp = app
        .admin(Method::PUT, &format!("/api/admin/scripts/{id}"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    v
}

async fn versions(app: &TestApp, id: &str) -> Vec<Value> {
    app.get_json(&format!("/api/admin/scripts/{id}/versions"))
        .await["versions"]
        .as_array()
        .unwrap()
        .clone()
}

async fn each_change_makes_a_version_and_a_run_records_the_one_it_ran(b: Backend) {
    let app = TestApp::spawn(b).await;
    let created = app
        .create_script(body("versioned", "echo one", "first-secret"))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["version"], 1);

    // The same definition again is no change: no version.
    let same = put(&app, &id, &body("versioned", "echo one", "first-secret")).await;
    assert_eq!(same["version"], 1);
    // A secret sent as null keeps its value: no change either.
    let mut keep = body("versioned", "echo one", "x");
    keep["env"][1]["value"] = Value::Null;
    assert_eq!(put(&app, &id, &keep).await["version"], 1);

    let mut edited = body("versioned", "echo two", "first-secret");
    edited["versionMessage"] = json!("print two");
    assert_eq!(put(&app, &id, &edited).await["version"], 2);
    assert_eq!(
        put(&app, &id, &body("versioned", "echo two", "second-secret")).await["version"],
        3
    );
    let mut disabled = body("versioned", "echo two", "second-secret");
    disabled["enabled"] = json!(false);
    assert_eq!(put(&app, &id, &disabled).await["version"], 4);
    let enabled = put(&app, &id, &body("versioned", "echo two", "second-secret")).await;
    assert_eq!(enabled["version"], 5);

    let list = versions(&app, &id).await;
    let numbers: Vec<i64> = list
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [5, 4, 3, 2, 1]);
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[1]["current"], false);
    assert_eq!(list[3]["message"], "print two");
    assert_eq!(list[4]["message"], "created");
    assert!(
        list.iter().all(|v| v["author"] == "admin:admin"),
        "{list:?}"
    );
    assert_eq!(list[2]["secretsChanged"], json!(["env:TOKEN"]));
    assert_eq!(list[3]["secretsChanged"], json!([]));
    assert!(
        list[0].get("definition").is_none(),
        "lists carry no definitions"
    );

    // Pages.
    let page = app
        .get_json(&format!("/api/admin/scripts/{id}/versions?limit=2"))
        .await;
    assert_eq!(page["versions"].as_array().unwrap().len(), 2);
    assert_eq!(page["nextBefore"], 4);
    let rest = app
        .get_json(&format!(
            "/api/admin/scripts/{id}/versions?limit=10&before=4"
        ))
        .await;
    assert_eq!(rest["versions"].as_array().unwrap().len(), 3);
    assert_eq!(rest["nextBefore"], Value::Null);

    // One version, its definition without any secret value.
    let v1 = app
        .get_json(&format!("/api/admin/scripts/{id}/versions/1"))
        .await;
    assert_eq!(v1["definition"]["script"], "echo one");
    assert_eq!(v1["definition"]["env"][0]["value"], "visible");
    assert_eq!(
        v1["definition"]["env"][1],
        json!({"key": "TOKEN", "secret": true})
    );
    let text = v1.to_string() + &list.iter().map(Value::to_string).collect::<String>();
    assert!(!text.contains("first-secret") && !text.contains("second-secret"));

    // A run records the version it ran, and keeps it after later edits.
    let run = app.run(&id).await;
    let done = app.wait_run(&run).await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["scriptVersion"], 5);
    put(&app, &id, &body("versioned", "echo three", "second-secret")).await;
    assert_eq!(app.get_run(&run).await["scriptVersion"], 5);
    let listed = app
        .get_json(&format!("/api/admin/scripts/runs?scriptId={id}"))
        .await;
    assert_eq!(listed["runs"][0]["scriptVersion"], 5);

    // Bad numbers and unknown versions.
    for (path, status) in [
        (format!("/api/admin/scripts/{id}/versions/0"), 400),
        (format!("/api/admin/scripts/{id}/versions/abc"), 400),
        (format!("/api/admin/scripts/{id}/versions/99"), 404),
        (format!("/api/admin/scripts/{id}/versions?limit=0"), 400),
        ("/api/admin/scripts/nope/versions".to_string(), 404),
    ] {
        let resp = app.call(Method::GET, &path).await;
        assert_eq!(resp.status(), status, "{path}");
        let err: Value = resp.json().await.unwrap();
        assert!(err["error"]["message"].is_string(), "{path}: {err}");
    }
    // A message too long is refused, and changes nothing.
    let mut long = body("versioned", "echo four", "second-secret");
    long["versionMessage"] = json!("x".repeat(501));
    let resp = app
        .admin(Method::PUT, &format!("/api/admin/scripts/{id}"))
        .json(&long)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(versions(&app, &id).await.len(), 6);
}

async fn a_diff_shows_the_body_fields_and_secrets_and_restore_adds_a_version(b: Backend) {
    let app = TestApp::spawn(b).await;
    let id = app
        .create_script(body("diffed", "echo a\necho b\necho c\n", "s1"))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut second = body("diffed", "echo a\necho B\necho c\n", "s2");
    second["timeoutMs"] = json!(9000);
    put(&app, &id, &second).await;

    let diff = app
        .get_json(&format!(
            "/api/admin/scripts/{id}/versions/diff?from=1&to=2"
        ))
        .await;
    let script = diff["script"].as_str().unwrap();
    assert!(
        script.contains("--- version 1") && script.contains("+++ version 2"),
        "{script}"
    );
    assert!(
        script.contains("-echo b\n") && script.contains("+echo B\n"),
        "{script}"
    );
    assert!(script.contains(" echo a\n"), "context lines: {script}");
    assert_eq!(
        diff["fields"],
        json!([{"field": "timeoutMs", "from": 5000, "to": 9000}])
    );
    assert_eq!(diff["secretsChanged"], json!(["env:TOKEN"]));
    // `to` defaults to the current version; the same version twice differs in nothing.
    let against_current = app
        .get_json(&format!("/api/admin/scripts/{id}/versions/diff?from=1"))
        .await;
    assert_eq!(against_current["to"], 2);
    let none = app
        .get_json(&format!(
            "/api/admin/scripts/{id}/versions/diff?from=2&to=2"
        ))
        .await;
    assert_eq!(none["script"], "");
    assert_eq!(none["fields"], json!([]));
    let missing = app
        .call(
            Method::GET,
            &format!("/api/admin/scripts/{id}/versions/diff"),
        )
        .await;
    assert_eq!(missing.status(), 400);

    // Restore: a new version equal to the old one; the secret keeps its current value.
    let resp = app
        .admin(
            Method::POST,
            &format!("/api/admin/scripts/{id}/versions/1/restore"),
        )
        .json(&json!({"message": "back to b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let restored: Value = resp.json().await.unwrap();
    assert_eq!(restored["version"], 3);
    assert_eq!(restored["script"], "echo a\necho b\necho c\n");
    assert_eq!(restored["timeoutMs"], 5000);
    let list = versions(&app, &id).await;
    assert_eq!(list[0]["message"], "back to b");
    assert_eq!(list.len(), 3, "history is never rewritten");
    let v1 = app
        .get_json(&format!("/api/admin/scripts/{id}/versions/1"))
        .await;
    let v3 = app
        .get_json(&format!("/api/admin/scripts/{id}/versions/3"))
        .await;
    assert_eq!(v1["definition"], v3["definition"]);
    let run = app.run(&id).await;
    app.wait_run(&run).await;
    // The kept secret is the current one, s2: masked in output, so check through the env.
    let printing = body("diffed", "test \"$TOKEN\" = s2 && echo kept", "s2");
    let mut printing = printing;
    printing["env"][1]["value"] = Value::Null;
    put(&app, &id, &printing).await;
    let run = app.run(&id).await;
    assert_eq!(app.wait_run(&run).await["status"], "succeeded");

    // A version whose secret the script no longer has cannot be restored: 400, nothing changes.
    let mut without = body("diffed", "echo plain", "unused");
    without["env"] = json!([{"key": "PLAIN", "value": "visible"}]);
    let now = put(&app, &id, &without).await["version"].as_i64().unwrap();
    let resp = app
        .call(
            Method::POST,
            &format!("/api/admin/scripts/{id}/versions/1/restore"),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no longer holds"),
        "{err}"
    );
    assert_eq!(
        app.get_json(&format!("/api/admin/scripts/{id}")).await["version"],
        now
    );
    let unknown = app
        .call(
            Method::POST,
            &format!("/api/admin/scripts/{id}/versions/42/restore"),
        )
        .await;
    assert_eq!(unknown.status(), 404);
}

async fn a_version_runs_point_to_outlives_the_retention_count(b: Backend) {
    let app = TestApp::spawn_with(
        b,
        Options {
            keep_versions: Some(3),
            ..Default::default()
        },
    )
    .await;
    let id = app.create_script(body("kept", "echo 1", "s")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let run = app.run(&id).await;
    app.wait_run(&run).await;
    for n in 2..=8 {
        let mut b = body("kept", &format!("echo {n}"), "s");
        b["env"][1]["value"] = Value::Null;
        put(&app, &id, &b).await;
    }
    let numbers: Vec<i64> = versions(&app, &id)
        .await
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        [8, 7, 6, 1],
        "the newest 3, and version 1 that a run ran"
    );
    let gone = app
        .call(Method::GET, &format!("/api/admin/scripts/{id}/versions/2"))
        .await;
    assert_eq!(gone.status(), 404);
}

/// The engine holds a script's definition between its runs: each edit, a secret's new value
/// alone included, must reach the next run, whether it starts at once (its admission checks
/// the held version) or through a claim (a `queue` script's runs always do).
async fn each_run_runs_the_definition_current_when_it_starts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for concurrency in ["parallel", "queue"] {
        let code = format!("held-{concurrency}");
        let held = |script: &str, token: &str| {
            let mut b = body(&code, script, token);
            b["concurrency"] = json!(concurrency);
            b
        };
        // The secret's length tells which value the run had (its output would be masked).
        let created = app
            .create_script(held("echo \"one $PLAIN ${#TOKEN}\"", "secret-of-16-chr"))
            .await;
        let id = created["id"].as_str().unwrap().to_string();
        assert_eq!(ran(&app, &id).await, "one visible 16\n");
        assert_eq!(ran(&app, &id).await, "one visible 16\n");
        put(
            &app,
            &id,
            &held("echo \"two $PLAIN ${#TOKEN}\"", "secret-of-16-chr"),
        )
        .await;
        assert_eq!(ran(&app, &id).await, "two visible 16\n", "{concurrency}");
        put(
            &app,
            &id,
            &held("echo \"two $PLAIN ${#TOKEN}\"", "a-secret-of-twenty-two"),
        )
        .await;
        assert_eq!(ran(&app, &id).await, "two visible 22\n", "{concurrency}");
        // Disabled, then deleted: the definition held from the last run starts nothing.
        let mut disabled = held("echo \"two $PLAIN ${#TOKEN}\"", "a-secret-of-twenty-two");
        disabled["enabled"] = json!(false);
        put(&app, &id, &disabled).await;
        let refused = app.start_run(&id, None).await;
        assert_eq!(refused.status(), 409, "{concurrency}");
        let deleted = app
            .admin(Method::DELETE, &format!("/api/admin/scripts/{id}"))
            .send()
            .await
            .unwrap();
        assert!(deleted.status().is_success());
        let gone = app.start_run(&id, None).await;
        assert_eq!(gone.status(), 404, "{concurrency}");
    }
}

/// A start refused by the definition held from the last run (its input form, here) counts
/// only if the current definition refuses it too.
async fn a_start_is_checked_against_the_current_form_not_a_held_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let form = |field: &str| {
        let mut b = body("formed", "echo \"$SCRIPTD_INPUT\"", "secret-of-16-chr");
        b["concurrency"] = json!("parallel");
        b["inputSchema"] = json!({"type": "object", "required": [field],
            "properties": {field: {"type": "string"}}});
        b
    };
    let id = app.create_script(form("old")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let first = app
        .start_run(&id, Some(json!({"input": {"old": "x"}})))
        .await;
    assert_eq!(first.status(), 202);
    put(&app, &id, &form("new")).await;
    let edited = app
        .start_run(&id, Some(json!({"input": {"new": "y"}})))
        .await;
    assert_eq!(edited.status(), 202, "checked against the edited form");
    let stale = app
        .start_run(&id, Some(json!({"input": {"old": "x"}})))
        .await;
    assert_eq!(stale.status(), 400, "the old form's input no longer fits");
}

async fn ran(app: &TestApp, id: &str) -> String {
    let run = app.run(id).await;
    assert_eq!(app.wait_run(&run).await["status"], "succeeded");
    app.log(&run).await
}
