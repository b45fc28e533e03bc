//! A host application mounts the module the way `examples/embed.rs` does: its own routes next
//! to scriptd's, served by its own axum server, with scriptd's background work running.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{child_env, PASSWORD, USER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_application_mounts_the_router_and_its_background_work_with_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = scriptd::config::Settings::with_data_dir(dir.path());
    settings.admin_user = USER.into();
    settings.admin_password = Some(PASSWORD.into());
    settings.supervisor_exe = Some(env!("CARGO_BIN_EXE_scriptd").into());
    settings.child_env = Some(child_env(dir.path()));
    let scripts = scriptd::app::build(settings).await.unwrap();
    let app = Router::new()
        .route("/host", get(|| async { "host page" }))
        .merge(scripts.router.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let closing = scripts.closing();
    let server = tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { closing.cancelled().await })
        .into_future(),
    );

    let client = reqwest::Client::new();
    let host = client.get(format!("{base}/host")).send().await.unwrap();
    assert_eq!(host.text().await.unwrap(), "host page");
    let admin = |m: Method, path: String, body: Option<Value>| {
        let mut req = client
            .request(m, format!("{base}{path}"))
            .basic_auth(USER, Some(PASSWORD));
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let body = json!({"name": "Embedded", "codeIdentifier": "embedded", "type": "bash",
                      "script": "echo from-the-host"});
    let script = admin(Method::POST, "/api/admin/scripts".into(), Some(body)).await;
    let run = admin(
        Method::POST,
        format!("/api/admin/scripts/{}/run", script["id"].as_str().unwrap()),
        None,
    )
    .await;
    let run_path = format!("/api/admin/scripts/runs/{}", run["runId"].as_str().unwrap());
    // The run is claimed and executed by the background work `build` started.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let finished = loop {
        let r = admin(Method::GET, run_path.clone(), None).await;
        if r["status"] != "queued" && r["status"] != "running" {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "run never ended: {r}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert!(finished["outputTail"]
        .as_str()
        .unwrap()
        .contains("from-the-host"));

    // A clean stop: streams end, the host's server drains, the background work stops.
    scripts.closing().cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the host's server drains")
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(15), scripts.shutdown())
        .await
        .expect("the module stops");
}
