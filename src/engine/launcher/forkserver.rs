//! The launcher process (`scriptd __launch`): exec'd once per server, single-threaded, it
//! forks one supervisor per run on request. Forking this small process is much cheaper than
//! the server forking itself (its page tables, its threads) and then exec'ing the whole
//! server binary again for every run.
//!
//! It reads requests on its stdin (a Unix socket to the server) and waits for its children
//! through a signalfd, both in one `poll`. It dies with the server (`PR_SET_PDEATHSIG`); its
//! supervisors then get SIGTERM from the kernel and end their trees.

use std::collections::{HashMap, VecDeque};
use std::io::{IoSlice, IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessageOwned, MsgFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use super::wire::{self, Kind, Reply, Request, Spawn};

/// Runs the launcher; never returns.
pub fn main() -> ! {
    let parent = nix::unistd::getppid();
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if nix::unistd::getppid() != parent {
        std::process::exit(0);
    }
    // Every run's environment, secrets included, passes through here: like the server, this
    // process may not be read by ptrace or core-dumped. (A script's exec resets it for the
    // script.)
    let _ = nix::sys::prctl::set_dumpable(false);
    // Orphans of a supervisor that was killed come here rather than to init (see `sweep`).
    let _ = nix::sys::prctl::set_child_subreaper(true);
    // SIGCHLD is read from a signalfd, so it must not be delivered as a signal.
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    if chld.thread_block().is_err() {
        fail("cannot block SIGCHLD");
    }
    let Ok(children) = SignalFd::with_flags(&chld, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
    else {
        fail("cannot open a signalfd");
    };
    // SAFETY: fd 0 is the socket the server handed over; nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(0) };
    let mut launcher = Launcher::default();
    let mut inbox = Vec::new();
    let mut received: VecDeque<OwnedFd> = VecDeque::new();
    loop {
        let (readable, reaped) = {
            let mut fds = [
                PollFd::new(socket.as_fd(), PollFlags::POLLIN),
                PollFd::new(children.as_fd(), PollFlags::POLLIN),
            ];
            // While orphans of a killed supervisor may still be arriving, look for them often.
            let timeout = match launcher.sweep_until {
                Some(until) if until > Instant::now() => PollTimeout::from(SWEEP_EVERY_MS),
                _ => PollTimeout::NONE,
            };
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => fail("poll failed"),
            }
            let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), ready(&fds[1]))
        };
        if reaped {
            while let Ok(Some(_)) = children.read_signal() {}
            launcher.reap(&socket);
        }
        if launcher.sweep_until.is_some() {
            launcher.sweep();
        }
        if readable {
            if !receive(&socket, &mut inbox, &mut received) {
                // The server is gone: so are we. Our supervisors learn it from the kernel.
                std::process::exit(0);
            }
            loop {
                match wire::take_frame(&mut inbox) {
                    Ok(Some(body)) => match Request::decode(&body) {
                        Some(request) => launcher.handle(request, &socket, &mut received),
                        None => fail("unreadable request"),
                    },
                    Ok(None) => break,
                    Err(()) => fail("unreadable request stream"),
                }
            }
        }
    }
}

/// How long after a supervisor was killed its orphans are looked for, and how often.
const SWEEP_FOR: Duration = Duration::from_secs(5);
const SWEEP_EVERY_MS: u16 = 100;

#[derive(Default)]
struct Launcher {
    by_pid: HashMap<i32, u64>,
    by_id: HashMap<u64, i32>,
    /// Until when to look for processes orphaned by a killed supervisor.
    sweep_until: Option<Instant>,
}

impl Launcher {
    fn handle(&mut self, request: Request, socket: &OwnedFd, received: &mut VecDeque<OwnedFd>) {
        match request {
            Request::Spawn(spawn) => {
                // Descriptors arrive with the first bytes of their request, so by the time a
                // request is whole, its own three are at the front of the queue.
                let fds: Vec<OwnedFd> = (0..3).filter_map(|_| received.pop_front()).collect();
                if fds.len() != 3 {
                    fail("a spawn request came without its descriptors");
                }
                let id = spawn.id;
                let launcher = nix::unistd::getpid();
                // SAFETY: this process is single-threaded.
                match unsafe { fork() } {
                    Ok(ForkResult::Child) => start(spawn, fds, launcher),
                    Ok(ForkResult::Parent { child }) => {
                        self.by_pid.insert(child.as_raw(), id);
                        self.by_id.insert(id, child.as_raw());
                        reply(
                            socket,
                            &Reply::Started {
                                id,
                                pid: child.as_raw(),
                            },
                        );
                    }
                    Err(e) => reply(
                        socket,
                        &Reply::Failed {
                            id,
                            error: format!("cannot fork: {e}"),
                        },
                    ),
                }
            }
            Request::Signal { id, signal } => {
                // Only a child not yet reaped: its pid cannot have been reused.
                if let (Some(pid), Ok(sig)) = (self.by_id.get(&id), Signal::try_from(signal)) {
                    let _ = kill(Pid::from_raw(*pid), sig);
                }
            }
        }
    }

    fn reap(&mut self, socket: &OwnedFd) {
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(status) => status,
                Err(Errno::EINTR) => continue,
                Err(_) => return,
            };
            let (Some(pid), Some(raw)) = (status.pid(), wire::raw_status(&status)) else {
                continue;
            };
            if let Some(id) = self.by_pid.remove(&pid.as_raw()) {
                self.by_id.remove(&id);
                reply(socket, &Reply::Exited { id, status: raw });
                // A supervisor killed by a signal (a script's `kill -9 $PPID`) could not end
                // its tree: what is left of it is reparented here, the nearest subreaper, at
                // its death. (One that passed on its script's death signal left nothing.) If
                // anything came, more may follow as its intermediate parents exit.
                if raw & 0x7f != 0 && self.sweep() > 0 {
                    self.sweep_until = Some(Instant::now() + SWEEP_FOR);
                }
            }
        }
    }

    /// Kills every child of this process that is neither a supervisor nor a worker it
    /// started, with all its descendants: they can only be what a killed supervisor left.
    /// Returns how many orphans it found.
    fn sweep(&mut self) -> usize {
        if self
            .sweep_until
            .is_some_and(|until| until <= Instant::now())
        {
            self.sweep_until = None;
        }
        let me = nix::unistd::getpid().as_raw();
        let orphans: Vec<i32> = crate::engine::supervise::children(me)
            .into_iter()
            .filter(|pid| !self.by_pid.contains_key(pid))
            .collect();
        for &orphan in &orphans {
            for pid in crate::engine::supervise::descendants(orphan)
                .into_iter()
                .chain([orphan])
            {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        orphans.len()
    }
}

/// Reads what the server sent: bytes into `inbox`, descriptors into `received`. False once
/// the server has closed its end.
fn receive(socket: &OwnedFd, inbox: &mut Vec<u8>, received: &mut VecDeque<OwnedFd>) -> bool {
    let mut buf = [0u8; 64 * 1024];
    let mut space = nix::cmsg_space!([RawFd; 8]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = match recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    ) {
        Ok(m) => m,
        Err(Errno::EINTR | Errno::EAGAIN) => return true,
        Err(_) => return false,
    };
    let n = msg.bytes;
    // Descriptors cut off (this process is out of them) would leave the queue short, and a
    // later run would take another's pipes: better to stop; the server starts a new launcher.
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        fail("descriptors were cut off (out of file descriptors?)");
    }
    let Ok(cmsgs) = msg.cmsgs() else {
        fail("unreadable control message");
    };
    for cmsg in cmsgs {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            // SAFETY: the kernel just installed these descriptors for us.
            received.extend(
                fds.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if n == 0 {
        return false;
    }
    inbox.extend_from_slice(&buf[..n]);
    true
}

fn reply(socket: &OwnedFd, reply: &Reply) {
    let frame = reply.encode();
    let mut sent = 0;
    while sent < frame.len() {
        match sendmsg::<()>(
            socket.as_raw_fd(),
            &[IoSlice::new(&frame[sent..])],
            &[],
            MsgFlags::empty(),
            None,
        ) {
            Ok(n) => sent += n,
            Err(Errno::EINTR) => {}
            Err(_) => std::process::exit(0),
        }
    }
}

/// In the forked child: with the given descriptors as its stdio (a run's supervisor gets
/// /dev/null as stdin, and its report pipe as descriptor 3) and nothing else of the
/// launcher's, becomes the run's supervisor or an isolated worker, or execs the program.
fn start(spawn: Spawn, fds: Vec<OwnedFd>, launcher: Pid) -> ! {
    // Dies with the launcher; checked against the pid read before the fork, since a launcher
    // that died in between has already handed this process to another parent. (The signal
    // survives exec, so an isolated worker keeps it; a supervisor asks for SIGTERM instead.)
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if nix::unistd::getppid() != launcher {
        std::process::exit(125);
    }
    // Its own process group: a signal to the server's group (a `kill -9 -PGID`, a terminal's
    // Ctrl-C) must not reach it before it has ended the tree.
    let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
    let mut stdio = fds;
    if spawn.kind == Kind::Supervised {
        match std::fs::File::open("/dev/null") {
            Ok(null) => stdio.insert(0, OwnedFd::from(null)),
            Err(_) => std::process::exit(125),
        }
    }
    let moved = stdio
        .iter()
        .zip(0..)
        .all(|(fd, target)| dup_onto(fd.as_fd(), target));
    if !moved {
        std::process::exit(125);
    }
    let keep = stdio.len() as RawFd;
    drop(stdio);
    close_from(keep);
    // The launcher's blocked SIGCHLD would be inherited by the script.
    let _ = SigSet::empty().thread_set_mask();
    use std::os::unix::ffi::OsStringExt;
    let os = |b: Vec<u8>| std::ffi::OsString::from_vec(b);
    if spawn.kind == Kind::Worker {
        // No exec: the worker is this process, which holds nothing of any run's (see
        // `isolate::Spares`). Its environment is the launcher's, which the server cleared.
        if std::env::set_current_dir(os(spawn.cwd)).is_err() {
            std::process::exit(125);
        }
        // A panic ends the worker as it ends one exec'd, with status 101, rather than unwind
        // into this launcher's frames, whose drops would close descriptors its sandbox
        // forbids closing.
        let _ = std::panic::catch_unwind(|| {
            crate::engine::isolate::worker::main();
        });
        std::process::exit(101)
    }
    let env: Vec<_> = spawn
        .env
        .into_iter()
        .map(|entry| match entry.iter().position(|&b| b == b'=') {
            Some(eq) => (os(entry[..eq].to_vec()), os(entry[eq + 1..].to_vec())),
            None => (os(entry), std::ffi::OsString::new()),
        })
        .collect();
    let program = os(spawn.program);
    let args: Vec<_> = spawn.args.into_iter().map(os).collect();
    let cwd = std::path::PathBuf::from(os(spawn.cwd));
    if spawn.kind == Kind::Supervised {
        // SAFETY: descriptor 3 is the report pipe, just moved there; nothing else owns it.
        let report = unsafe { OwnedFd::from_raw_fd(3) };
        crate::engine::supervise::main(
            report,
            Duration::from_millis(spawn.grace_ms),
            launcher,
            program,
            args,
            env,
            cwd,
        )
    }
    use std::os::unix::process::CommandExt;
    let error = std::process::Command::new(&program)
        .args(args)
        .env_clear()
        .envs(env)
        .current_dir(cwd)
        .exec();
    let _ = writeln!(
        std::io::stderr(),
        "scriptd: cannot start {}: {error}",
        program.to_string_lossy()
    );
    std::process::exit(127)
}

fn dup_onto(fd: BorrowedFd<'_>, target: RawFd) -> bool {
    fd.as_raw_fd() == target || nix::unistd::dup2(fd.as_raw_fd(), target).is_ok()
}

/// Closes every descriptor from `first` up: the socket, the signalfd and other runs' pipes
/// must not stay open in this run's tree.
fn close_from(first: RawFd) {
    // SAFETY: close_range only closes descriptors; nothing of this process uses them after.
    if unsafe { nix::libc::syscall(nix::libc::SYS_close_range, first, u32::MAX, 0) } == 0 {
        return;
    }
    // Kernels before 5.9: the open ones, or every number up to the descriptor limit.
    let open: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => {
            let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                .map_or(1024, |(soft, _)| soft.min(1 << 20) as RawFd);
            (first..limit).collect()
        }
    };
    for fd in open.into_iter().filter(|fd| *fd >= first) {
        let _ = nix::unistd::close(fd);
    }
}

fn fail(what: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "scriptd: launcher: {what}");
    std::process::exit(125)
}
