//! API triggers: token lifecycle, the public endpoint's answers, waiting, rate limiting.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{both_backends, Backend, Options, TestApp};

both_backends!(
    a_token_is_shown_once_works_rotates_and_revokes,
    the_public_trigger_answers_each_case_as_documented,
    wait_true_returns_the_finished_run_with_its_output,
);

async fn setup(app: &TestApp, extra: Value) -> (String, String) {
    let mut body = json!({
        "name": "Hook", "codeIdentifier": "hook", "type": "bash",
        "script": "echo \"got $SCRIPTD_INPUT\"", "apiTrigger": {"enabled": true}
    });
    crate::helpers::merge(&mut body, extra);
    let id = app.create_script(body).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = app
        .call(Method::POST, &format!("/api/admin/scripts/{id}/api-token"))
        .await;
    assert_eq!(resp.status(), 201);
    let token = resp.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    (id, token)
}

async fn trigger(app: &TestApp, code: &str, token: Option<&str>, body: &str) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(&format!("/api/scripts/{code}/run")))
        .header("content-type", "application/json")
        .header("user-agent", "scriptd-tests/1")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn a_token_is_shown_once_works_rotates_and_revokes(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (id, token) = setup(&app, json!({})).await;
    assert!(token.starts_with("sdt_") && token.len() >= 40, "{token}");
    let script_text = app
        .call(Method::GET, &format!("/api/admin/scripts/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !script_text.contains(&token),
        "the token is never shown again"
    );
    let script: Value = serde_json::from_str(&script_text).unwrap();
    assert_eq!(script["apiTrigger"]["hasToken"], true);
    assert!(script["apiTrigger"]["tokenCreatedAt"].is_string());
    let list = app
        .call(Method::GET, "/api/admin/scripts")
        .await
        .text()
        .await
        .unwrap();
    assert!(!list.contains(&token));

    let resp = trigger(&app, "hook", Some(&token), r#"{"project":"p1"}"#).await;
    assert_eq!(resp.status(), 202);
    let run_id = resp.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_string();
    let run = app.wait_run(&run_id).await;
    assert_eq!(run["trigger"], "api");
    assert_eq!(run["input"], json!({"project": "p1"}));
    assert_eq!(run["meta"]["clientAddress"], "127.0.0.1");
    assert_eq!(run["meta"]["userAgent"], "scriptd-tests/1");
    assert!(app.log(&run_id).await.contains(r#"got {"project":"p1"}"#));

    let rotated = app
        .call(Method::POST, &format!("/api/admin/scripts/{id}/api-token"))
        .await;
    let new_token = rotated.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_token, token);
    assert_eq!(
        trigger(&app, "hook", Some(&token), "{}").await.status(),
        401,
        "the old token stops working"
    );
    assert_eq!(
        trigger(&app, "hook", Some(&new_token), "{}").await.status(),
        202
    );

    let revoked = app
        .call(
            Method::DELETE,
            &format!("/api/admin/scripts/{id}/api-token"),
        )
        .await;
    assert_eq!(revoked.status(), 204);
    assert_eq!(
        trigger(&app, "hook", Some(&new_token), "{}").await.status(),
        401
    );
    let script: Value = app.get_json(&format!("/api/admin/scripts/{id}")).await;
    assert_eq!(script["apiTrigger"]["hasToken"], false);

    if let Backend::Sqlite = b {
        let (dir, _) = app.stop().await;
        for name in ["scriptd.db", "scriptd.db-wal"] {
            if let Ok(bytes) = std::fs::read(dir.path().join(name)) {
                let text = String::from_utf8_lossy(&bytes);
                assert!(
                    !text.contains(&token) && !text.contains(&new_token),
                    "a token is stored in {name}"
                );
            }
        }
    }
}

async fn the_public_trigger_answers_each_case_as_documented(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (id, token) = setup(&app, json!({})).await;
    let wrong = trigger(&app, "hook", Some("sdt_wrong"), "{}").await;
    assert_eq!(wrong.status(), 401);
    let wrong_body: Value = wrong.json().await.unwrap();
    let unknown = trigger(&app, "no-such-script", Some(&token), "{}").await;
    assert_eq!(
        unknown.status(),
        401,
        "an unknown script answers like a wrong token"
    );
    assert_eq!(unknown.json::<Value>().await.unwrap(), wrong_body);
    assert_eq!(trigger(&app, "hook", None, "{}").await.status(), 401);
    assert_eq!(
        trigger(&app, "hook", Some(&token), "{not json")
            .await
            .status(),
        400
    );

    let mut script: Value = app.get_json(&format!("/api/admin/scripts/{id}")).await;
    script["enabled"] = json!(false);
    app.admin(Method::PUT, &format!("/api/admin/scripts/{id}"))
        .json(&script)
        .send()
        .await
        .unwrap();
    assert_eq!(
        trigger(&app, "hook", Some(&token), "{}").await.status(),
        409,
        "a disabled script"
    );
    script["enabled"] = json!(true);
    script["apiTrigger"]["enabled"] = json!(false);
    app.admin(Method::PUT, &format!("/api/admin/scripts/{id}"))
        .json(&script)
        .send()
        .await
        .unwrap();
    assert_eq!(
        trigger(&app, "hook", Some(&token), "{}").await.status(),
        404,
        "a disabled trigger"
    );
}

async fn wait_true_returns_the_finished_run_with_its_output(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (_, token) = setup(&app, json!({"script": "echo waited-for; exit 2"})).await;
    let resp = app
        .client
        .post(app.url("/api/scripts/hook/run?wait=true&timeoutMs=20000"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let run: Value = resp.json().await.unwrap();
    assert_eq!(run["status"], "failed");
    assert_eq!(run["exitCode"], 2);
    assert!(run["outputTail"].as_str().unwrap().contains("waited-for"));
}

/// Past the budget a client's wrong tokens get 429, but the right token still starts runs:
/// callers sharing one address (a NAT, a proxy) are not locked out by another's guesses.
#[tokio::test]
async fn failed_trigger_attempts_are_rate_limited_then_released() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            auth_failure_limit: Some(3),
            auth_failure_window: Some(Duration::from_secs(1)),
            ..Default::default()
        },
    )
    .await;
    let (_, token) = setup(&app, json!({})).await;
    for _ in 0..3 {
        assert_eq!(
            trigger(&app, "hook", Some("sdt_guess"), "{}")
                .await
                .status(),
            401
        );
    }
    let limited = trigger(&app, "hook", Some("sdt_guess"), "{}").await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(
        trigger(&app, "nope", Some("sdt_guess"), "{}")
            .await
            .status(),
        429,
        "a missing script is limited like a wrong token"
    );
    assert_eq!(
        trigger(&app, "hook", Some(&token), "{}").await.status(),
        202,
        "the right token is never refused for the client's failures"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = trigger(&app, "hook", Some("sdt_guess"), "{}")
            .await
            .status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 429);
        assert!(
            std::time::Instant::now() < deadline,
            "the limit never released"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The scheme of `Authorization` is case-insensitive (RFC 9110): `bearer` works as `Bearer`.
#[tokio::test]
async fn the_bearer_scheme_is_matched_in_any_case() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, token) = setup(&app, json!({"concurrency": "parallel"})).await;
    // Another scheme is not a bearer token.
    for (scheme, status) in [
        ("bearer", 202),
        ("BEARER", 202),
        ("Bearer", 202),
        ("Basic", 401),
    ] {
        let resp = app
            .client
            .post(app.url("/api/scripts/hook/run"))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{scheme}");
    }
}
