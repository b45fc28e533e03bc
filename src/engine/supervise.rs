//! The per-run supervisor: a small process between the server and a script (forked by the
//! launcher, see `launcher`), whose one job is that no descendant of the script outlives the
//! run.
//!
//! Why a separate process: Linux lets a process become a *child subreaper*
//! (`PR_SET_CHILD_SUBREAPER`), so every orphan in its subtree (a double fork, a `setsid`
//! daemon, a `nohup … &`) is reparented to it rather than to init. The supervisor can then
//! find and kill the whole tree, whatever process groups or sessions it made, and reap it
//! until nothing is left. Doing this in the server itself would make the server reap
//! strangers' exit codes from under tokio. A PID namespace or a cgroup would also do, but
//! need privileges or delegation an operator may not have; a subreaper needs neither.
//!
//! The supervisor also asks to be sent SIGTERM when the launcher dies (`PR_SET_PDEATHSIG`),
//! and the launcher dies with the server, so a `kill -9` of the server still ends every
//! script.
//!
//! Protocol: SIGTERM (or SIGINT/SIGHUP) to the supervisor ends the run: SIGTERM to the whole
//! tree, SIGKILL after the grace period. When the script's main process exits by itself, any
//! descendant it left behind gets the same treatment. Once the tree is gone the supervisor
//! closes its copies of the output pipes, reports the script's wait status on its report
//! pipe, then exits with the script's exit code, or dies by the signal that killed the
//! script. The report lets the server record the end without waiting for this process's own
//! exit and reaping, which take longer than a short script does (a quarter of a millisecond
//! here); its own exit status remains the answer should it die unreported.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{close, getpid, getppid, Pid};
use signal_hook::consts::{SIGALRM, SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::launcher::raw_status;

/// Runs the supervisor; never returns. `report` is the pipe to report the script's end on;
/// `parent` is the launcher that forked it; `env` is the script's whole environment.
pub fn main(
    report: OwnedFd,
    grace: Duration,
    parent: Pid,
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: PathBuf,
) -> ! {
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);

    // Handlers (not a blocked mask) so the script starts with default dispositions and an
    // empty mask: exec resets handled signals, while a mask would be inherited.
    let mut signals = match Signals::new([SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGALRM]) {
        Ok(s) => s,
        Err(e) => exit_with_error(&format!("cannot handle signals: {e}")),
    };

    // The script may not write a report of its own.
    if fcntl(report.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).is_err() {
        exit_with_error("cannot keep the report pipe from the script");
    }
    // The script stays in this process's group (its own, set by the server), so that if the
    // script kills this supervisor, the server can still end the group. Its stdin is this
    // process's, /dev/null.
    let child = match Command::new(&program)
        .args(&args)
        .env_clear()
        .envs(env)
        .current_dir(&cwd)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("scriptd: cannot start {}: {e}", program.to_string_lossy());
            std::process::exit(127);
        }
    };
    let main_pid = Pid::from_raw(child.id() as i32);
    drop(child);

    let mut main_status: Option<WaitStatus> = None;
    let mut ending = false;
    // The launcher died between fork and prctl: nobody will ever tell us to stop.
    if getppid() != parent {
        end_tree(grace, &mut ending);
    }

    loop {
        for sig in signals.wait() {
            match sig {
                SIGCHLD => {}
                SIGALRM => {
                    kill_tree(Signal::SIGKILL);
                    arm_alarm(Duration::from_millis(200));
                }
                _ => {
                    if !ending {
                        end_tree(grace, &mut ending);
                    }
                }
            }
        }
        if let Some(done) = reap(main_pid, &mut main_status) {
            finish(done, report);
        }
        if main_status.is_some() && !ending {
            end_tree(grace, &mut ending);
        }
    }
}

/// Reaps every exited child. Returns the main status once nothing is left to wait for.
fn reap(main_pid: Pid, main_status: &mut Option<WaitStatus>) -> Option<WaitStatus> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return None,
            Ok(status) => {
                if status.pid() == Some(main_pid) {
                    *main_status = Some(status);
                }
            }
            Err(Errno::EINTR) => continue,
            Err(_) => return Some(main_status.unwrap_or(WaitStatus::Exited(main_pid, 1))),
        }
    }
}

/// SIGTERM to the whole tree now, SIGKILL after the grace period.
fn end_tree(grace: Duration, ending: &mut bool) {
    *ending = true;
    kill_tree(Signal::SIGTERM);
    // SIGCONT so stopped processes can act on the SIGTERM.
    kill_tree(Signal::SIGCONT);
    arm_alarm(grace);
}

/// Sends SIGALRM to this process after `after`, from a helper thread.
fn arm_alarm(after: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        let _ = kill(getpid(), Signal::SIGALRM);
    });
}

fn kill_tree(sig: Signal) {
    for pid in descendants(getpid().as_raw()) {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

/// The processes whose parent is `parent`, read from `/proc`.
pub fn children(parent: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| parent_of(*pid) == Some(parent))
        .collect()
}

/// Every process whose parent chain leads to `root`, read from `/proc`.
pub fn descendants(root: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(i32, i32)> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, parent_of(pid)?)))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

/// Ends the supervisor once its tree is gone: the output pipes end with this process's copies,
/// then the report says how the script ended, then this process ends the same way.
fn finish(status: WaitStatus, report: OwnedFd) -> ! {
    let _ = close(1);
    let _ = close(2);
    // Four bytes, so one write (a pipe writes up to PIPE_BUF bytes at once) and one read.
    if let Some(raw) = raw_status(&status) {
        let _ = std::fs::File::from(report).write_all(&raw.to_le_bytes());
    }
    match status {
        WaitStatus::Exited(_, code) => std::process::exit(code),
        WaitStatus::Signaled(_, sig, _) => {
            // Die the same way, so the server sees the signal: default action, then raise.
            let _ = signal_hook::low_level::emulate_default_handler(sig as i32);
            std::process::exit(128 + sig as i32)
        }
        _ => std::process::exit(1),
    }
}

fn exit_with_error(msg: &str) -> ! {
    eprintln!("scriptd: supervisor: {msg}");
    std::process::exit(125)
}
