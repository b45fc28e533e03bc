//! A script's input form: every trigger's input is checked against it and completed with its
//! defaults; the form keeps its fields' order.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{both_backends, Backend, TestApp};

both_backends!(
    inputs_are_checked_against_the_form_and_completed_with_defaults,
    a_broken_form_or_one_a_schedule_cannot_fill_is_refused,
);

const FORM: &str = r#"{"type": "object", "properties": {
    "project": {"type": "string", "pattern": "^[a-z]+$", "description": "Which project"},
    "count": {"type": "integer", "minimum": 1, "maximum": 5, "default": 2},
    "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
    "dry": {"type": "boolean"}}, "required": ["project"]}"#;

fn form() -> Value {
    json!({"type": "object",
        "properties": {
            "project": {"type": "string", "pattern": "^[a-z]+$", "description": "Which project"},
            "count": {"type": "integer", "minimum": 1, "maximum": 5, "default": 2},
            "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
            "dry": {"type": "boolean"}
        },
        "required": ["project"]})
}

async fn inputs_are_checked_against_the_form_and_completed_with_defaults(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (id, code, token) = app
        .triggered_bash("printf '%s' \"$SCRIPTD_INPUT\"", json!({}))
        .await;
    // Sent as text: the fields' order is the one written here, not a JSON map's.
    let mut doc = app.get_json(&format!("/api/admin/scripts/{id}")).await;
    doc["inputSchema"] = json!("FORM");
    let body = doc.to_string().replace("\"FORM\"", FORM);
    let resp = app
        .admin(Method::PUT, &format!("/api/admin/scripts/{id}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The form comes back with its fields in the order they were written.
    let raw = app
        .call(Method::GET, &format!("/api/admin/scripts/{id}"))
        .await
        .text()
        .await
        .unwrap();
    let at = |k: &str| raw.find(&format!("\"{k}\":{{\"type\"")).unwrap();
    assert!(
        at("project") < at("count") && at("count") < at("mode") && at("mode") < at("dry"),
        "{raw}"
    );

    let ok = app
        .start_run(&id, Some(json!({"input": {"project": "web", "dry": true}})))
        .await;
    assert_eq!(ok.status(), 202);
    let run = ok.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_string();
    app.wait_run(&run).await;
    let got: Value = serde_json::from_str(&app.log(&run).await).unwrap();
    assert_eq!(
        got,
        json!({"project": "web", "count": 2, "mode": "safe", "dry": true})
    );
    assert_eq!(
        app.get_run(&run).await["input"],
        got,
        "the run records what the script got"
    );

    for (input, field) in [
        (json!({}), "input.project"),
        (json!({"project": "Web"}), "input.project"),
        (json!({"project": "web", "count": 9}), "input.count"),
        (json!({"project": "web", "mode": "slow"}), "input.mode"),
        (json!({"project": "web", "other": 1}), "input.other"),
        (json!("web"), "input"),
    ] {
        let resp = app.start_run(&id, Some(json!({ "input": input }))).await;
        assert_eq!(resp.status(), 400, "{input}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["field"], field, "{input}: {err}");
        // The trigger checks the same way.
        let resp = reqwest::Client::new()
            .post(app.url(&format!("/api/scripts/{code}/run")))
            .bearer_auth(&token)
            .json(&input)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "trigger {input}");
        assert_eq!(resp.json::<Value>().await.unwrap()["error"]["field"], field);
    }
    let runs = app
        .get_json(&format!("/api/admin/scripts/runs?scriptId={id}"))
        .await;
    assert_eq!(
        runs["runs"].as_array().unwrap().len(),
        1,
        "no refused input started a run"
    );

    let triggered = app.trigger(&code, &token).await;
    assert_eq!(
        triggered["error"]["field"], "input.project",
        "no body: the required field is missing"
    );
}

async fn a_broken_form_or_one_a_schedule_cannot_fill_is_refused(b: Backend) {
    let app = TestApp::spawn(b).await;
    for (schema, extra, field) in [
        (
            json!({"type": "object", "properties": {"n": {"type": "date"}}}),
            json!({}),
            "inputSchema",
        ),
        (
            json!({"type": "object", "properties": {"n": {"type": "string", "pattern": "("}}}),
            json!({}),
            "inputSchema.properties.n.pattern",
        ),
        (
            json!({"type": "object", "properties": {"n": {"type": "integer", "default": 0, "minimum": 1}}}),
            json!({}),
            "inputSchema.properties.n.default",
        ),
        (
            form(),
            json!({"schedule": {"enabled": true, "cron": "@daily"}}),
            "inputSchema.required",
        ),
    ] {
        let mut body = json!({"name": "f", "codeIdentifier": "form", "type": "bash", "script": "true",
                              "inputSchema": schema});
        crate::helpers::merge(&mut body, extra);
        let resp = app
            .admin(Method::POST, "/api/admin/scripts")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    assert_eq!(app.get_json("/api/admin/scripts").await, json!([]));
    // With defaults for every required field, a schedule is fine; null clears the form.
    let mut with_defaults = form();
    with_defaults["properties"]["project"]["default"] = json!("nightly");
    let id = app
        .bash(
            "true",
            json!({"inputSchema": with_defaults, "schedule": {"enabled": true, "cron": "@daily"}}),
        )
        .await;
    let mut doc = app.get_json(&format!("/api/admin/scripts/{id}")).await;
    assert_eq!(
        doc["inputSchema"]["properties"]["project"]["default"],
        "nightly"
    );
    doc["inputSchema"] = Value::Null;
    let resp = app
        .admin(Method::PUT, &format!("/api/admin/scripts/{id}"))
        .json(&doc)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(app.get_json(&format!("/api/admin/scripts/{id}")).await["inputSchema"].is_null());
}
