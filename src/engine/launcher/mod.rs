//! Starting host runs through the launcher: a small helper process (`scriptd __launch`,
//! see `forkserver`) exec'd once and kept, which forks each run's supervisor. The server
//! hands it the run's command and its output pipes over a Unix socket and hears back the
//! supervisor's pid and, later, its wait status. The supervisor itself reports the script's
//! end on a pipe of its own as soon as the tree is gone, which is what a run waits for.
//!
//! Should the launcher die, the runs it started end (their supervisors get SIGTERM from the
//! kernel), their waits report it, and the next run starts a new launcher.

// The one place that needs `unsafe`: `fork()` and descriptors received from the kernel.
#[allow(unsafe_code)]
mod forkserver;
mod wire;

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{IoSlice, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

pub use forkserver::main as launcher_main;
pub(super) use wire::raw_status;
use wire::{Kind, Reply, Request, Spawn};

/// What to run under a supervisor.
pub struct LaunchCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The whole environment of the script.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// How long the supervisor waits between SIGTERM and SIGKILL when ending the tree.
    pub grace: Duration,
}

/// Starts supervisors, or isolated workers, through one launcher process, started on first
/// use.
pub struct Launcher {
    exe: PathBuf,
    role: Role,
    link: Mutex<Option<Arc<Link>>>,
}

/// What a launcher starts. A launcher that forks isolated workers starts nothing else: a worker
/// is forked without an exec, so it holds a copy of its launcher's memory, and the scripts'
/// launcher has had every run's environment, secrets included, pass through it.
#[derive(Clone, Copy, PartialEq)]
pub enum Role {
    Scripts,
    IsolatedWorkers,
}

impl Role {
    /// Named on the launcher's command line (and so on its workers'), for `ps`.
    fn name(self) -> &'static str {
        match self {
            Role::Scripts => "scripts",
            Role::IsolatedWorkers => "isolated-workers",
        }
    }
}

/// A process the launcher started: a run's supervisor, or an isolated worker.
pub struct Supervised {
    link: Arc<Link>,
    id: u64,
    pub pid: Pid,
    /// A supervisor's report of its script's end (see `supervise`).
    report: Option<tokio::net::unix::pipe::Receiver>,
    exited: oneshot::Receiver<i32>,
    status: Option<ExitStatus>,
    kill_on_drop: bool,
}

/// The connection to one launcher process.
struct Link {
    socket: Mutex<UnixStream>,
    waiters: Mutex<HashMap<u64, Waiter>>,
    next_id: AtomicU64,
    /// False once the launcher has gone away.
    alive: AtomicBool,
}

struct Waiter {
    started: Option<oneshot::Sender<Result<i32, String>>>,
    exited: oneshot::Sender<i32>,
}

impl Launcher {
    pub fn new(exe: PathBuf, role: Role) -> Self {
        Self {
            exe,
            role,
            link: Mutex::new(None),
        }
    }

    /// Starts `cmd` under a new supervisor with `stdout` and `stderr` as its output.
    pub async fn spawn(
        &self,
        cmd: &LaunchCommand,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) -> std::io::Result<Supervised> {
        self.require(Role::Scripts)?;
        let (report, theirs) = pipe_from_child()?;
        let mut supervisor = self
            .start(cmd, Kind::Supervised, vec![stdout, stderr, theirs])
            .await?;
        supervisor.report = Some(report);
        Ok(supervisor)
    }

    /// Forks an isolated worker (`isolate::worker`) in `cwd`, on the given stdin, stdout and
    /// stderr, with no supervisor (it cannot fork) and no exec: a fork of the small launcher
    /// costs a fraction of starting this binary again. It is killed if the handle is dropped
    /// before it has ended.
    pub async fn worker(
        &self,
        cwd: &Path,
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) -> std::io::Result<Supervised> {
        self.require(Role::IsolatedWorkers)?;
        let cmd = LaunchCommand {
            program: PathBuf::new(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: cwd.to_path_buf(),
            grace: Duration::ZERO,
        };
        let mut child = self
            .start(&cmd, Kind::Worker, vec![stdin, stdout, stderr])
            .await?;
        child.kill_on_drop = true;
        Ok(child)
    }

    fn require(&self, role: Role) -> std::io::Result<()> {
        if self.role == role {
            return Ok(());
        }
        Err(std::io::Error::other(format!(
            "the launcher of {} cannot start this",
            self.role.name()
        )))
    }

    async fn start(
        &self,
        cmd: &LaunchCommand,
        kind: Kind,
        fds: Vec<OwnedFd>,
    ) -> std::io::Result<Supervised> {
        let mut request = Spawn {
            id: 0,
            kind,
            grace_ms: cmd.grace.as_millis() as u64,
            program: cmd.program.as_os_str().as_bytes().to_vec(),
            cwd: cmd.cwd.as_os_str().as_bytes().to_vec(),
            args: cmd.args.iter().map(|a| a.as_bytes().to_vec()).collect(),
            env: cmd.env.iter().map(|(k, v)| env_entry(k, v)).collect(),
        };
        // A launcher that died since the last run is replaced once.
        let mut attempts = 0;
        let (link, started_rx, exited_rx) = loop {
            let link = self.link()?;
            request.id = link.next_id.fetch_add(1, Ordering::Relaxed);
            let (started_tx, started_rx) = oneshot::channel();
            let (exited_tx, exited_rx) = oneshot::channel();
            let registered = link.register(
                request.id,
                Waiter {
                    started: Some(started_tx),
                    exited: exited_tx,
                },
            );
            let borrowed: Vec<&OwnedFd> = fds.iter().collect();
            let sent = if registered {
                link.send(&request.encode(), &borrowed)
            } else {
                Err(std::io::Error::other("the launcher stopped"))
            };
            match sent {
                Ok(()) => break (link, started_rx, exited_rx),
                Err(e) => {
                    lock(&link.waiters).remove(&request.id);
                    self.forget(&link);
                    attempts += 1;
                    if attempts == 2 {
                        return Err(e);
                    }
                }
            }
        };
        // The launcher holds its own copies now; ours must close so that the pipes end when
        // the run's tree is gone.
        drop(fds);
        match started_rx.await {
            Ok(Ok(pid)) => Ok(Supervised {
                link,
                id: request.id,
                pid: Pid::from_raw(pid),
                report: None,
                exited: exited_rx,
                status: None,
                kill_on_drop: false,
            }),
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            Err(_) => Err(std::io::Error::other("the launcher stopped")),
        }
    }

    /// The live link, or a new launcher if there is none.
    fn link(&self) -> std::io::Result<Arc<Link>> {
        let mut slot = lock(&self.link);
        if let Some(link) = slot.as_ref().filter(|l| l.alive.load(Ordering::Acquire)) {
            return Ok(link.clone());
        }
        let link = Link::start(&self.exe, self.role)?;
        *slot = Some(link.clone());
        Ok(link)
    }

    /// Drops a link that failed, so the next run starts a new launcher.
    fn forget(&self, link: &Arc<Link>) {
        let mut slot = lock(&self.link);
        if slot.as_ref().is_some_and(|l| Arc::ptr_eq(l, link)) {
            *slot = None;
        }
        // Its launcher and reader thread end with the socket.
        let _ = lock(&link.socket).shutdown(std::net::Shutdown::Both);
    }
}

impl Drop for Launcher {
    /// Closing the socket ends the launcher (and its reader thread) with the engine, also
    /// when scriptd is embedded in a process that goes on.
    fn drop(&mut self) {
        if let Some(link) = lock(&self.link).take() {
            let _ = lock(&link.socket).shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Supervised {
    /// Waits for the supervisor to end: its report of the script's status, or else its own
    /// (the signal that killed it). An error if the launcher died first: the supervisor then
    /// ends the tree on its own, and the run is recorded as lost rather than as killed.
    /// Cancel-safe.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let stopped = |_| std::io::Error::other("the launcher stopped");
        let raw = loop {
            let Some(report) = self.report.as_mut() else {
                break (&mut self.exited).await.map_err(stopped)?;
            };
            let mut raw = [0u8; 4];
            tokio::select! {
                biased;
                // Written in one piece, so read in one; anything else means the supervisor
                // ended without a report (killed).
                read = report.read(&mut raw) => match read {
                    Ok(4) => break i32::from_le_bytes(raw),
                    _ => self.report = None,
                },
                exited = &mut self.exited => break exited.map_err(stopped)?,
            }
        };
        let status = ExitStatus::from_raw(raw);
        self.status = Some(status);
        Ok(status)
    }

    /// Signals the supervisor, unless it has already ended.
    pub fn signal(&self, signal: Signal) {
        let request = Request::Signal {
            id: self.id,
            signal: signal as i32,
        };
        let _ = self.link.send(&request.encode(), &[]);
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if self.kill_on_drop && self.status.is_none() {
            self.signal(Signal::SIGKILL);
        }
    }
}

impl Link {
    fn start(exe: &Path, role: Role) -> std::io::Result<Arc<Self>> {
        let (ours, theirs) = UnixStream::pair()?;
        let reader = ours.try_clone()?;
        let link = Arc::new(Self {
            socket: Mutex::new(ours),
            waiters: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            alive: AtomicBool::new(true),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let exe = exe.to_path_buf();
        let replies = link.clone();
        std::thread::Builder::new()
            .name("scriptd-launcher".into())
            .spawn(move || {
                // This thread starts the launcher and lives exactly as long as the link: the
                // kernel sends PR_SET_PDEATHSIG when the thread that forked a process ends.
                let child = Command::new(&exe)
                    .args(["__launch", role.name()])
                    .env_clear()
                    .stdin(Stdio::from(OwnedFd::from(theirs)))
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .process_group(0)
                    .spawn();
                let mut child = match child {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                replies.read_replies(reader);
                {
                    // Under the lock `register` takes, so no waiter joins a dead link.
                    let mut waiters = lock(&replies.waiters);
                    replies.alive.store(false, Ordering::Release);
                    // Every waiter left learns that its process's end will not be reported.
                    waiters.clear();
                }
                let _ = child.kill();
                let _ = child.wait();
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(link),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::other("the launcher thread ended")),
        }
    }

    /// Adds a waiter, unless the link has died (then its waiters are gone for good).
    fn register(&self, id: u64, waiter: Waiter) -> bool {
        let mut waiters = lock(&self.waiters);
        if !self.alive.load(Ordering::Acquire) {
            return false;
        }
        waiters.insert(id, waiter);
        true
    }

    fn send(&self, frame: &[u8], fds: &[&OwnedFd]) -> std::io::Result<()> {
        let raw: Vec<i32> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let socket = lock(&self.socket);
        // The descriptors ride with the first bytes of the frame. MSG_NOSIGNAL: a launcher
        // gone must be an error here, not a SIGPIPE to a host that did not ignore it.
        let cmsgs = [ControlMessage::ScmRights(&raw)];
        let mut sent = 0;
        while sent < frame.len() {
            let attach: &[ControlMessage] = if sent == 0 && !raw.is_empty() {
                &cmsgs
            } else {
                &[]
            };
            match sendmsg::<()>(
                socket.as_raw_fd(),
                &[IoSlice::new(&frame[sent..])],
                attach,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(n) => sent += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Dispatches the launcher's replies until it closes the socket.
    fn read_replies(&self, mut socket: UnixStream) {
        let mut inbox = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match socket.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => inbox.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
            loop {
                let body = match wire::take_frame(&mut inbox) {
                    Ok(Some(body)) => body,
                    Ok(None) => break,
                    Err(()) => return,
                };
                match Reply::decode(&body) {
                    Some(reply) => self.dispatch(reply),
                    None => {
                        tracing::error!("the launcher sent an unreadable reply");
                        return;
                    }
                }
            }
        }
    }

    fn dispatch(&self, reply: Reply) {
        let mut waiters = lock(&self.waiters);
        match reply {
            Reply::Started { id, pid } => {
                if let Some(started) = waiters.get_mut(&id).and_then(|w| w.started.take()) {
                    let _ = started.send(Ok(pid));
                }
            }
            Reply::Failed { id, error } => {
                if let Some(started) = waiters.remove(&id).and_then(|w| w.started) {
                    let _ = started.send(Err(error));
                }
            }
            Reply::Exited { id, status } => {
                if let Some(waiter) = waiters.remove(&id) {
                    let _ = waiter.exited.send(status);
                }
            }
        }
    }
}

/// A pipe a child writes to: our end, ready for tokio, and the end the launcher hands it.
pub fn pipe_from_child() -> std::io::Result<(tokio::net::unix::pipe::Receiver, OwnedFd)> {
    let (ours, theirs) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((
        tokio::net::unix::pipe::Receiver::from_owned_fd(ours)?,
        theirs,
    ))
}

/// A pipe a child reads from: our end, ready for tokio, and the end the launcher hands it.
pub fn pipe_to_child() -> std::io::Result<(tokio::net::unix::pipe::Sender, OwnedFd)> {
    let (theirs, ours) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((tokio::net::unix::pipe::Sender::from_owned_fd(ours)?, theirs))
}

/// A poisoned lock only means another thread panicked while holding it; the maps it guards
/// stay consistent entry by entry.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `KEY=VALUE` as `execve` takes it. Joined by hand: through `format!` the few dozen variables
/// of every run cost 6% of the server's instructions for a run of `true`.
fn env_entry(key: &str, value: &str) -> Vec<u8> {
    let mut entry = Vec::with_capacity(key.len() + 1 + value.len());
    entry.extend_from_slice(key.as_bytes());
    entry.push(b'=');
    entry.extend_from_slice(value.as_bytes());
    entry
}
