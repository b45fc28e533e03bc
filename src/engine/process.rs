//! The host runners (bash and node): start the script under a supervisor (through the
//! launcher), read its output, and end in one `select!` that says why it stopped.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc;

use super::context::RunContext;
use super::launcher::{pipe_from_child, LaunchCommand};
use super::logs::RawLine;
use super::output::read_lines;
use super::pty::{self, Pty};
use crate::domain::{LogStream, RunOutcome, RunStatus, ScriptType};

/// Scripts up to this size are passed as `bash -lc <script>`; larger ones go through a file,
/// because Linux caps a single argument at 128 KiB.
const INLINE_SCRIPT_MAX: usize = 64 * 1024;
/// Inputs up to this size are passed in SCRIPTD_INPUT; larger ones through a file.
const INLINE_INPUT_MAX: usize = 64 * 1024;

/// Why the supervising `select!` ended.
enum Stop {
    Exited(std::process::ExitStatus),
    /// The launcher died: the kernel has told the supervisor to end the tree.
    Lost(std::io::Error),
    TimedOut,
    Canceled,
}

/// Where a run's output comes from: two pipes, or one terminal for both streams.
enum Output {
    Pipes(
        (tokio::net::unix::pipe::Receiver, std::os::fd::OwnedFd),
        (tokio::net::unix::pipe::Receiver, std::os::fd::OwnedFd),
    ),
    Terminal(Pty),
}

pub async fn run(ctx: &RunContext, out: mpsc::Sender<Vec<RawLine>>) -> RunOutcome {
    let cwd = match &ctx.script.default_working_directory {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::current_dir() {
            Ok(d) => d,
            Err(e) => {
                return RunOutcome::failed(format!(
                    "cannot read the server's working directory: {e}"
                ))
            }
        },
    };
    if !cwd.is_dir() {
        return RunOutcome::failed(format!(
            "working directory {} does not exist or is not a directory",
            cwd.display()
        ));
    }
    let interpreter = match ctx.script.script_type {
        ScriptType::Node => "node",
        _ => "bash",
    };
    let Some(program) = find_in_path(interpreter, ctx.env_path()) else {
        return RunOutcome::failed(format!("{interpreter} was not found in PATH"));
    };

    // The file (0600 in a private name) lives until this function returns, then is removed.
    let script_file = if ctx.script.script_type == ScriptType::Node
        || ctx.script.script.len() > INLINE_SCRIPT_MAX
    {
        let suffix = if interpreter == "node" { ".js" } else { ".sh" };
        match write_private_file(&ctx.script.script, suffix) {
            Ok(f) => Some(f),
            Err(e) => return RunOutcome::failed(format!("cannot write the script file: {e}")),
        }
    } else {
        None
    };
    let mut args: Vec<OsString> = Vec::new();
    match (&script_file, ctx.script.script_type) {
        (Some(f), ScriptType::Node) => args.push(f.path().into()),
        (Some(f), _) => {
            args.push("-l".into());
            args.push(f.path().into());
        }
        (None, _) => {
            args.push("-lc".into());
            args.push(ctx.script.script.clone().into());
        }
    }

    // A large input would not fit in the environment (Linux caps one string at 128 KiB): it
    // goes in a private file named by SCRIPTD_INPUT_FILE instead.
    let large_input = ctx
        .env
        .iter()
        .find(|(k, v)| k == "SCRIPTD_INPUT" && v.len() > INLINE_INPUT_MAX);
    let input_file = match large_input {
        Some((_, input)) => match write_private_file(input, ".json") {
            Ok(f) => Some(f),
            Err(e) => return RunOutcome::failed(format!("cannot write the input file: {e}")),
        },
        None => None,
    };
    // Under a terminal, TERM names one unless the script sets its own: the server's may say
    // anything, or nothing when it runs as a service.
    let term = (ctx.script.tty && !ctx.script.env.iter().any(|e| e.key == "TERM"))
        .then(|| ("TERM".to_string(), pty::TERM.to_string()));
    let set_term = term.is_some();
    let env = ctx
        .env
        .iter()
        .filter(|(k, _)| input_file.is_none() || k != "SCRIPTD_INPUT")
        .filter(|(k, _)| !set_term || k != "TERM")
        .cloned()
        .chain(term)
        .chain(input_file.as_ref().map(|f| {
            (
                "SCRIPTD_INPUT_FILE".to_string(),
                f.path().to_string_lossy().into_owned(),
            )
        }))
        .collect();
    let cmd = LaunchCommand {
        program,
        args,
        env,
        cwd,
        grace: ctx.kill_grace,
    };
    let output = if ctx.script.tty {
        pty::open().map(Output::Terminal)
    } else {
        pipe_from_child()
            .and_then(|out| Ok((out, pipe_from_child()?)))
            .map(|(out, err)| Output::Pipes(out, err))
    };
    let output = match output {
        Ok(o) => o,
        Err(e) => return RunOutcome::failed(format!("cannot create the output pipes: {e}")),
    };
    let (readers, spawned) = match output {
        Output::Pipes((out_r, out_w), (err_r, err_w)) => {
            let spawned = ctx.launcher.spawn(&cmd, out_w, err_w).await;
            let readers = vec![
                tokio::spawn(read_lines(
                    out_r,
                    LogStream::Stdout,
                    out.clone(),
                    ctx.masker.clone(),
                )),
                tokio::spawn(read_lines(
                    err_r,
                    LogStream::Stderr,
                    out.clone(),
                    ctx.masker.clone(),
                )),
            ];
            (readers, spawned)
        }
        Output::Terminal(terminal) => {
            let spawned = match terminal.slave.try_clone() {
                Ok(err_w) => ctx.launcher.spawn(&cmd, terminal.slave, err_w).await,
                Err(e) => Err(e),
            };
            let reader = read_lines(
                terminal.reader,
                LogStream::Stdout,
                out.clone(),
                ctx.masker.clone(),
            );
            (vec![tokio::spawn(reader)], spawned)
        }
    };
    drop(out);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            for r in &readers {
                r.abort();
            }
            ctx.metrics.start_failed();
            return RunOutcome::failed(format!("cannot start {interpreter}: {e}"));
        }
    };
    let pid = child.pid;

    let stop = tokio::select! {
        status = child.wait() => match status {
            Ok(s) => Stop::Exited(s),
            Err(e) => Stop::Lost(e),
        },
        _ = tokio::time::sleep(ctx.timeout) => Stop::TimedOut,
        _ = ctx.cancel.cancelled() => Stop::Canceled,
    };
    let status = match &stop {
        Stop::Exited(s) => Some(*s),
        Stop::Lost(_) => None,
        Stop::TimedOut | Stop::Canceled => {
            child.signal(Signal::SIGTERM);
            // The supervisor escalates to SIGKILL after the grace period; if it does not
            // answer well past that, kill it too.
            match tokio::time::timeout(ctx.kill_grace + Duration::from_secs(5), child.wait()).await
            {
                Ok(Ok(s)) => Some(s),
                _ => {
                    child.signal(Signal::SIGKILL);
                    child.wait().await.ok()
                }
            }
        }
    };
    // Every writer is gone once the supervisor has reaped the tree, so the readers reach
    // EOF. If they do not, and the supervisor itself was killed (a script's `kill -9 $PPID`)
    // or its end could not be heard (the launcher died, so the supervisor is ending the tree
    // on its own, within the grace period), what is left of the tree still holds the pipes
    // and still belongs to the supervisor's process group: end the group. (Its members keep
    // its id from being reused meanwhile.)
    let mut readers = readers;
    let settle = match status {
        Some(s) => {
            use std::os::unix::process::ExitStatusExt;
            s.signal().map(|_| Duration::from_millis(300))
        }
        None => Some(ctx.kill_grace + Duration::from_secs(1)),
    };
    if let Some(settle) = settle {
        if !readers_end(&mut readers, settle).await {
            tracing::warn!(run_id = %ctx.run_id, "the supervisor is gone; ending what is left of its process group");
            let _ = kill(Pid::from_raw(-pid.as_raw()), Signal::SIGKILL);
        }
    }
    // The bound guards against a pipe handed to a process outside the tree.
    if !readers_end(&mut readers, Duration::from_secs(2)).await {
        for r in &readers {
            r.abort();
        }
    }
    drop(script_file);
    drop(input_file);

    match stop {
        Stop::TimedOut => RunOutcome {
            status: RunStatus::TimedOut,
            exit_code: None,
            signal: None,
            error: Some(format!("timed out after {} ms", ctx.timeout.as_millis())),
        },
        Stop::Canceled => RunOutcome {
            status: RunStatus::Canceled,
            exit_code: None,
            signal: None,
            error: None,
        },
        Stop::Exited(status) => outcome_of(status),
        Stop::Lost(e) => RunOutcome::failed(format!("lost track of the process: {e}")),
    }
}

/// Waits up to `bound` for the output readers to reach EOF; true if they all did.
async fn readers_end(readers: &mut [tokio::task::JoinHandle<()>], bound: Duration) -> bool {
    // A handle that already finished is not polled again.
    let pending = readers.iter_mut().filter(|r| !r.is_finished());
    let all = futures_util::future::join_all(pending);
    tokio::time::timeout(bound, all).await.is_ok()
}

fn outcome_of(status: std::process::ExitStatus) -> RunOutcome {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => RunOutcome {
            status: RunStatus::Succeeded,
            exit_code: Some(0),
            signal: None,
            error: None,
        },
        (Some(code), _) => RunOutcome {
            status: RunStatus::Failed,
            exit_code: Some(code),
            signal: None,
            error: None,
        },
        (None, Some(sig)) => RunOutcome {
            status: RunStatus::Failed,
            exit_code: None,
            signal: Some(sig),
            error: Some(format!("killed by signal {sig}")),
        },
        (None, None) => RunOutcome::failed("ended without an exit status"),
    }
}

fn write_private_file(content: &str, suffix: &str) -> std::io::Result<tempfile::NamedTempFile> {
    use std::io::Write;
    // tempfile creates the file with mode 0600 and an unpredictable name.
    let mut file = tempfile::Builder::new()
        .prefix(&super::leftovers::run_file_prefix())
        .suffix(suffix)
        .tempfile()?;
    file.write_all(content.as_bytes())?;
    file.flush()?;
    Ok(file)
}

/// Looks `name` up in a PATH value the way `execvp` would.
fn find_in_path(name: &str, path: Option<&str>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path.unwrap_or("/usr/local/bin:/usr/bin:/bin"))
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
