//! `scriptd backup` while a real server is busy, and `scriptd restore` once it is stopped.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use reqwest::Method;
use serde_json::json;

use crate::process::Server;

fn scriptd(args: &[&str], data_dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_scriptd"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_backup_taken_under_load_restores_scripts_runs_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let backup = elsewhere.path().join("scriptd-backup.db");
    let mut server = Server::start(dir.path(), &[]).await;
    let kept = server
        .create(
            json!({"name": "kept", "codeIdentifier": "kept", "type": "bash",
                       "script": "seq 1 3000", "concurrency": "parallel"}),
        )
        .await;
    let done = server.run(&kept).await;
    assert_eq!(server.wait_finished(&done).await["status"], "succeeded");
    // Load while the copy is taken: a run writing its log as fast as it can.
    let busy = server
        .create(
            json!({"name": "busy", "codeIdentifier": "busy", "type": "bash",
                       "script": "seq 1 300000"}),
        )
        .await;
    let busy_run = server.run(&busy).await;

    let out = scriptd(&["backup", backup.to_str().unwrap()], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the copy is its owner's alone");
    let again = scriptd(&["backup", backup.to_str().unwrap()], dir.path());
    assert!(
        !again.status.success(),
        "an existing file is never overwritten"
    );
    server.wait_finished(&busy_run).await;

    // After the backup: the kept script is deleted.
    let deleted = server
        .send(Method::DELETE, &format!("/api/admin/scripts/{kept}"), None)
        .await;
    assert_eq!(deleted.status(), 204);
    let refused = scriptd(&["restore", backup.to_str().unwrap()], dir.path());
    assert!(
        !refused.status.success(),
        "no restore under a running server"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    server.stop();
    let out = scriptd(&["restore", backup.to_str().unwrap()], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.restart().await;
    let script = server
        .json(Method::GET, &format!("/api/admin/scripts/{kept}"), None)
        .await;
    assert_eq!(script["codeIdentifier"], "kept", "{script}");
    let log = server.log(&done).await;
    assert_eq!(log.lines().count(), 3000);
    assert_eq!(log.lines().last(), Some("3000"));
    // The restored database takes new runs.
    let again = server.run(&kept).await;
    assert_eq!(server.wait_finished(&again).await["status"], "succeeded");
}

#[tokio::test]
async fn restore_refuses_a_file_that_is_not_a_scriptd_database() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all").unwrap();
    let out = scriptd(&["restore", junk.to_str().unwrap()], dir.path());
    assert!(!out.status.success());
    let never = dir.path().join("never-written.db");
    let postgres = scriptd(
        &[
            "backup",
            never.to_str().unwrap(),
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
        ],
        dir.path(),
    );
    assert!(!postgres.status.success());
    assert!(String::from_utf8_lossy(&postgres.stderr).contains("pg_dump"));
    assert!(!never.exists());
}
