//! No process outlives its run: background children, `setsid` daemons and double forks are
//! all ended on timeout, on cancel, and when the main script exits.

use serde_json::json;

use crate::helpers::{both_backends, eventually, processes_with, Backend, Options, TestApp};

both_backends!(
    a_canceled_run_leaves_no_descendant_behind,
    a_timed_out_run_leaves_no_descendant_behind,
    descendants_left_by_a_finished_script_are_ended,
    sigterm_comes_first_and_sigkill_after_the_grace_period,
    a_script_that_kills_its_supervisor_leaves_no_background_child,
    a_dead_launcher_ends_its_runs_and_is_replaced,
    a_script_holds_no_descriptor_but_its_stdio,
);

/// A script that spreads out: a background child, a `setsid` grandchild, a double-forked
/// daemon that closed its output, and a child that ignores SIGTERM, each named by `marker`.
fn sprawling(marker: &str) -> String {
    format!(
        r#"
(exec -a {m}-bg sleep 300) &
setsid bash -c 'exec -a {m}-setsid sleep 300' &
( ( exec -a {m}-daemon sleep 300 </dev/null >/dev/null 2>&1 & ) & )
(trap '' TERM; exec -a {m}-stubborn sleep 300) &
echo spawned
sleep 300
"#,
        m = marker
    )
}

fn marker() -> String {
    format!("sdtest{}", uuid::Uuid::now_v7().simple())
}

async fn wait_spawned(marker: &str) {
    eventually(10, "all four descendants are up", || {
        processes_with(marker).len() >= 4
    })
    .await;
}

/// A server with a short kill grace and a run of the sprawling script (`extra` merged into
/// its definition) whose descendants are all up: the app, their marker and the run id.
async fn sprawled(
    b: Backend,
    grace_ms: u64,
    extra: serde_json::Value,
) -> (TestApp, String, String) {
    let app = TestApp::spawn_with(
        b,
        Options {
            kill_grace_ms: Some(grace_ms),
            ..Default::default()
        },
    )
    .await;
    let m = marker();
    let id = app.bash(&sprawling(&m), extra).await;
    let run = app.run(&id).await;
    wait_spawned(&m).await;
    (app, m, run)
}

async fn a_canceled_run_leaves_no_descendant_behind(b: Backend) {
    let (app, m, run) = sprawled(b, 500, json!({})).await;
    app.cancel(&run).await;
    let done = app.wait_run(&run).await;
    assert_eq!(done["status"], "canceled");
    assert_eq!(
        processes_with(&m),
        Vec::<i32>::new(),
        "every descendant is gone when the run is recorded"
    );
}

async fn a_timed_out_run_leaves_no_descendant_behind(b: Backend) {
    let (app, m, run) = sprawled(b, 500, json!({"timeoutMs": 1500})).await;
    let done = app.wait_run(&run).await;
    assert_eq!(done["status"], "timed_out");
    assert_eq!(processes_with(&m), Vec::<i32>::new());
}

async fn descendants_left_by_a_finished_script_are_ended(b: Backend) {
    let app = TestApp::spawn_with(
        b,
        Options {
            kill_grace_ms: Some(500),
            ..Default::default()
        },
    )
    .await;
    let m = marker();
    let script = format!(
        r#"
(exec -a {m}-bg sleep 300) &
setsid bash -c 'exec -a {m}-setsid sleep 300' &
( ( exec -a {m}-daemon sleep 300 </dev/null >/dev/null 2>&1 & ) & )
sleep 0.5
echo main-done
"#
    );
    let id = app.bash(&script, json!({})).await;
    let run = app.run(&id).await;
    let done = app.wait_run(&run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(processes_with(&m), Vec::<i32>::new());
}

async fn sigterm_comes_first_and_sigkill_after_the_grace_period(b: Backend) {
    let app = TestApp::spawn_with(
        b,
        Options {
            kill_grace_ms: Some(3000),
            ..Default::default()
        },
    )
    .await;
    let id = app
        .bash("trap 'echo got-term; sleep 0.2; echo cleaned-up; exit 0' TERM; echo ready; while true; do sleep 0.05; done", json!({}))
        .await;
    let run = app.run(&id).await;
    loop {
        if app.log(&run).await.contains("ready") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.cancel(&run).await;
    let done = app.wait_run(&run).await;
    assert_eq!(done["status"], "canceled");
    let log = app.log(&run).await;
    assert!(
        log.contains("got-term") && log.contains("cleaned-up"),
        "the script could clean up: {log}"
    );
}

async fn a_script_that_kills_its_supervisor_leaves_no_background_child(b: Backend) {
    let app = TestApp::spawn(b).await;
    let m = marker();
    let id = app
        .bash(
            &format!(
                "(exec -a {m}-bg sleep 300) &\n(trap '' TERM; exec -a {m}-stubborn sleep 300) &\n\
                 setsid bash -c 'exec -a {m}-escaped sleep 300' </dev/null >/dev/null 2>&1 &\n\
                 sleep 0.3; echo killing; kill -9 $PPID; sleep 300"
            ),
            json!({}),
        )
        .await;
    let run = app.run(&id).await;
    let done = app.wait_run(&run).await;
    assert_eq!(done["status"], "failed", "{done}");
    eventually(10, "what the script left behind is ended", || {
        processes_with(&m).is_empty()
    })
    .await;
}

fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(1).unwrap().parse().unwrap()
}

/// The launcher (which forks every run's supervisor) is killed with a run in flight: the run
/// is recorded failed once its tree is gone, and the next run starts under a new launcher.
async fn a_dead_launcher_ends_its_runs_and_is_replaced(b: Backend) {
    let (app, m, run) = sprawled(b, 300, json!({})).await;
    // The background child's parent is the script, whose parent is the supervisor, whose
    // parent is the launcher.
    let bg = *processes_with(&format!("{m}-bg")).first().unwrap();
    let launcher = parent_of(parent_of(parent_of(bg)));
    let cmdline = std::fs::read(format!("/proc/{launcher}/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("__launch"),
        "found the launcher"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(launcher),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let done = app.wait_run(&run).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"].as_str().unwrap().contains("lost track"),
        "{done}"
    );
    assert_eq!(
        processes_with(&m),
        Vec::<i32>::new(),
        "every descendant is gone when the run is recorded"
    );
    let next = app.bash("echo fine", json!({})).await;
    let again = app.run(&next).await;
    let done = app.wait_run(&again).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(app.log(&again).await.contains("fine"));
}

/// Nothing of the server's, its launcher's or its supervisor's reaches the script: not their
/// sockets, not the pipe on which the supervisor reports the script's end (which the script
/// could otherwise write a status of its own to).
async fn a_script_holds_no_descriptor_but_its_stdio(b: Backend) {
    let app = TestApp::spawn(b).await;
    let id = app
        .bash("ls /proc/$$/fd | sort -n | tr '\\n' ' '", json!({}))
        .await;
    let run = app.run(&id).await;
    let done = app.wait_run(&run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(app.log(&run).await.trim(), "0 1 2", "{done}");
}
