//! The command-line client: subcommands of the same binary that talk to a running server's
//! API (any node). Credentials come from the environment or a file, never only from the
//! command line, so they do not end up in shell history or `ps`.

mod client;
mod follow;
mod show;
pub mod transfer;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

use client::Client;

/// Exit statuses of a followed run that did not end with an exit code of its own.
pub mod exit {
    /// The client itself failed: bad arguments, the server refused the request.
    pub const CLIENT_ERROR: u8 = 1;
    /// The run timed out (as `timeout(1)` does).
    pub const TIMED_OUT: u8 = 124;
    /// The run failed without an exit code: it could not start, or its node died.
    pub const FAILED_TO_RUN: u8 = 125;
    /// The run was canceled, or following was interrupted (Ctrl-C).
    pub const CANCELED: u8 = 130;
}

const CONNECTION_HELP: &str = "\
Connection: --url or SCRIPTD_URL (default http://127.0.0.1:8080). Admin credentials:
SCRIPTD_ADMIN_USER (default admin) and SCRIPTD_ADMIN_PASSWORD, or --password-file FILE
(SCRIPTD_PASSWORD_FILE). `run` can instead use a script's trigger token: SCRIPTD_TOKEN or
--token-file FILE (SCRIPTD_TOKEN_FILE).";

#[derive(Args, Clone)]
pub struct Connection {
    /// The server's URL (any node)
    #[arg(long, env = "SCRIPTD_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The admin user
    #[arg(long, env = "SCRIPTD_ADMIN_USER", default_value = "admin")]
    user: String,
    /// A file holding the admin password (else SCRIPTD_ADMIN_PASSWORD)
    #[arg(long, env = "SCRIPTD_PASSWORD_FILE", value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// A file holding a script's trigger token (else SCRIPTD_TOKEN); only `run` uses it
    #[arg(long, env = "SCRIPTD_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// `text` for people, `json` for scripts
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Args)]
#[command(after_help = format!("Examples:\n  scriptd scripts\n  scriptd scripts --type bash --search backup --output json\n\n{CONNECTION_HELP}"))]
pub struct ScriptsArgs {
    #[command(flatten)]
    conn: Connection,
    /// Only scripts of this type (bash, node, browser)
    #[arg(long = "type")]
    script_type: Option<String>,
    /// Only scripts whose name, code or description contains this
    #[arg(long)]
    search: Option<String>,
}

#[derive(Args)]
#[command(after_help = format!("Examples:\n  scriptd script nightly-backup\n\n{CONNECTION_HELP}"))]
pub struct ScriptArgs {
    #[command(flatten)]
    conn: Connection,
    /// The script's codeIdentifier or id
    script: String,
}

#[derive(Args)]
#[command(after_help = format!("\
Examples:
  scriptd run nightly-backup
  scriptd run report --input '{{\"since\": \"2026-11-01\"}}'
  scriptd run report since=2026-11-01 limit=10 dryRun=true
  scriptd run report --input-file input.json --cancel-on-interrupt
  scriptd run nightly-backup --detach
  SCRIPTD_TOKEN=sdt_… scriptd run nightly-backup     # with the script's trigger token

The run's stdout goes to stdout and its stderr to stderr, as printed (colours included). The
exit status is the script's; 124 when it timed out, 125 when it failed without an exit code
(it could not start, its node died), 128+N when signal N ended it, 130 when it was canceled or
following was interrupted, 1 when the request itself failed. With a trigger token the output
tail is printed when the run ends (the token cannot follow a stream).

{CONNECTION_HELP}"))]
pub struct RunArgs {
    #[command(flatten)]
    conn: Connection,
    /// The script's codeIdentifier (or its id, with admin credentials)
    script: String,
    /// The run's input, as JSON
    #[arg(long, conflicts_with_all = ["input_file", "fields"])]
    input: Option<String>,
    /// A file holding the run's input, as JSON (`-` for standard input)
    #[arg(long, value_name = "FILE", conflicts_with = "fields")]
    input_file: Option<PathBuf>,
    /// The input as fields of an object: each value is taken as JSON when it is valid JSON
    /// (10, true, null, "text", [1,2]), else as text
    #[arg(value_name = "KEY=VALUE")]
    fields: Vec<String>,
    /// Print the run's id and return without following it
    #[arg(long)]
    detach: bool,
    /// On Ctrl-C, cancel the run as well as stop following it
    #[arg(long)]
    cancel_on_interrupt: bool,
}

#[derive(Args)]
#[command(after_help = format!("Examples:\n  scriptd runs\n  scriptd runs --script nightly-backup --status failed --limit 10\n\n{CONNECTION_HELP}"))]
pub struct RunsArgs {
    #[command(flatten)]
    conn: Connection,
    /// Only this script's runs (codeIdentifier or id)
    #[arg(long)]
    script: Option<String>,
    /// Only runs in this status (queued, running, succeeded, failed, canceled, timed_out, skipped)
    #[arg(long)]
    status: Option<String>,
    /// How many, newest first (1-200)
    #[arg(long, default_value_t = 20)]
    limit: u32,
}

#[derive(Args)]
#[command(after_help = format!("Examples:\n  scriptd log 019abb…\n  scriptd log 019abb… --out run.log\n\n{CONNECTION_HELP}"))]
pub struct LogArgs {
    #[command(flatten)]
    conn: Connection,
    /// The run's id
    run: String,
    /// Write the log to this file instead of standard output
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args)]
#[command(after_help = format!("Examples:\n  scriptd follow 019abb…\n\nExit status as for `scriptd run`.\n\n{CONNECTION_HELP}"))]
pub struct FollowArgs {
    #[command(flatten)]
    conn: Connection,
    /// The run's id
    run: String,
    /// On Ctrl-C, cancel the run as well as stop following it
    #[arg(long)]
    cancel_on_interrupt: bool,
}

#[derive(Args)]
#[command(after_help = format!("Examples:\n  scriptd cancel 019abb…\n\n{CONNECTION_HELP}"))]
pub struct CancelArgs {
    #[command(flatten)]
    conn: Connection,
    /// The run's id
    run: String,
}

/// The client subcommands.
#[derive(Subcommand)]
pub enum Request {
    /// List scripts (client: talks to a running server; see its --help)
    Scripts(ScriptsArgs),
    /// Show one script (client)
    Script(ScriptArgs),
    /// Start a run and follow its output live; exits with the script's status (client)
    Run(RunArgs),
    /// List runs, newest first (client)
    Runs(RunsArgs),
    /// Print or download a run's stored log (client)
    Log(LogArgs),
    /// Follow a queued or running run's output live (client)
    Follow(FollowArgs),
    /// Cancel a queued or running run (client)
    Cancel(CancelArgs),
}

/// Runs one client subcommand; its exit status.
pub fn main(request: Request) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("scriptd: {e}");
            return ExitCode::from(exit::CLIENT_ERROR);
        }
    };
    match runtime.block_on(dispatch(request)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("scriptd: {e:#}");
            ExitCode::from(exit::CLIENT_ERROR)
        }
    }
}

async fn dispatch(request: Request) -> anyhow::Result<u8> {
    match request {
        Request::Scripts(a) => {
            let client = Client::admin(&a.conn)?;
            let mut query = Vec::new();
            if let Some(t) = &a.script_type {
                query.push(("type", t.as_str()));
            }
            if let Some(q) = &a.search {
                query.push(("q", q.as_str()));
            }
            let scripts = client.get_json("/api/admin/scripts", &query).await?;
            show::scripts(a.conn.output, &scripts);
            Ok(0)
        }
        Request::Script(a) => {
            let client = Client::admin(&a.conn)?;
            let script = client.script(&a.script).await?;
            show::script(a.conn.output, &script);
            Ok(0)
        }
        Request::Run(a) => run(a).await,
        Request::Runs(a) => {
            let client = Client::admin(&a.conn)?;
            let script_id = match &a.script {
                Some(s) => Some(
                    client.script(s).await?["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ),
                None => None,
            };
            let limit = a.limit.to_string();
            let mut query = vec![("limit", limit.as_str())];
            if let Some(id) = &script_id {
                query.push(("scriptId", id.as_str()));
            }
            if let Some(s) = &a.status {
                query.push(("status", s.as_str()));
            }
            let runs = client.get_json("/api/admin/scripts/runs", &query).await?;
            show::runs(a.conn.output, &runs);
            Ok(0)
        }
        Request::Log(a) => {
            let client = Client::admin(&a.conn)?;
            client.download_log(&a.run, a.out.as_deref()).await?;
            Ok(0)
        }
        Request::Follow(a) => {
            let client = Client::admin(&a.conn)?;
            follow::follow(&client, &a.run, a.cancel_on_interrupt, a.conn.output).await
        }
        Request::Cancel(a) => {
            let client = Client::admin(&a.conn)?;
            let answer = client
                .post_json(&format!("/api/admin/scripts/runs/{}/cancel", a.run), None)
                .await?;
            show::canceled(a.conn.output, &answer);
            Ok(0)
        }
    }
}

async fn run(a: RunArgs) -> anyhow::Result<u8> {
    let input = read_input(&a)?;
    // Admin credentials when there are some (they can follow the run), else a trigger token.
    let client = match Client::admin(&a.conn) {
        Ok(client) => client,
        Err(no_admin) => match Client::trigger_token(&a.conn)? {
            Some(token) => {
                let client = Client::anonymous(&a.conn)?;
                return follow::trigger(&client, &a.script, &token, input, a.detach, a.conn.output)
                    .await;
            }
            None => return Err(no_admin),
        },
    };
    let script = client.script(&a.script).await?;
    let id = script["id"].as_str().unwrap_or_default();
    let body = input.map(|input| serde_json::json!({ "input": input }));
    let started = client
        .post_json(&format!("/api/admin/scripts/{id}/run"), body.as_ref())
        .await?;
    let run_id = started["runId"].as_str().unwrap_or_default().to_string();
    if a.detach {
        show::started(a.conn.output, &started);
        return Ok(0);
    }
    follow::follow(&client, &run_id, a.cancel_on_interrupt, a.conn.output).await
}

/// `key=value` arguments as one JSON object.
fn fields_input(fields: &[String]) -> anyhow::Result<Value> {
    let mut object = serde_json::Map::new();
    for field in fields {
        let (key, raw) = field
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| anyhow::anyhow!("{field:?}: expected KEY=VALUE"))?;
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
        object.insert(key.to_string(), value);
    }
    Ok(Value::Object(object))
}

fn read_input(a: &RunArgs) -> anyhow::Result<Option<Value>> {
    let text = match (&a.input, &a.input_file) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) if path.as_os_str() == "-" => std::io::read_to_string(std::io::stdin())?,
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
        (None, None) if a.fields.is_empty() => return Ok(None),
        (None, None) => return fields_input(&a.fields).map(Some),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("the input is not valid JSON: {e}"))
}
