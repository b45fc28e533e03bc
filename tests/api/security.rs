//! The security pass over the whole API: the OpenAPI document matches the router and is
//! complete, every admin operation in it refuses missing credentials, security headers
//! everywhere, request limits and slow clients.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Backend, Options, TestApp};

fn document() -> Value {
    serde_json::from_str(scriptd::http::api_doc::json()).unwrap()
}

/// The documented operations as (METHOD, path), path parameters filled with `x`.
fn operations(doc: &Value) -> Vec<(Method, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", "x")
                .replace("{runId}", "x")
                .replace("{codeIdentifier}", "x");
            ops.push((
                Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                concrete,
            ));
        }
    }
    ops
}

/// Every documented operation is routed, no other method is routed on a documented path, and
/// the router declares no route of its own beside the dashboard's pages and assets (the API's
/// routes come from the handlers' `#[utoipa::path]` attributes, which also build the document).
#[tokio::test]
async fn the_openapi_document_describes_every_route_and_nothing_else() {
    let doc = document();
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ops = operations(&doc);
    assert!(ops.len() >= 18, "only {} operations documented", ops.len());
    let route_missing = |status: u16, body: &Value| {
        status == 405 || (status == 404 && body["error"]["message"] == "route not found")
    };
    for (method, path) in &ops {
        let resp = app.call(method.clone(), path).await;
        let status = resp.status().as_u16();
        // Only a 404 needs reading (the run events stream never ends).
        let body: Value = if status == 404 {
            resp.json().await.unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        assert!(
            !route_missing(status, &body),
            "{method} {path} is documented but not routed: {status} {body}"
        );
    }
    let documented: std::collections::HashSet<(Method, String)> = ops.iter().cloned().collect();
    let paths: std::collections::HashSet<&String> = ops.iter().map(|(_, p)| p).collect();
    for path in paths {
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
        ] {
            if documented.contains(&(method.clone(), path.clone())) {
                continue;
            }
            let resp = app.call(method.clone(), path).await;
            assert_eq!(
                resp.status(),
                405,
                "{method} {path} is routed but not documented"
            );
            // Answered like every other error: JSON, with the methods that are allowed.
            assert!(resp.headers().contains_key("allow"), "{method} {path}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(
                body["error"]["code"], "method_not_allowed",
                "{method} {path}: {body}"
            );
        }
    }
    // Routes added by hand, outside the document: only the pages and the assets.
    let source = include_str!("../../src/http/mod.rs");
    let hand_routes: Vec<&str> = source
        .match_indices(".route(")
        .map(|(i, _)| source[i + ".route(".len()..].trim_start())
        .map(|rest| &rest[..rest.find(',').unwrap()])
        .collect();
    assert_eq!(
        hand_routes,
        vec![
            "&admin_path",
            "&format!(\"{admin_path}/\")",
            "&format!(\"{admin_path}/scripts\")",
            "&format!(\"{admin_path}/runs\")",
            "&format!(\"{admin_path}/audit\")",
            "\"/assets/{*path}\""
        ],
        "a route outside the document"
    );
}

/// The served document is the generated one, is OpenAPI 3.1, and is whole: every reference
/// resolves, operation ids are unique, every object schema of a response lists its required
/// fields, and the main operations carry examples and links.
#[tokio::test]
async fn the_served_openapi_document_is_complete() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let served: Value = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, document());
    assert_eq!(served["openapi"], "3.1.0");
    let schemas = served["components"]["schemas"].as_object().unwrap();

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&served, &mut all);
    for r in &all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r}"));
        assert!(schemas.contains_key(name), "{r} does not resolve");
    }

    let mut ids = std::collections::HashSet::new();
    for (path, item) in served["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_string()), "operationId {id} twice");
            for (status, resp) in op["responses"].as_object().unwrap() {
                assert!(resp["description"].is_string(), "{method} {path} {status}");
                for media in resp["content"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|c| c.1)
                {
                    let mut named = Vec::new();
                    refs(&media["schema"], &mut named);
                    for r in named {
                        let name = r.rsplit('/').next().unwrap();
                        let schema = &schemas[name];
                        if schema["type"] == "object" && schema["properties"].is_object() {
                            assert!(
                                schema["required"].is_array(),
                                "{name} (answer of {method} {path}) has no required list"
                            );
                        }
                    }
                }
            }
        }
    }
    for name in ["ScriptInput", "Script", "Run", "TokenIssued", "Error"] {
        assert!(
            schemas[name]["example"].is_object(),
            "{name} has no example"
        );
    }
    for name in ["SseLog", "SseStatus", "SseDone"] {
        assert!(
            schemas.contains_key(name),
            "the stream's {name} is not described"
        );
    }
    let links = |path: &str, method: &str, status: &str| {
        served["paths"][path][method]["responses"][status]["links"]
            .as_object()
            .map(|l| l.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    // (serde_json's map keeps its keys sorted.)
    assert_eq!(
        links("/api/admin/scripts", "post", "201"),
        [
            "CreateTriggerToken",
            "DeleteScript",
            "GetScript",
            "RunScript",
            "UpdateScript"
        ]
    );
    assert_eq!(
        links("/api/admin/scripts/{id}/run", "post", "202"),
        ["CancelRun", "GetRun", "GetRunLog", "StreamRun"]
    );
}

#[tokio::test]
async fn every_documented_admin_operation_refuses_missing_credentials() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            auth_failure_limit: Some(10_000),
            ..Default::default()
        },
    )
    .await;
    let doc: Value = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut routes = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let secured = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("basicAuth").is_some()));
            if secured {
                let concrete = path.replace("{id}", "x").replace("{runId}", "x");
                routes.push((
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    concrete,
                ));
            }
        }
    }
    let checked = routes.len();
    // The dashboard pages are not API operations but sit behind the same login.
    routes.push((Method::GET, "/admin".into()));
    routes.push((Method::GET, "/admin/scripts".into()));
    routes.push((Method::GET, "/admin/runs".into()));
    routes.push((Method::GET, "/admin/audit".into()));
    for (method, path) in routes {
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
        for (user, password) in [("admin", "wrong"), ("mallory", crate::helpers::PASSWORD)] {
            let wrong = app
                .client
                .request(method.clone(), app.url(&path))
                .basic_auth(user, Some(password))
                .send()
                .await
                .unwrap();
            assert_eq!(wrong.status(), 401, "{method} {path} as {user}/{password}");
        }
    }
    assert!(checked >= 14, "only {checked} admin operations found");
}

#[tokio::test]
async fn security_headers_are_on_html_json_errors_and_assets() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let responses = [
        app.call(Method::GET, "/admin/scripts").await,
        app.call(Method::GET, "/api/admin/scripts").await,
        app.call(Method::GET, "/api/admin/scripts/missing").await,
        app.client
            .get(app.url("/api/admin/scripts"))
            .send()
            .await
            .unwrap(),
        app.client.get(app.url("/healthz")).send().await.unwrap(),
        app.client
            .get(app.url("/assets/app.css"))
            .send()
            .await
            .unwrap(),
        app.client.get(app.url("/nowhere")).send().await.unwrap(),
    ];
    for resp in responses {
        let h = resp.headers();
        let what = format!("{} {}", resp.url(), resp.status());
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{what}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    }
}

#[tokio::test]
async fn oversized_headers_are_refused_and_slow_clients_are_cut_off() {
    let opts = Options {
        header_read_timeout: Some(Duration::from_millis(800)),
        ..Default::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, opts).await;
    let huge = "x".repeat(200 * 1024);
    match app
        .client
        .get(app.url("/healthz"))
        .header("x-big", huge)
        .send()
        .await
    {
        Ok(resp) => assert_eq!(resp.status(), 431),
        Err(e) => assert!(e.is_request() || e.is_connect() || e.is_body(), "{e}"),
    }

    // A client that starts a request and never finishes its headers is disconnected.
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(9), slow.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the slow client was not cut off");
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "cut off before its time"
    );
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Reads until the server closes the socket; how long that took, or `None` if it stayed open.
async fn closed_within(stream: &mut tokio::net::TcpStream, bound: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = Vec::new();
    tokio::time::timeout(bound, stream.read_to_end(&mut buf))
        .await
        .ok()
        .map(|_| started.elapsed())
}

#[tokio::test]
async fn idle_connections_are_closed_and_h2c_is_not_spoken() {
    let opts = Options {
        header_read_timeout: Some(Duration::from_millis(600)),
        keep_alive_idle: Some(Duration::from_millis(900)),
        ..Default::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, opts).await;
    let addr = app.base.trim_start_matches("http://").to_string();

    // A socket that never sends a byte.
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(8)).await;
    assert!(took.is_some(), "a silent connection stays open");
    assert!(took.unwrap() >= Duration::from_millis(500), "closed early");

    // A kept-alive connection after its request.
    let mut kept = tokio::net::TcpStream::connect(&addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(
        closed_within(&mut kept, Duration::from_secs(8))
            .await
            .is_some(),
        "an idle kept-alive connection stays open"
    );

    // HTTP/2 with prior knowledge is refused rather than left to idle.
    let mut h2c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    h2c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut h2c, Duration::from_secs(8))
            .await
            .is_some(),
        "an h2c connection stays open"
    );
}

#[tokio::test]
async fn at_the_connection_cap_new_clients_still_get_answers() {
    let opts = Options {
        max_connections: Some(20),
        ..Default::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, opts).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    for _ in 0..3 {
        let health = tokio::time::timeout(
            Duration::from_secs(5),
            reqwest::Client::new().get(app.url("/healthz")).send(),
        )
        .await
        .expect("a health check is answered at the cap")
        .unwrap();
        assert_eq!(health.status(), 200);
    }
    // The idle ones made room: the oldest of them were closed.
    let mut closed = 0;
    for s in idle.iter_mut().take(20) {
        if closed_within(s, Duration::from_millis(200)).await.is_some() {
            closed += 1;
        }
    }
    assert!(closed >= 20, "only {closed} idle connections were closed");
}
