//! Scripts as files: export and import through the API and the command line, byte-identical
//! round trips, dry runs, all-or-nothing imports, and secrets never in clear.

use std::collections::BTreeMap;
use std::process::Output;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{both_backends, Backend, Options, TestApp, PASSWORD};

both_backends!(
    export_then_import_into_an_empty_instance_then_export_gives_the_same_files,
    an_import_checks_every_file_first_and_changes_nothing_if_one_is_wrong,
);

const SECRET: &str = "pg-pass-31337";
const HOOK_SECRET: &str = "hook-sign-1234";
const PASSPHRASE: &str = "correct horse battery staple";

/// Scripts with every kind of field, bodies that are hard to quote included.
async fn seed(app: &TestApp) {
    app.create_script(json!({
        "name": "Nightly backup", "codeIdentifier": "nightly-backup",
        "description": "Dumps the database\nto /var/backups",
        "type": "bash",
        "script": "#!/bin/bash\nset -e\necho \"it's \\\"quoted\\\" and 'single'\"\nprintf 'tab\\there'\ncat <<'EOF'\n'''\n\"\"\"\nEOF\necho ünïcödé ✓   \ntest \"${PGPASSWORD#pg-pass-}\" = 31337\n",
        "defaultWorkingDirectory": "/tmp",
        "env": [{"key": "PGHOST", "value": "db.internal"},
                {"key": "PGPASSWORD", "value": SECRET, "secret": true}],
        "timeoutMs": 600000, "concurrency": "queue", "tty": true,
        "schedule": {"enabled": true, "cron": "0 3 * * *", "timezone": "Europe/Berlin", "catchUp": "last"},
        "apiTrigger": {"enabled": true},
        "retry": {"retries": 2, "delayMs": 1500, "factor": 1.5, "exitCodes": [3, 4]},
        "notifications": [{"url": "https://hooks.example.com/x", "on": ["failure", "recovery"],
                           "format": "slack", "secret": HOOK_SECRET}]
    }))
    .await;
    app.create_script(json!({
        "name": "Report", "codeIdentifier": "report", "type": "node", "runner": "isolated",
        "script": "const n = input.count;\nreturn n * 2;", "memoryLimitMb": 32, "enabled": false,
        "inputSchema": {"type": "object", "properties": {
            "count": {"type": "integer", "minimum": 1, "default": 3, "description": "how many"},
            "mode": {"type": "string", "enum": ["fast", "slow"]}}, "required": ["mode"]}
    }))
    .await;
    // Sent as text: the form's fields keep their order (a JSON value would sort them).
    let resp = app
        .admin(Method::POST, "/api/admin/scripts")
        .header("content-type", "application/json")
        .body(
            r#"{"name": "Page", "codeIdentifier": "page", "type": "browser",
                "script": "console.log('hi')", "inputSchema": {"type": "object",
                "properties": {"zeta": {"type": "string"}, "alpha": {"type": "boolean"}}}}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}

/// The input form's field names, in their order, as the script's page shows them.
async fn form_fields(app: &TestApp, code: &str) -> Vec<String> {
    let list = app.get_json("/api/admin/scripts").await;
    let id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codeIdentifier"] == code)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let text = app
        .call(Method::GET, &format!("/api/admin/scripts/{id}"))
        .await
        .text()
        .await
        .unwrap();
    let at = |name: &str| text.find(&format!("\"{name}\"")).unwrap();
    let mut names = vec!["zeta".to_string(), "alpha".to_string()];
    names.sort_by_key(|n| at(n));
    names
}

async fn export_tar(app: &TestApp, body: Value) -> BTreeMap<String, String> {
    let resp = app
        .admin(Method::POST, "/api/admin/scripts/export")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-tar");
    let bytes = resp.bytes().await.unwrap();
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut files = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
        files.insert(name, text);
    }
    files
}

async fn import(app: &TestApp, files: &BTreeMap<String, String>, extra: Value) -> (u16, Value) {
    let mut body = json!({
        "files": files.iter().map(|(n, c)| json!({"name": n, "content": c})).collect::<Vec<_>>()
    });
    crate::helpers::merge(&mut body, extra);
    let resp = app
        .admin(Method::POST, "/api/admin/scripts/import")
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn export_then_import_into_an_empty_instance_then_export_gives_the_same_files(b: Backend) {
    let source = TestApp::spawn(b).await;
    seed(&source).await;
    let files = export_tar(&source, json!({})).await;
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["nightly-backup.toml", "page.toml", "report.toml"]
    );
    let backup = &files["nightly-backup.toml"];
    // Readable: the body is a block, not an escaped line; secrets are named only.
    assert!(backup.contains("set -e\n"), "{backup}");
    assert!(
        backup.contains("key = \"PGPASSWORD\"\nsecret = true"),
        "{backup}"
    );
    for (name, text) in &files {
        assert!(
            !text.contains(SECRET) && !text.contains(HOOK_SECRET),
            "{name}"
        );
    }
    // One script, as a file of its own.
    let id = source.get_json("/api/admin/scripts").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let one = source
        .call(Method::GET, &format!("/api/admin/scripts/{id}/export"))
        .await;
    assert_eq!(one.status(), 200);
    assert!(one.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("nightly-backup.toml"));
    assert_eq!(&one.text().await.unwrap(), backup);

    // Into an empty instance, without the secrets: refused, naming the file and the key.
    let target = TestApp::spawn(b).await;
    let (status, err) = import(&target, &files, json!({})).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["field"], "nightly-backup.toml", "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("env[1]"),
        "{err}"
    );
    assert!(
        target.script_codes("").await.is_empty(),
        "a refused import changes nothing"
    );

    // Sealed with a passphrase: no clear secret, and they open with it only.
    let sealed = export_tar(&source, json!({"passphrase": PASSPHRASE})).await;
    for text in sealed.values() {
        assert!(!text.contains(SECRET) && !text.contains(HOOK_SECRET));
    }
    assert!(sealed["nightly-backup.toml"].contains("sealedWith = "));
    let (status, err) = import(&target, &sealed, json!({})).await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("passphrase"),
        "{err}"
    );
    let (status, err) = import(&target, &sealed, json!({"passphrase": "not the right one"})).await;
    assert_eq!(status, 400, "{err}");
    assert!(target.script_codes("").await.is_empty());

    let (status, plan) = import(
        &target,
        &sealed,
        json!({"passphrase": PASSPHRASE, "dryRun": true}),
    )
    .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["create"], json!(["nightly-backup", "page", "report"]));
    assert_eq!(plan["applied"], false);
    assert!(
        target.script_codes("").await.is_empty(),
        "a dry run changes nothing"
    );
    let (status, plan) = import(&target, &sealed, json!({"passphrase": PASSPHRASE})).await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["applied"], true);

    let again = export_tar(&target, json!({})).await;
    assert_eq!(
        again, files,
        "export → import → export gives the same bytes"
    );
    assert_eq!(form_fields(&target, "page").await, ["zeta", "alpha"]);

    // The sealed secret arrived: the script checks its value.
    let list = target.get_json("/api/admin/scripts").await;
    let backup_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codeIdentifier"] == "nightly-backup")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let versions = target
        .get_json(&format!("/api/admin/scripts/{backup_id}/versions"))
        .await;
    let run = target.run(&backup_id).await;
    assert_eq!(target.wait_run(&run).await["status"], "succeeded");
    assert_eq!(
        versions["versions"][0]["message"],
        "imported from nightly-backup.toml"
    );

    // Importing the same files again changes nothing; a changed file makes one new version.
    let (_, plan) = import(&target, &files, json!({})).await;
    assert_eq!(
        plan["unchanged"],
        json!(["nightly-backup", "page", "report"])
    );
    let mut changed = files.clone();
    let text = changed["report.toml"].replace("return n * 2;", "return n * 3;");
    changed.insert("report.toml".into(), text);
    let (_, plan) = import(&target, &changed, json!({})).await;
    assert_eq!(
        plan["update"],
        json!([{"code": "report", "fields": ["script"]}])
    );
    assert_eq!(plan["unchanged"], json!(["nightly-backup", "page"]));

    // Prune: only when asked, and a dry run says so first.
    changed.remove("page.toml");
    let (_, plan) = import(&target, &changed, json!({})).await;
    assert_eq!(plan["delete"], json!([]));
    let (_, plan) = import(&target, &changed, json!({"prune": true, "dryRun": true})).await;
    assert_eq!(plan["delete"], json!(["page"]));
    assert_eq!(target.script_codes("").await.len(), 3);
    let (_, plan) = import(&target, &changed, json!({"prune": true})).await;
    assert_eq!(plan["delete"], json!(["page"]));
    assert_eq!(target.script_codes("").await, ["nightly-backup", "report"]);
}

async fn an_import_checks_every_file_first_and_changes_nothing_if_one_is_wrong(b: Backend) {
    let app = TestApp::spawn(b).await;
    seed(&app).await;
    let files = export_tar(&app, json!({})).await;
    let before = export_tar(&app, json!({})).await;
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "report.toml",
            "name = \"x\"\nthis is not toml".into(),
            "report.toml",
        ),
        (
            "report.toml",
            files["report.toml"].replace("timeoutMs = 300000", "timeoutMs = 5"),
            "report.toml",
        ),
        (
            "report.toml",
            files["report.toml"]
                .replace("codeIdentifier = \"report\"", "codeIdentifier = \"other\""),
            "report.toml",
        ),
        (
            "report.toml",
            files["report.toml"]
                .replace("name = \"Report\"", "name = \"Report\"\ncolour = \"red\""),
            "report.toml",
        ),
    ];
    for (name, content, field) in cases {
        let mut bad = files.clone();
        let text = bad["nightly-backup.toml"].replace("echo ünïcödé", "echo changed");
        bad.insert("nightly-backup.toml".into(), text);
        bad.insert(name.into(), content);
        let (status, err) = import(&app, &bad, json!({})).await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["error"]["field"], field, "{err}");
        assert_eq!(
            export_tar(&app, json!({})).await,
            before,
            "{err}: nothing changed"
        );
    }
    let (status, _) = import(&app, &files, json!({"colour": 1})).await;
    assert_eq!(status, 422);
    for (body, status) in [
        (json!({"scripts": ["no-such-script"]}), 404),
        (json!({"passphrase": "too short"}), 400),
    ] {
        let resp = app
            .admin(Method::POST, "/api/admin/scripts/export")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{body}");
    }
}

async fn run_cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_scriptd"));
    cmd.args(args)
        .env_remove("SCRIPTD_URL")
        .env_remove("SCRIPTD_DATA_DIR")
        .env_remove("SCRIPTD_DATABASE_URL")
        .env_remove("SCRIPTD_EXPORT_PASSPHRASE")
        .env("SCRIPTD_ADMIN_PASSWORD", PASSWORD);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.unwrap()
}

fn dir_files(dir: &std::path::Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_command_line_exports_and_imports_on_the_database_and_through_the_api() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    seed(&app).await;
    let out = tempfile::tempdir().unwrap();
    let by_api = out.path().join("api");
    let o = run_cli(
        &[
            "export",
            "--url",
            &app.url(""),
            "--out",
            by_api.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let exported = dir_files(&by_api);
    assert_eq!(exported, export_tar(&app, json!({})).await);

    // On the database itself, while no server runs.
    let (data, _) = app.stop().await;
    let data_dir = data.path().to_str().unwrap().to_string();
    let by_db = out.path().join("db");
    let o = run_cli(
        &[
            "export",
            "--data-dir",
            &data_dir,
            "--out",
            by_db.to_str().unwrap(),
            "--script",
            "report",
        ],
        &[],
    )
    .await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        dir_files(&by_db).keys().collect::<Vec<_>>(),
        ["report.toml"]
    );
    assert_eq!(dir_files(&by_db)["report.toml"], exported["report.toml"]);

    let sealed = out.path().join("sealed");
    let passphrase_file = out.path().join("passphrase");
    std::fs::write(&passphrase_file, format!("{PASSPHRASE}\n")).unwrap();
    let o = run_cli(
        &[
            "export",
            "--data-dir",
            &data_dir,
            "--out",
            sealed.to_str().unwrap(),
            "--with-secrets",
            "--passphrase-file",
            passphrase_file.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sealed_text = dir_files(&sealed);
    assert!(sealed_text.values().all(|t| !t.contains(SECRET)));

    // Into a new data directory: a dry run prints the plan; the import applies it.
    let fresh = tempfile::tempdir().unwrap();
    let fresh_dir = fresh.path().to_str().unwrap();
    let o = run_cli(
        &[
            "import",
            "--data-dir",
            fresh_dir,
            sealed.to_str().unwrap(),
            "--dry-run",
        ],
        &[("SCRIPTD_EXPORT_PASSPHRASE", PASSPHRASE)],
    )
    .await;
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("create    nightly-backup"), "{stdout}");
    assert!(stdout.contains("dry run, nothing changed"), "{stdout}");
    let o = run_cli(
        &["import", "--data-dir", fresh_dir, sealed.to_str().unwrap()],
        &[],
    )
    .await;
    assert!(!o.status.success(), "sealed secrets need the passphrase");
    assert!(String::from_utf8_lossy(&o.stderr).contains("passphrase"));
    let o = run_cli(
        &["import", "--data-dir", fresh_dir, sealed.to_str().unwrap()],
        &[("SCRIPTD_EXPORT_PASSPHRASE", PASSPHRASE)],
    )
    .await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("imported: 3 to create"));

    // The new instance serves what was imported, recorded as the command line's doing.
    let url = format!("sqlite://{fresh_dir}/scriptd.db");
    let app = TestApp::start_on(fresh, url, Options::default()).await;
    assert_eq!(export_tar(&app, json!({})).await, exported);
    let audit = app.get_json("/api/admin/audit?action=scripts.import").await;
    assert!(audit["entries"][0]["actor"]
        .as_str()
        .unwrap()
        .starts_with("cli:"));
    // And an import through its API of the same files changes nothing.
    let o = run_cli(
        &["import", "--url", &app.url(""), by_api.to_str().unwrap()],
        &[],
    )
    .await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("0 to create, 0 to update, 3 unchanged"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}
