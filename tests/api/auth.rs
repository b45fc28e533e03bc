//! Rate-limited logins, CSRF, and the health endpoint. (Credentials on every admin route are
//! checked in security.rs, driven by the OpenAPI document.)

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{Backend, Options, TestApp, USER};

#[tokio::test]
async fn repeated_failed_logins_are_rate_limited_but_never_lock_the_admin_out() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            auth_failure_limit: Some(5),
            ..Default::default()
        },
    )
    .await;
    for _ in 0..8 {
        let anonymous = app
            .client
            .get(app.url("/api/admin/scripts"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            anonymous.status(),
            401,
            "requests without credentials are not guesses"
        );
    }
    let mut last = 0;
    for _ in 0..6 {
        last = app
            .client
            .get(app.url("/api/admin/scripts"))
            .basic_auth(USER, Some("guess"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
    }
    assert_eq!(last, 429);
    let limited = app
        .client
        .get(app.url("/api/admin/scripts"))
        .basic_auth(USER, Some("guess"))
        .send()
        .await
        .unwrap();
    assert!(limited.headers().contains_key("retry-after"));
    let resp = app.call(Method::GET, "/api/admin/scripts").await;
    assert_eq!(
        resp.status(),
        200,
        "right credentials are not refused for others' failures (behind a proxy all share one address)"
    );

    // Trigger-token guesses have a budget of their own: they cannot spend the admin's.
    let other = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            auth_failure_limit: Some(3),
            ..Default::default()
        },
    )
    .await;
    for _ in 0..5 {
        other
            .client
            .post(other.url("/api/scripts/nope/run"))
            .bearer_auth("sdt_wrong")
            .send()
            .await
            .unwrap();
    }
    let trigger = other
        .client
        .post(other.url("/api/scripts/nope/run"))
        .bearer_auth("sdt_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(trigger.status(), 429);
    let wrong_admin = other
        .client
        .get(other.url("/api/admin/scripts"))
        .basic_auth(USER, Some("guess"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong_admin.status(),
        401,
        "a flood of trigger guesses leaves the admin budget alone"
    );
}

#[tokio::test]
async fn cross_origin_state_changes_are_refused_and_same_origin_accepted() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let body = json!({"name": "C", "codeIdentifier": "c", "type": "bash", "script": "true"});
    let evil = app
        .admin(Method::POST, "/api/admin/scripts")
        .header("origin", "http://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    let fetch_site = app
        .admin(Method::POST, "/api/admin/scripts")
        .header("sec-fetch-site", "cross-site")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(fetch_site.status(), 403);
    let list: Value = app.get_json("/api/admin/scripts").await;
    assert_eq!(list, json!([]), "refused requests created nothing");

    let same = app
        .admin(Method::POST, "/api/admin/scripts")
        .header("origin", app.base.clone())
        .header("sec-fetch-site", "same-origin")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 201);
}

#[tokio::test]
async fn health_is_public_and_pages_carry_security_headers() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let active = health["isolation"]["active"].as_array().unwrap();
    assert!(
        active.iter().any(|l| l == "seccomp"),
        "the isolated runner reports its sandbox: {health}"
    );
    let page = app.call(Method::GET, "/admin/scripts").await;
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h.contains_key("referrer-policy"));
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Automation") && html.contains("ti-terminal-2") && html.contains("Scripts")
    );
}
