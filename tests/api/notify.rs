//! Notifications: webhooks told of failures, recoveries and successes, signed, delivered once,
//! retried when the receiver is down without holding up any run, and a Test button.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{both_backends, webhook_receiver as receiver, Backend, TestApp};

both_backends!(
    a_failure_then_a_recovery_reach_the_webhook_once_each_signed,
    a_receiver_that_is_down_or_failing_holds_up_no_run,
    the_test_button_sends_to_each_webhook_and_says_how_it_answered,
    retries_failing_twice_then_succeeding_notify_two_failures_and_a_recovery,
    a_skipped_tick_is_notified,
);

fn verify(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    let sig = headers["x-scriptd-signature"].to_str().unwrap();
    let (t, v1) = sig.split_once(",v1=").unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let age = chrono::Utc::now().timestamp() - t.parse::<i64>().unwrap();
    want == v1 && (0..60).contains(&age)
}

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn deliveries(app: &TestApp, run: &str) -> Vec<Value> {
    app.get_json(&format!("/api/admin/scripts/runs/{run}/deliveries"))
        .await
        .as_array()
        .unwrap()
        .clone()
}

async fn a_failure_then_a_recovery_reach_the_webhook_once_each_signed(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (url, got) = receiver(StatusCode::OK).await;
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("ok");
    let script = app
        .bash(
            &format!("echo 'checking'; test -e {}", flag.display()),
            json!({"notifications": [{"url": url, "on": ["failure", "recovery"], "secret": "whsec-test"}]}),
        )
        .await;
    let doc = app.get_json(&format!("/api/admin/scripts/{script}")).await;
    assert_eq!(
        doc["notifications"],
        json!([{"url": url, "on": ["failure", "recovery"], "format": "json", "hasSecret": true}])
    );
    assert!(
        !doc.to_string().contains("whsec-test"),
        "the secret is never shown"
    );

    let failed = app.run(&script).await;
    app.wait_run(&failed).await;
    let d = until("the failure delivered", async || {
        let d = deliveries(&app, &failed).await;
        (d.len() == 1 && d[0]["status"] == "delivered").then_some(d)
    })
    .await;
    assert_eq!(
        (
            d[0]["event"].as_str(),
            d[0]["response"].as_i64(),
            d[0]["attempts"].as_i64()
        ),
        (Some("failure"), Some(200), Some(1))
    );
    let (headers, body) = got.all()[0].clone();
    assert_eq!(headers["x-scriptd-event"], "failure");
    assert_eq!(headers["x-scriptd-delivery"], d[0]["id"].as_str().unwrap());
    assert!(verify("whsec-test", &headers, &body), "a valid signature");
    assert!(!verify("other", &headers, &body));
    let sent: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sent["event"], "failure");
    assert_eq!(sent["run"]["id"], failed.as_str());
    assert_eq!(sent["run"]["status"], "failed");
    assert_eq!(sent["run"]["exitCode"], 1);
    assert_eq!(sent["run"]["outputTail"], "checking\n");
    assert_eq!(sent["script"]["id"], script.as_str());

    // A PUT that sends the webhook back with a null secret keeps it.
    let mut again = doc.clone();
    again["notifications"][0] = json!({"url": url, "on": ["failure", "recovery"], "secret": null});
    let resp = app
        .admin(Method::PUT, &format!("/api/admin/scripts/{script}"))
        .json(&again)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    std::fs::write(&flag, "").unwrap();
    let recovered = app.run(&script).await;
    app.wait_run(&recovered).await;
    until("the recovery delivered", async || {
        let d = deliveries(&app, &recovered).await;
        (d.len() == 1 && d[0]["status"] == "delivered").then_some(())
    })
    .await;
    let all = got.all();
    assert_eq!(
        all.len(),
        2,
        "each notification once, success not asked for"
    );
    assert_eq!(all[1].0["x-scriptd-event"], "recovery");
    assert!(
        verify("whsec-test", &all[1].0, &all[1].1),
        "still signed with the kept secret"
    );
    // A third success is no recovery.
    let third = app.run(&script).await;
    app.wait_run(&third).await;
    assert!(deliveries(&app, &third).await.is_empty());
}

async fn a_receiver_that_is_down_or_failing_holds_up_no_run(b: Backend) {
    let app = TestApp::spawn(b).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (failing, got) = receiver(StatusCode::INTERNAL_SERVER_ERROR).await;
    // A receiver that takes its time: its request stays open while the runs below go on.
    let (slow, slow_got) =
        crate::helpers::webhook_receiver_holding(StatusCode::OK, Duration::from_secs(30)).await;
    let script = app
        .bash(
            "true",
            json!({"concurrency": "parallel", "notifications": [
                {"url": format!("http://127.0.0.1:{closed}/down"), "on": ["success"]},
                {"url": failing, "on": ["success"], "format": "slack"},
                {"url": slow, "on": ["success"]}]}),
        )
        .await;
    let run = app.run(&script).await;
    assert_eq!(app.wait_run(&run).await["status"], "succeeded");
    let d = until("both attempts recorded", async || {
        let d: Vec<Value> = deliveries(&app, &run)
            .await
            .into_iter()
            .filter(|x| x["url"] != slow.as_str())
            .collect();
        (d.len() == 2 && d.iter().all(|x| x["attempts"] == 1)).then_some(d)
    })
    .await;
    until("the slow receiver's request open", async || {
        (!slow_got.all().is_empty()).then_some(())
    })
    .await;
    let down = d
        .iter()
        .find(|x| x["url"].as_str().unwrap().ends_with("/down"))
        .unwrap();
    assert_eq!(down["status"], "pending", "tried again later");
    assert!(down["response"].is_null());
    assert_eq!(down["error"], "could not connect");
    assert!(down["nextAt"].is_string());
    let five_hundred = d.iter().find(|x| x["url"] == failing.as_str()).unwrap();
    assert_eq!(five_hundred["response"], 500);
    assert_eq!(five_hundred["status"], "pending");
    let body: Value = serde_json::from_str(&got.all()[0].1).unwrap();
    assert!(
        body["text"].as_str().unwrap().contains("succeeded"),
        "Slack format: {body}"
    );
    assert!(
        got.all()[0].0.get("x-scriptd-signature").is_none(),
        "no secret, no signature"
    );
    // Runs go on as ever meanwhile, while the slow receiver still holds the first request.
    for _ in 0..3 {
        let r = app.run(&script).await;
        assert_eq!(app.wait_run(&r).await["status"], "succeeded");
    }
    let held = deliveries(&app, &run).await;
    let held = held.iter().find(|x| x["url"] == slow.as_str()).unwrap();
    assert_eq!(
        (held["status"].as_str(), held["attempts"].as_i64()),
        (Some("pending"), Some(0)),
        "the slow delivery is still unanswered: the runs did not wait for it"
    );
}

async fn the_test_button_sends_to_each_webhook_and_says_how_it_answered(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (ok_url, got) = receiver(StatusCode::NO_CONTENT).await;
    let (bad_url, _) = receiver(StatusCode::FORBIDDEN).await;
    let script = app
        .bash(
            "true",
            json!({"notifications": [
                {"url": ok_url, "on": ["failure"], "secret": "k"},
                {"url": bad_url, "on": ["failure"]}]}),
        )
        .await;
    let results = app
        .admin(
            Method::POST,
            &format!("/api/admin/scripts/{script}/notifications/test"),
        )
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        results,
        json!([
            {"url": ok_url, "ok": true, "response": 204, "error": null},
            {"url": bad_url, "ok": false, "response": 403, "error": "the receiver answered 403"}
        ])
    );
    let (headers, body) = got.all()[0].clone();
    assert_eq!(headers["x-scriptd-event"], "test");
    assert!(verify("k", &headers, &body));

    for (hook, field) in [
        (
            json!({"url": "ftp://x", "on": ["failure"]}),
            "notifications[0].url",
        ),
        (
            json!({"url": "https://x.example", "on": []}),
            "notifications[0].on",
        ),
    ] {
        let resp = app
            .admin(Method::POST, "/api/admin/scripts")
            .json(
                &json!({"name": "n", "codeIdentifier": "n", "type": "bash", "script": "true",
                          "notifications": [hook]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.json::<Value>().await.unwrap()["error"]["field"], field);
    }
}

async fn retries_failing_twice_then_succeeding_notify_two_failures_and_a_recovery(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (url, got) = receiver(StatusCode::OK).await;
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("count");
    let script = app
        .bash(
            &format!(
                "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; [ $n -ge 3 ]",
                c = count.display()
            ),
            json!({"retry": {"retries": 3, "delayMs": 100},
                   "notifications": [{"url": url, "on": ["failure", "recovery"]}]}),
        )
        .await;
    app.run(&script).await;
    let events = until("three notifications", async || {
        let all = got.all();
        (all.len() >= 3).then(|| {
            all.iter()
                .map(|(h, b)| {
                    let body: Value = serde_json::from_str(b).unwrap();
                    (
                        h["x-scriptd-event"].to_str().unwrap().to_string(),
                        body["run"]["meta"]["retry"]["attempt"].as_i64(),
                    )
                })
                .collect::<Vec<_>>()
        })
    })
    .await;
    let mut events = events;
    // Delivered as sent, in any order between runs: ordered by attempt here.
    events.sort_by_key(|e| e.1);
    assert_eq!(
        events,
        [
            ("failure".to_string(), None),
            ("failure".to_string(), Some(2)),
            ("recovery".to_string(), Some(3))
        ]
    );
}

async fn a_skipped_tick_is_notified(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (url, got) = receiver(StatusCode::OK).await;
    let script = app
        .bash(
            "sleep 2",
            json!({"schedule": {"enabled": true, "cron": "* * * * * *"},
                   "notifications": [{"url": url, "on": ["skipped"]}]}),
        )
        .await;
    let (_, body) = until("a skipped tick notified", async || {
        got.all().into_iter().next()
    })
    .await;
    let sent: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sent["event"], "skipped");
    assert_eq!(sent["run"]["status"], "skipped");
    assert_eq!(sent["run"]["meta"]["skipped"]["reason"], "still_running");
    let mut doc = app.get_json(&format!("/api/admin/scripts/{script}")).await;
    doc["schedule"]["enabled"] = json!(false);
    app.admin(Method::PUT, &format!("/api/admin/scripts/{script}"))
        .json(&doc)
        .send()
        .await
        .unwrap();
}
