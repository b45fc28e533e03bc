//! The isolated JavaScript runner through the API: what scripts see, how they end, and
//! escape attempts modelled on published vm2 advisories.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{both_backends, Backend, TestApp};

both_backends!(
    console_input_env_and_result_behave_like_node,
    each_failure_kind_ends_the_run_and_the_server_carries_on,
    results_and_errors_are_masked_bounded_and_left_out_of_lists,
);

async fn isolated(app: &TestApp, script: &str, extra: Value) -> (Value, String) {
    let mut body = json!({
        "name": format!("iso {}", uuid::Uuid::now_v7().simple()),
        "codeIdentifier": format!("iso-{}", uuid::Uuid::now_v7().simple()),
        "type": "node", "runner": "vm2", "script": script, "concurrency": "parallel",
    });
    crate::helpers::merge(&mut body, extra);
    let created = app.create_script(body).await;
    assert_eq!(created["runner"], "isolated");
    let id = created["id"].as_str().unwrap();
    let resp = app
        .start_run(id, Some(json!({"input": {"project": "p1", "n": 2}})))
        .await;
    assert_eq!(resp.status(), 202);
    let run_id = resp.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_string();
    let run = app.wait_run(&run_id).await;
    let log = app.log(&run_id).await;
    (run, log)
}

async fn console_input_env_and_result_behave_like_node(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (run, log) = isolated(
        &app,
        r#"
console.log("text", 42, true, null, undefined);
console.log({ a: 1, b: "x", nested: { deep: { deeper: { deepest: 1 } } }, list: [1, "two"] });
console.info(new Map([["k", 1]]), new Set([1]));
console.warn("careful");
console.error(new Error("shown with its stack"));
console.log(typeof require, typeof process, typeof fetch, typeof WebAssembly, typeof setTimeout);
console.log("input", input.project, input.n * 21);
console.log("env", env.GREETING, Object.isFrozen(env));
const answer = await new Promise((resolve) => resolve(input.n * 21));
({ answer, project: input.project })
"#,
        json!({"env": [{"key": "GREETING", "value": "hello", "secret": false}]}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}\n{log}");
    assert_eq!(run["exitCode"], 0);
    assert_eq!(run["result"], json!({"answer": 42, "project": "p1"}));
    let expected_stdout = [
        "text 42 true null undefined",
        "{ a: 1, b: 'x', nested: { deep: { deeper: [Object] } }, list: [ 1, 'two' ] }",
        "Map(1) { 'k' => 1 } Set(1) { 1 }",
        "undefined undefined undefined undefined undefined",
        "input p1 42",
        "env hello true",
    ];
    for line in expected_stdout {
        assert!(
            log.lines().any(|l| l == line),
            "missing {line:?} in:\n{log}"
        );
    }
    assert!(log.contains("careful"));
    assert!(
        log.contains("Error: shown with its stack") && log.contains("    at "),
        "{log}"
    );
    let stream = app
        .call(
            Method::GET,
            &format!(
                "/api/admin/scripts/runs/{}/stream",
                run["id"].as_str().unwrap()
            ),
        )
        .await
        .text()
        .await
        .unwrap();
    let lines = crate::helpers::log_lines(&crate::helpers::parse_sse(&stream));
    let stream_of = |needle: &str| {
        lines
            .iter()
            .find(|l| l.2.contains(needle))
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(stream_of("careful"), "stderr");
    assert_eq!(stream_of("input p1"), "stdout");

    let (run, _) = isolated(
        &app,
        "async function main() { return [1, 2, 3].map((x) => x * 2); }\nmain()",
        json!({}),
    )
    .await;
    assert_eq!(run["result"], json!([2, 4, 6]));
    let (run, _) = isolated(&app, "console.log('no value')", json!({})).await;
    assert_eq!(run["status"], "succeeded");
    assert!(run["result"].is_null());
}

async fn each_failure_kind_ends_the_run_and_the_server_carries_on(b: Backend) {
    let app = TestApp::spawn(b).await;
    let side = app
        .bash(
            "sleep 1; echo side-run-fine",
            json!({"concurrency": "parallel"}),
        )
        .await;
    let side_run = app.run(&side).await;

    let (run, _) = isolated(&app, "while (true) {}", json!({"timeoutMs": 1000})).await;
    assert_eq!(run["status"], "timed_out", "{run}");

    let (run, _) = isolated(
        &app,
        "const keep = []; while (true) keep.push(new Array(1e6).fill(7));",
        json!({"memoryLimitMb": 16}),
    )
    .await;
    assert_eq!(run["status"], "failed");
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("memory limit of 16 MiB"),
        "{run}"
    );

    let (run, _) = isolated(
        &app,
        "function down(n) { return down(n + 1) + 1 } down(0)",
        json!({}),
    )
    .await;
    assert_eq!(run["status"], "failed");
    assert!(
        run["error"].as_str().unwrap().contains("stack overflow"),
        "{run}"
    );

    let (run, log) = isolated(
        &app,
        "function inner() { throw new TypeError('bad input') }\ninner()",
        json!({}),
    )
    .await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"], "TypeError: bad input");
    assert!(
        log.contains("Uncaught TypeError: bad input") && log.contains("at inner"),
        "{log}"
    );

    let (run, log) = isolated(&app, "throw { code: 7 }", json!({})).await;
    assert_eq!(run["status"], "failed");
    assert!(log.contains("Uncaught"), "{log}");
    let (run, _) = isolated(
        &app,
        "await Promise.reject(new Error('async failure'))",
        json!({}),
    )
    .await;
    assert_eq!(run["error"], "Error: async failure");

    let side = app.wait_run(&side_run).await;
    assert_eq!(side["status"], "succeeded", "other runs carry on");
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

/// Each attempt prints ESCAPED if it reaches anything outside the engine.
const ESCAPES: &[(&str, &str)] = &[
    (
        "constructor.constructor('return this')",
        r#"
const g = ({}).constructor.constructor("return this")();
if (g && (g.process || g.require || g.std || g.os)) console.log("ESCAPED", Object.keys(g));
"#,
    ),
    (
        "Function('return process') from a bound function",
        r#"
const f = Function.prototype.bind.call(Function, null, "return typeof process !== 'undefined' ? process : null");
if (f()()) console.log("ESCAPED");
"#,
    ),
    (
        "prepareStackTrace / CallSite getThis and getFunction",
        r#"
Error.prepareStackTrace = (e, sites) => sites.map((s) => [s.getThis && s.getThis(), s.getFunction && s.getFunction()]);
try { console.log({ get x() { throw new Error("x") } }); } catch (e) {
  const leaked = [].concat(...(Array.isArray(e.stack) ? e.stack : [])).filter(Boolean);
  for (const v of leaked) { if (v && (v.process || v.require)) console.log("ESCAPED"); }
}
"#,
    ),
    (
        "Promise species",
        r#"
class Evil extends Promise { static get [Symbol.species]() { return function (exec) { exec(() => {}, (e) => { if (e && e.constructor && e.constructor.constructor("return typeof process")() !== "undefined") console.log("ESCAPED"); }); }; } }
await Evil.resolve(1).then(() => { throw new Error("x") }).catch(() => {});
"#,
    ),
    (
        "nodejs.util.inspect.custom",
        r#"
const o = { [Symbol.for("nodejs.util.inspect.custom")]: (d, opts, inspect) => { if (typeof inspect === "function" || (opts && opts.stylize)) console.log("ESCAPED"); return "x"; } };
console.log(o);
"#,
    ),
    (
        "Proxy traps on console arguments",
        r#"
const p = new Proxy({}, { getPrototypeOf(t) { const c = (new Error()).constructor.constructor; if (c("return typeof require")() !== "undefined") console.log("ESCAPED"); return Object.prototype; } });
console.log(p);
"#,
    ),
    (
        "dynamic import",
        r#"
for (const m of ["fs", "child_process", "os", "std", "/etc/passwd", "node:fs"]) {
  try { await import(m); console.log("ESCAPED", m); } catch (e) {}
}
"#,
    ),
    (
        "eval and globalThis",
        r#"
const g = (0, eval)("globalThis");
for (const k of ["process", "require", "fetch", "XMLHttpRequest", "WebAssembly", "Deno", "Bun", "std", "os", "__scriptd_emit"]) if (g[k] !== undefined) console.log("ESCAPED", k);
"#,
    ),
];

#[tokio::test]
async fn sandbox_escape_attempts_reach_nothing_and_crash_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (name, script) in ESCAPES {
        let (run, log) = isolated(&app, script, json!({"timeoutMs": 5000})).await;
        assert!(!log.contains("ESCAPED"), "{name}: {log}");
        assert!(
            matches!(run["status"].as_str(), Some("succeeded" | "failed")),
            "{name} ended as {run}"
        );
    }
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

#[tokio::test]
async fn the_worker_sandbox_kills_the_worker_on_anything_outside_its_allowlist() {
    // Debug builds honour a probe that attempts one forbidden operation from inside the
    // worker, after the sandbox is on, as native code injected through an engine bug would.
    let app = TestApp::spawn(Backend::Sqlite).await;
    let health: Value = app.get_json("/healthz").await;
    let active = health["isolation"]["active"].as_array().unwrap().clone();
    assert!(active.iter().any(|l| l == "seccomp"), "{health}");
    for what in [
        "open",
        "socket",
        "rename",
        "symlink",
        "ftruncate",
        "kill",
        "tgkill",
        "process_vm_readv",
        "spawn",
    ] {
        let (run, log) = isolated(
            &app,
            "1",
            json!({"env": [{"key": "__SCRIPTD_PROBE", "value": what, "secret": false}]}),
        )
        .await;
        assert!(
            log.contains(&format!("probe: attempting {what}")),
            "{what}: {log}"
        );
        assert!(!log.contains("returned"), "{what} was allowed: {log}");
        assert_eq!(run["status"], "failed", "{what}: {run}");
        assert_eq!(run["signal"], 31, "{what} ends the worker by SIGSYS: {run}");
    }
    // Without a probe the same worker runs scripts as usual.
    let (run, _) = isolated(&app, "1 + 1", json!({})).await;
    assert_eq!(run["result"], 2);
}

/// A worker that dies without ending its script fails the run, and what it wrote to its own
/// stderr on the way (here a panic's message) is in the run's log.
#[tokio::test]
async fn a_worker_that_dies_has_its_own_stderr_logged() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (run, log) = isolated(
        &app,
        "1",
        json!({"env": [{"key": "__SCRIPTD_PROBE", "value": "panic", "secret": false}]}),
    )
    .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(
        run["error"], "the isolated worker ended without a result",
        "{run}"
    );
    assert!(log.contains("probe: the worker panics as asked"), "{log}");
}

async fn results_and_errors_are_masked_bounded_and_left_out_of_lists(b: Backend) {
    let app = TestApp::spawn(b).await;
    let secret = json!({"env": [{"key": "TOKEN", "value": "tok-9f8e7d6c", "secret": true}]});
    let (run, _) = isolated(&app, "({leak: env.TOKEN, [env.TOKEN]: 1})", secret.clone()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let text = run["result"].to_string();
    assert!(
        !text.contains("tok-9f8e7d6c"),
        "the result leaks the secret: {text}"
    );
    assert!(text.contains("***"), "{text}");

    let (run, log) = isolated(&app, "throw new Error('bad ' + env.TOKEN)", secret).await;
    assert_eq!(run["status"], "failed");
    let error = run["error"].as_str().unwrap();
    assert!(
        !error.contains("tok-9f8e7d6c") && error.contains("***"),
        "{error}"
    );
    assert!(!log.contains("tok-9f8e7d6c"));

    let (run, _) = isolated(&app, "throw new Error('x'.repeat(200000))", json!({})).await;
    let error = run["error"].as_str().unwrap();
    assert!(
        error.len() < 70 * 1024,
        "the error is not bounded: {} bytes",
        error.len()
    );
    assert!(error.contains("cut at 64 KiB"));
    let (run, _) = isolated(&app, "'y'.repeat(300000)", json!({})).await;
    assert!(run["result"].to_string().len() < 70 * 1024);

    let list: Value = app.get_json("/api/admin/scripts/runs?limit=10").await;
    for r in list["runs"].as_array().unwrap() {
        assert!(r["result"].is_null(), "lists carry no result: {r}");
        assert!(r["error"].as_str().map_or(0, str::len) <= 1000);
    }
}

/// Children of `pid`, from /proc.
fn children_of(pid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|stat| {
                let rest = &stat[stat.rfind(')').unwrap() + 2..];
                rest.split(' ').nth(1) == Some(&pid.to_string())
            })
        })
        .collect()
}

fn cmdline(pid: i32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
        .replace('\0', " ")
}

/// Each isolated run takes a worker started ahead of need, locked down as it waits, and leaves
/// a fresh one waiting; a waiting worker that dies is replaced, and no worker is ever used twice.
#[tokio::test]
async fn a_spare_worker_serves_one_run_and_a_dead_one_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::process::Server::start(dir.path(), &[]).await;
    let id = server
        .create(
            json!({"name": "spare", "codeIdentifier": "spare", "type": "node",
                       "runner": "isolated", "script": "input.n * 2", "concurrency": "parallel"}),
        )
        .await;
    // Workers are forked (not exec'd) by a launcher of their own, and share its command line.
    let spares = || -> Vec<i32> {
        children_of(server.pid().as_raw())
            .into_iter()
            .filter(|p| cmdline(*p).contains("__launch isolated-workers"))
            .flat_map(children_of)
            .filter(|p| cmdline(*p).contains("__launch isolated-workers"))
            .collect()
    };
    let run_with = |n: i64| {
        let server = &server;
        let id = id.clone();
        async move {
            let resp = server
                .send(
                    Method::POST,
                    &format!("/api/admin/scripts/{id}/run"),
                    Some(&json!({"input": {"n": n}})),
                )
                .await;
            let run: Value = resp.json().await.unwrap();
            server.wait_finished(run["runId"].as_str().unwrap()).await
        }
    };
    assert_eq!(run_with(1).await["result"], 2);
    crate::helpers::eventually(10, "a spare worker waits", || spares().len() == 1).await;
    let first = spares()[0];
    // Waiting for its job, it locks itself down: seccomp filtering, no new privileges. (It is
    // seen as soon as it exists, a moment before it has done so; no job is sent meanwhile.)
    let status = || std::fs::read_to_string(format!("/proc/{first}/status")).unwrap();
    crate::helpers::eventually(10, "the waiting worker locks itself down", || {
        let status = status();
        status.contains("\nSeccomp:\t2\n") && status.contains("\nNoNewPrivs:\t1\n")
    })
    .await;
    assert_eq!(run_with(2).await["result"], 4);
    crate::helpers::eventually(10, "the used worker is gone, a new one waits", || {
        let now = spares();
        now.len() == 1 && now[0] != first
    })
    .await;
    let waiting = spares()[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(waiting),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Died while waiting: gone (or a zombie) before the next run, as a kill takes a moment.
    crate::helpers::eventually(10, "the killed spare is dead", || {
        std::fs::read_to_string(format!("/proc/{waiting}/stat")).map_or(true, |stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
    })
    .await;
    let done = run_with(3).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"], 6);
}

/// Whether `needle` is anywhere in the readable memory of process `pid` (read as root through
/// /proc, which the test machines run as).
fn memory_holds(pid: i32, needle: &[u8]) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    maps.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let (range, perms) = (fields.next().unwrap(), fields.next().unwrap());
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let mut region = vec![0u8; (end - start) as usize];
        perms.starts_with('r')
            && !line.ends_with("[vvar]")
            && mem.seek(SeekFrom::Start(start)).is_ok()
            && mem.read_exact(&mut region).is_ok()
            && region.windows(needle.len()).any(|w| w == needle)
    })
}

/// A worker is forked without an exec, so it starts with a copy of its launcher's memory: the
/// launcher that forks workers never had a run's environment pass through it, unlike the one
/// that starts scripts, whose memory still holds a secret of a script that ran before.
#[tokio::test]
async fn a_waiting_worker_holds_no_secret_of_another_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::process::Server::start(dir.path(), &[]).await;
    let secret = format!("sdsecret{}", uuid::Uuid::now_v7().simple());
    let bash = server
        .create(
            json!({"name": "holder", "codeIdentifier": "holder", "type": "bash",
                       "script": "test -n \"$TOKEN\"",
                       "env": [{"key": "TOKEN", "value": secret, "secret": true}]}),
        )
        .await;
    let run = server.run(&bash).await;
    assert_eq!(server.wait_finished(&run).await["status"], "succeeded");
    let js = server
        .create(json!({"name": "js", "codeIdentifier": "js", "type": "node",
                       "runner": "isolated", "script": "1+1"}))
        .await;
    let run = server.run(&js).await;
    assert_eq!(server.wait_finished(&run).await["status"], "succeeded");

    let launchers = |role: &str| -> Vec<i32> {
        children_of(server.pid().as_raw())
            .into_iter()
            .filter(|p| cmdline(*p).contains(&format!("__launch {role}")))
            .collect()
    };
    crate::helpers::eventually(10, "a spare worker waits", || {
        launchers("isolated-workers")
            .into_iter()
            .flat_map(children_of)
            .count()
            == 1
    })
    .await;
    let scripts = launchers("scripts");
    assert_eq!(scripts.len(), 1);
    assert!(
        memory_holds(scripts[0], secret.as_bytes()),
        "the scripts' launcher had the secret pass through it (so the search finds it)"
    );
    let worker = launchers("isolated-workers")
        .into_iter()
        .flat_map(children_of)
        .next()
        .unwrap();
    assert!(!memory_holds(worker, secret.as_bytes()));
}
