//! A real server behind a real nginx with a typical `proxy_pass` configuration and no
//! streaming-specific settings: live lines arrive before the run ends, a stream resumes through
//! the proxy, the dashboard loads, and with `--public-url` the dashboard's own requests pass the
//! cross-origin check although nginx forwards its own Host.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::parse_sse;
use crate::process::{free_port, Server, PASSWORD};

/// nginx, or `None` with the reason printed (locally only: CI sets SCRIPTD_TEST_REQUIRE_NGINX).
fn nginx() -> Option<&'static str> {
    let path = "/usr/sbin/nginx";
    if std::path::Path::new(path).exists() {
        return Some(path);
    }
    assert!(
        std::env::var("SCRIPTD_TEST_REQUIRE_NGINX").is_err(),
        "nginx is required here (SCRIPTD_TEST_REQUIRE_NGINX) but {path} is missing"
    );
    println!("skipping the reverse proxy test: {path} is not installed (apt install nginx)");
    None
}

struct Nginx {
    child: Child,
    base: String,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts nginx in the foreground, proxying a free port to `upstream`.
async fn start_nginx(bin: &str, dir: &std::path::Path, port: u16, upstream: &str) -> Nginx {
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{}}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass {upstream};\n\
               proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n    }}\n  }}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(bin)
        .args(["-p", &d.to_string(), "-c"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while reqwest::get(format!("{base}/healthz"))
        .await
        .map_or(true, |r| r.status() != 200)
    {
        assert!(Instant::now() < deadline, "nginx did not start");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    Nginx { child, base }
}

#[tokio::test]
async fn live_output_resume_and_the_dashboard_work_through_nginx() {
    let Some(bin) = nginx() else { return };
    let dir = tempfile::tempdir().unwrap();
    let proxy_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let server = Server::start(dir.path(), &["--public-url", &public]).await;
    let proxy = start_nginx(bin, proxy_dir.path(), port, &server.base).await;
    let client = reqwest::Client::new();
    let via = |m: Method, path: &str| {
        client
            .request(m, format!("{}{path}", proxy.base))
            .basic_auth("admin", Some(PASSWORD))
    };

    // A run that prints, then waits for a gate: its first lines must arrive while it waits.
    let gate = dir.path().join("gate");
    let script = server
        .create(json!({"name": "proxied", "codeIdentifier": "proxied", "type": "bash",
            "script": format!("echo first; echo second; while [ ! -e {} ]; do sleep 0.02; done; echo last",
                              gate.display())}))
        .await;
    // Started through the proxy as the dashboard does: same origin as the public URL, while
    // nginx forwards its upstream address as Host.
    let started = via(Method::POST, &format!("/api/admin/scripts/{script}/run"))
        .header("origin", &public)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202, "the public origin is this server's");
    let run = started.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_string();
    let stream = via(
        Method::GET,
        &format!("/api/admin/scripts/runs/{run}/stream"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(stream.status(), 200);
    let mut body = stream.bytes_stream();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !text.contains("\"line\":\"second\"") {
        let chunk = tokio::time::timeout_at(deadline.into(), body.next())
            .await
            .expect("lines printed before the run ends arrive through nginx while it runs")
            .expect("the stream stays open")
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(
        server.get_run(&run).await["status"],
        "running",
        "the lines came while the run was still running"
    );
    std::fs::write(&gate, "").unwrap();
    while !text.contains("event: done") {
        let chunk = tokio::time::timeout_at(deadline.into(), body.next())
            .await
            .expect("done")
            .expect("the stream ends with done")
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let lines: Vec<String> = parse_sse(&text)
        .into_iter()
        .filter(|e| e.event == "log")
        .map(|e| e.data["line"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(lines, ["first", "second", "last"]);

    // Resume through the proxy: after seq 1, exactly the rest.
    let resumed = via(
        Method::GET,
        &format!("/api/admin/scripts/runs/{run}/stream"),
    )
    .header("last-event-id", "1")
    .send()
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let seqs: Vec<i64> = parse_sse(&resumed)
        .into_iter()
        .filter(|e| e.event == "log")
        .map(|e| e.data["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [2, 3]);

    // The dashboard and its assets load through the proxy.
    let page = via(Method::GET, "/admin/scripts").send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let asset = html
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page loads a script")
        .to_string();
    assert_eq!(via(Method::GET, &asset).send().await.unwrap().status(), 200);

    // The token's curl line names the public URL, not the upstream address nginx used.
    let token: Value = via(
        Method::POST,
        &format!("/api/admin/scripts/{script}/api-token"),
    )
    .header("origin", &public)
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        token["url"],
        format!("{public}/api/scripts/proxied/run"),
        "{token}"
    );
    // Another origin is still refused.
    let foreign = via(Method::POST, &format!("/api/admin/scripts/{script}/run"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
}
