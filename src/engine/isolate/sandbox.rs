//! Locks the worker process down before it runs any script: resource limits,
//! `no_new_privs`, and a seccomp filter that refuses opening files, sockets, process
//! creation and exec. Each layer is tried on its own; what the kernel does not offer is
//! reported, and the runner works with the rest.

use nix::sys::resource::{setrlimit, Resource};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};
use std::collections::BTreeMap;

pub struct Layers {
    pub active: Vec<String>,
    pub unavailable: Vec<String>,
}

/// Address space for the engine heap plus the worker's own code and stacks.
const BASE_ADDRESS_SPACE: u64 = 256 * 1024 * 1024;

pub fn lock_down(memory_limit_bytes: usize, timeout_ms: u64) -> Layers {
    let mut layers = Layers {
        active: Vec::new(),
        unavailable: Vec::new(),
    };
    let cpu_secs = timeout_ms / 1000 + 2;
    let limits = [
        (
            Resource::RLIMIT_AS,
            BASE_ADDRESS_SPACE + memory_limit_bytes as u64 * 2,
        ),
        (Resource::RLIMIT_CPU, cpu_secs),
        (Resource::RLIMIT_NOFILE, 16),
        (Resource::RLIMIT_NPROC, 0),
        (Resource::RLIMIT_FSIZE, 0),
        (Resource::RLIMIT_CORE, 0),
    ];
    let all_set = limits
        .iter()
        .all(|(res, value)| setrlimit(*res, *value, *value).is_ok());
    record(&mut layers, "rlimits", all_set);
    record(
        &mut layers,
        "no_new_privs",
        nix::sys::prctl::set_no_new_privs().is_ok(),
    );
    record(&mut layers, "seccomp", apply_seccomp().is_ok());
    layers
}

fn record(layers: &mut Layers, name: &str, ok: bool) {
    if ok {
        layers.active.push(name.to_string());
    } else {
        layers.unavailable.push(name.to_string());
    }
}

/// Syscalls refused with EPERM. Everything else the engine needs (memory, time, writing to
/// the stdout pipe it already holds, exiting) stays allowed.
fn denied_syscalls() -> Vec<i64> {
    vec![
        libc_nr::OPEN,
        libc_nr::OPENAT,
        libc_nr::OPENAT2,
        libc_nr::CREAT,
        libc_nr::SOCKET,
        libc_nr::SOCKETPAIR,
        libc_nr::CONNECT,
        libc_nr::BIND,
        libc_nr::LISTEN,
        libc_nr::ACCEPT,
        libc_nr::ACCEPT4,
        libc_nr::SENDTO,
        libc_nr::EXECVE,
        libc_nr::EXECVEAT,
        libc_nr::FORK,
        libc_nr::VFORK,
        libc_nr::CLONE,
        libc_nr::CLONE3,
        libc_nr::PTRACE,
        libc_nr::MOUNT,
        libc_nr::UNLINK,
        libc_nr::UNLINKAT,
        libc_nr::RENAME,
        libc_nr::RENAMEAT,
        libc_nr::MKDIR,
        libc_nr::MKDIRAT,
        libc_nr::CHMOD,
        libc_nr::FCHMODAT,
        libc_nr::KILL,
        libc_nr::TKILL,
    ]
}

fn apply_seccomp() -> Result<(), Box<dyn std::error::Error>> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> = denied_syscalls()
        .into_iter()
        .map(|nr| (nr, Vec::new()))
        .collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(1), // EPERM
        TargetArch::try_from(std::env::consts::ARCH)?,
    )?;
    let program: BpfProgram = filter.try_into()?;
    seccompiler::apply_filter(&program)?;
    Ok(())
}

/// x86_64 and aarch64 syscall numbers for the calls above (aarch64 has no legacy
/// open/creat/fork/… entry points; those are given numbers that match nothing).
#[cfg(target_arch = "x86_64")]
mod libc_nr {
    pub const OPEN: i64 = 2;
    pub const OPENAT: i64 = 257;
    pub const OPENAT2: i64 = 437;
    pub const CREAT: i64 = 85;
    pub const SOCKET: i64 = 41;
    pub const SOCKETPAIR: i64 = 53;
    pub const CONNECT: i64 = 42;
    pub const BIND: i64 = 49;
    pub const LISTEN: i64 = 50;
    pub const ACCEPT: i64 = 43;
    pub const ACCEPT4: i64 = 288;
    pub const SENDTO: i64 = 44;
    pub const EXECVE: i64 = 59;
    pub const EXECVEAT: i64 = 322;
    pub const FORK: i64 = 57;
    pub const VFORK: i64 = 58;
    pub const CLONE: i64 = 56;
    pub const CLONE3: i64 = 435;
    pub const PTRACE: i64 = 101;
    pub const MOUNT: i64 = 165;
    pub const UNLINK: i64 = 87;
    pub const UNLINKAT: i64 = 263;
    pub const RENAME: i64 = 82;
    pub const RENAMEAT: i64 = 264;
    pub const MKDIR: i64 = 83;
    pub const MKDIRAT: i64 = 258;
    pub const CHMOD: i64 = 90;
    pub const FCHMODAT: i64 = 268;
    pub const KILL: i64 = 62;
    pub const TKILL: i64 = 200;
}
