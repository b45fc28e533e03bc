//! The isolated JavaScript runner: node scripts with runner `isolated` (alias `vm2`) run in
//! QuickJS inside a separate, locked-down worker process (forked by a launcher of its own, or
//! `scriptd __isolate`), never in the server. The server side here keeps a worker started
//! ahead of need,
//! hands it the job, turns its messages into log lines and an outcome, and kills it if it
//! stops answering.

mod protocol;
mod sandbox;
pub mod worker;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, Notify};

use self::protocol::{End, Job, Message};
use super::context::RunContext;
use super::launcher::{pipe_from_child, pipe_to_child, Launcher, Supervised};
use super::logs::RawLine;
use super::output::read_lines;
use crate::domain::{LogStream, RunOutcome, RunStatus};

/// Isolated workers started ahead of need, forked by a launcher of their own. A run takes
/// one that is already waiting for its job; the engine starts the next one once that run's
/// end is recorded, so that starting it (a fork, then its engine made ready) does not compete
/// with the run for the CPU. Each worker still runs one job only and is never reused.
///
/// A worker is forked without an exec, so it starts with a copy of its launcher's memory:
/// that launcher is this pool's alone, and has only ever been asked for workers, never had a
/// run's environment pass through it. A worker's job reaches it on its own stdin.
pub struct Spares {
    launcher: Launcher,
    state: Mutex<SpareState>,
    /// Told when a start in the background has finished, well or not.
    ready: Notify,
}

#[derive(Default)]
struct SpareState {
    spare: Option<Spare>,
    /// A start is on its way in the background.
    starting: bool,
}

/// A started worker: its pipes and the empty directory it runs in.
pub struct Spare {
    child: Supervised,
    stdin: pipe::Sender,
    stdout: pipe::Receiver,
    stderr: pipe::Receiver,
    workdir: TempDir,
}

impl Spares {
    pub fn new(launcher: Launcher) -> Arc<Self> {
        Arc::new(Self {
            launcher,
            state: Mutex::new(SpareState::default()),
            ready: Notify::new(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SpareState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A waiting worker, the one on its way if a start is under way, or else a new one.
    pub async fn take(&self) -> std::io::Result<Spare> {
        // A spare that died while waiting refuses its job; `run` then takes another.
        loop {
            let started = self.ready.notified();
            tokio::pin!(started);
            // Listening before looking, so a start that ends in between is not missed.
            started.as_mut().enable();
            {
                let mut state = self.state();
                if let Some(spare) = state.spare.take() {
                    return Ok(spare);
                }
                if !state.starting {
                    break;
                }
            }
            started.await;
        }
        self.start().await
    }

    /// Starts the next spare in the background, unless one is waiting or on its way.
    pub fn refill(self: &Arc<Self>) {
        {
            let mut state = self.state();
            if state.spare.is_some() || state.starting {
                return;
            }
            state.starting = true;
        }
        let spares = self.clone();
        tokio::spawn(async move {
            let started = spares.start().await;
            {
                let mut state = spares.state();
                state.starting = false;
                match started {
                    Ok(spare) => state.spare = Some(spare),
                    Err(e) => tracing::warn!(error = %e, "could not start a spare isolated worker"),
                }
            }
            spares.ready.notify_waiters();
        });
    }

    /// The layers a worker gets, from one started the way runs' workers are and given an empty
    /// job (never a spare: it runs no run).
    pub async fn probe_layers(&self) -> Option<IsolationLayers> {
        let job = Job {
            script: "undefined".into(),
            input: None,
            env: Vec::new(),
            timeout_ms: 1000,
            memory_limit_bytes: 16 * 1024 * 1024,
            probe: None,
        };
        let Spare {
            mut child,
            mut stdin,
            stdout,
            workdir,
            ..
        } = self.start().await.ok()?;
        stdin
            .write_all(&serde_json::to_vec(&job).ok()?)
            .await
            .ok()?;
        drop(stdin);
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await
            .ok()?
            .ok()??;
        let _ = child.wait().await;
        drop(workdir);
        match serde_json::from_str(&first).ok()? {
            Message::Layers {
                active,
                unavailable,
            } => Some(IsolationLayers {
                active,
                unavailable,
            }),
            _ => None,
        }
    }

    async fn start(&self) -> std::io::Result<Spare> {
        let workdir = tempfile::Builder::new()
            .prefix(&crate::engine::leftovers::isolate_dir_prefix())
            .tempdir()?;
        let (stdin, in_r) = pipe_to_child()?;
        let (stdout, out_w) = pipe_from_child()?;
        let (stderr, err_w) = pipe_from_child()?;
        let child = self
            .launcher
            .worker(workdir.path(), in_r, out_w, err_w)
            .await?;
        Ok(Spare {
            child,
            stdin,
            stdout,
            stderr,
            workdir,
        })
    }
}

/// Beyond the script's own timeout (enforced inside the engine), how long the worker may
/// stay silent before it is killed.
const KILL_AFTER: Duration = Duration::from_secs(2);

pub async fn run(
    ctx: &RunContext,
    out: mpsc::Sender<Vec<RawLine>>,
    memory_limit_bytes: usize,
) -> (RunOutcome, Option<serde_json::Value>) {
    let job = Job {
        script: ctx.script.script.clone(),
        input: ctx.input.clone(),
        env: ctx
            .script
            .env
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect(),
        timeout_ms: ctx.timeout.as_millis() as u64,
        memory_limit_bytes,
        probe: ctx
            .script
            .env
            .iter()
            .find(|e| cfg!(debug_assertions) && e.key == "__SCRIPTD_PROBE")
            .map(|e| e.value.clone()),
    };
    let body = serde_json::to_vec(&job).unwrap_or_default();
    // A spare that died while it waited (or since) refuses its job: a second worker gets it.
    let mut attempts = 0;
    let Spare {
        mut child,
        stdin,
        stdout,
        stderr,
        workdir,
    } = loop {
        attempts += 1;
        let mut spare = match ctx.isolates.take().await {
            Ok(spare) => spare,
            Err(e) => {
                ctx.metrics.start_failed();
                return (
                    RunOutcome::failed(format!("cannot start the isolated worker: {e}")),
                    None,
                );
            }
        };
        if spare.stdin.write_all(&body).await.is_ok() {
            break spare;
        }
        if attempts == 2 {
            ctx.metrics.start_failed();
            return (
                RunOutcome::failed("the isolated worker did not accept its job"),
                None,
            );
        }
    };
    // The worker reads its job to the end of its stdin.
    drop(stdin);
    // The worker's own stderr (a panic, an abort): it writes there only when something went
    // wrong, and never much; kept to be logged after the script's output.
    let mut diagnostics = Diagnostics::new(stderr);
    let mut messages = BufReader::new(stdout).lines();
    let deadline = tokio::time::sleep(ctx.timeout + KILL_AFTER);
    tokio::pin!(deadline);

    let mut end: Option<End> = None;
    let mut stop: Option<RunStatus> = None;
    loop {
        tokio::select! {
            line = messages.next_line() => match line {
                Ok(Some(text)) => match serde_json::from_str::<Message>(&text) {
                    Ok(Message::Line { s, l }) => {
                        let stream = if s == 2 { LogStream::Stderr } else { LogStream::Stdout };
                        if out.send(vec![RawLine { stream, text: l }]).await.is_err() {
                            break;
                        }
                    }
                    Ok(Message::Layers { active, unavailable }) => {
                        tracing::debug!(?active, ?unavailable, "isolated worker sandbox");
                    }
                    Ok(Message::End(e)) => {
                        // Its last message: the run has ended, whenever the process is gone.
                        end = Some(e);
                        break;
                    }
                    Err(_) => tracing::warn!("isolated worker sent an unreadable message"),
                },
                _ => break,
            },
            _ = diagnostics.readable() => diagnostics.take_available(),
            _ = &mut deadline => {
                stop = Some(RunStatus::TimedOut);
                break;
            }
            _ = ctx.cancel.cancelled() => {
                stop = Some(RunStatus::Canceled);
                break;
            }
        }
    }
    child.signal(Signal::SIGKILL);
    let status = if end.is_some() && stop.is_none() {
        // What it wrote to stderr before its end is in the pipe already. Its exit and reaping
        // need not hold up recording the run: they finish in the background.
        diagnostics.take_available();
        tokio::spawn(async move {
            let _ = child.wait().await;
            drop(workdir);
        });
        None
    } else {
        let status = child.wait().await.ok();
        let _ = tokio::time::timeout(Duration::from_secs(2), diagnostics.take_to_end()).await;
        drop(workdir);
        status
    };
    if !diagnostics.bytes.is_empty() {
        read_lines(
            &diagnostics.bytes[..],
            LogStream::Stderr,
            out.clone(),
            ctx.masker.clone(),
        )
        .await;
    }
    let (mut outcome, result) = outcome(end, stop, status, ctx, memory_limit_bytes);
    // What the script returned or threw is output too: masked and bounded like its log.
    outcome.error = outcome.error.map(|e| cap_text(ctx.masker.mask(e)));
    (
        outcome,
        result.map(|r| cap_result(mask_value(&ctx.masker, r))),
    )
}

/// What a worker writes to its stderr, kept up to `MAX_DIAGNOSTICS` bytes.
struct Diagnostics {
    pipe: pipe::Receiver,
    bytes: Vec<u8>,
    open: bool,
}

const MAX_DIAGNOSTICS: usize = 64 * 1024;

impl Diagnostics {
    fn new(pipe: pipe::Receiver) -> Self {
        Self {
            pipe,
            bytes: Vec::new(),
            open: true,
        }
    }

    /// Ready when the pipe has something to read; never, once it has ended.
    async fn readable(&self) {
        if !self.open || self.pipe.readable().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Takes what the pipe holds now, without waiting.
    fn take_available(&mut self) {
        let mut buf = [0u8; 4096];
        while self.open {
            match self.pipe.try_read(&mut buf) {
                Ok(0) => self.open = false,
                Ok(n) => {
                    let room = MAX_DIAGNOSTICS.saturating_sub(self.bytes.len());
                    self.bytes.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => self.open = false,
            }
        }
    }

    /// Takes everything up to the pipe's end.
    async fn take_to_end(&mut self) {
        while self.open {
            if self.pipe.readable().await.is_err() {
                self.open = false;
            }
            self.take_available();
        }
    }
}

/// `result` and `error` are kept whole up to this size; past it, cut with a marker.
const MAX_END_BYTES: usize = 64 * 1024;

fn cap_text(mut text: String) -> String {
    if text.len() > MAX_END_BYTES {
        let mut cut = MAX_END_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(" … [scriptd: cut at 64 KiB]");
    }
    text
}

fn cap_result(value: serde_json::Value) -> serde_json::Value {
    let text = value.to_string();
    if text.len() <= MAX_END_BYTES {
        return value;
    }
    serde_json::Value::String(cap_text(text))
}

fn mask_value(masker: &super::Masker, value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(masker.mask(s)),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| mask_value(masker, v)).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (masker.mask(k), mask_value(masker, v)))
                .collect(),
        ),
        other => other,
    }
}

fn outcome(
    end: Option<End>,
    stop: Option<RunStatus>,
    status: Option<std::process::ExitStatus>,
    ctx: &RunContext,
    memory_limit_bytes: usize,
) -> (RunOutcome, Option<serde_json::Value>) {
    let ended = |status, exit_code, error: Option<String>| RunOutcome {
        status,
        exit_code,
        signal: None,
        error,
    };
    match (stop, end) {
        (Some(RunStatus::Canceled), _) => (ended(RunStatus::Canceled, None, None), None),
        (Some(_), _) | (None, Some(End::TimedOut)) => (
            ended(
                RunStatus::TimedOut,
                None,
                Some(format!("timed out after {} ms", ctx.timeout.as_millis())),
            ),
            None,
        ),
        (None, Some(End::Ok { result })) => (ended(RunStatus::Succeeded, Some(0), None), result),
        (None, Some(End::Threw { message })) => {
            (ended(RunStatus::Failed, Some(1), Some(message)), None)
        }
        (None, Some(End::OutOfMemory)) => (
            ended(
                RunStatus::Failed,
                Some(1),
                Some(format!(
                    "memory limit of {} MiB exceeded",
                    memory_limit_bytes / (1024 * 1024)
                )),
            ),
            None,
        ),
        (None, Some(End::StackOverflow)) => (
            ended(
                RunStatus::Failed,
                Some(1),
                Some("stack overflow: recursion too deep".into()),
            ),
            None,
        ),
        (None, None) => {
            use std::os::unix::process::ExitStatusExt;
            let signal = status.and_then(|s| s.signal());
            let mut o = RunOutcome::failed(match signal {
                Some(sig) => {
                    format!("the isolated worker was killed by signal {sig} (a resource limit?)")
                }
                None => "the isolated worker ended without a result".to_string(),
            });
            o.signal = signal;
            (o, None)
        }
    }
}

/// The sandbox layers an isolated worker can turn on here, found by starting one: logged at
/// startup and shown by `/healthz`.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct IsolationLayers {
    pub active: Vec<String>,
    pub unavailable: Vec<String>,
}
