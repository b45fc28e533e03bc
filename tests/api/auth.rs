//! Admin authentication on every admin route, CSRF, and the health endpoint.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{Backend, Options, TestApp, USER};

/// Every admin route of the router, with a method that reaches it.
fn admin_routes(admin: &str) -> Vec<(Method, String)> {
    let s = "/api/admin/scripts";
    vec![
        (Method::GET, s.to_string()),
        (Method::POST, s.to_string()),
        (Method::GET, format!("{s}/runs")),
        (Method::GET, format!("{s}/runs/x")),
        (Method::GET, format!("{s}/runs/x/stream")),
        (Method::GET, format!("{s}/runs/x/log")),
        (Method::POST, format!("{s}/runs/x/cancel")),
        (Method::GET, format!("{s}/x")),
        (Method::PUT, format!("{s}/x")),
        (Method::DELETE, format!("{s}/x")),
        (Method::POST, format!("{s}/x/run")),
        (Method::POST, format!("{s}/x/api-token")),
        (Method::DELETE, format!("{s}/x/api-token")),
        (
            Method::GET,
            format!("{s}/schedule-preview?cron=*%20*%20*%20*%20*"),
        ),
        (Method::GET, admin.to_string()),
        (Method::GET, format!("{admin}/scripts")),
    ]
}

#[tokio::test]
async fn every_admin_route_refuses_missing_or_wrong_credentials() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            auth_failure_limit: Some(1000),
            ..Default::default()
        },
    )
    .await;
    for (method, path) in admin_routes("/admin") {
        let anonymous = app
            .client
            .request(method.clone(), app.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            anonymous.status(),
            401,
            "{method} {path} without credentials"
        );
        let challenge = anonymous.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.starts_with("Basic realm=\"scriptd\""),
            "{challenge}"
        );
        let body: Value = anonymous.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");

        let wrong = app
            .client
            .request(method.clone(), app.url(&path))
            .basic_auth(USER, Some("not-the-password"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{method} {path} with a wrong password");
        let wrong_user = app
            .client
            .request(method.clone(), app.url(&path))
            .basic_auth("mallory", Some(crate::helpers::PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(
            wrong_user.status(),
            401,
            "{method} {path} with a wrong user"
        );
    }
}

#[tokio::test]
async fn repeated_failed_logins_are_rate_limited() {
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
    let resp = app
        .admin(Method::GET, "/api/admin/scripts")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        429,
        "even right credentials wait out the window"
    );
    assert!(resp.headers().contains_key("retry-after"));
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
    let page = app
        .admin(Method::GET, "/admin/scripts")
        .send()
        .await
        .unwrap();
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
