//! Locks the worker process down before it runs any script, in independent layers: not
//! dumpable; a user namespace of its own where the kernel lets an unprivileged process have one
//! (so it holds no privilege over anything outside); `no_new_privs`; Landlock with every file
//! access refused, where the kernel has it; a seccomp **allowlist** of the few system calls a
//! running QuickJS needs (memory, writing to the pipes it holds, time, exiting, setting its own
//! resource limits), checked for the architecture, every other call killing the process; and,
//! once the job has said what they are, resource limits. Each layer is tried on its own; what
//! the kernel does not offer is reported, and the rest still apply.

use nix::sys::resource::{setrlimit, Resource};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

pub struct Layers {
    pub active: Vec<String>,
    pub unavailable: Vec<String>,
}

/// Address space for the engine heap plus the worker's own code and stacks.
const BASE_ADDRESS_SPACE: u64 = 256 * 1024 * 1024;

/// Turns on every layer but the job's limits. Done before the job arrives: none of it depends
/// on the job, and the worker is then locked down while it waits, at no cost to the run.
pub fn lock_down() -> Layers {
    let mut layers = Layers {
        active: Vec::new(),
        unavailable: Vec::new(),
    };
    record(
        &mut layers,
        "not_dumpable",
        nix::sys::prctl::set_dumpable(false).is_ok(),
    );
    record(
        &mut layers,
        "user_namespace",
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).is_ok(),
    );
    record(
        &mut layers,
        "no_new_privs",
        nix::sys::prctl::set_no_new_privs().is_ok(),
    );
    record(&mut layers, "landlock", refuse_all_files());
    record(&mut layers, "seccomp", apply_seccomp().is_ok());
    layers
}

/// Sets the job's resource limits, hard and soft alike, so nothing can raise them again; the
/// seccomp filter lets the worker set its own limits and no other process's.
pub fn limit(layers: &mut Layers, memory_limit_bytes: usize, timeout_ms: u64) {
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
    record(layers, "rlimits", all_set);
}

fn record(layers: &mut Layers, name: &str, ok: bool) {
    if ok {
        layers.active.push(name.to_string());
    } else {
        layers.unavailable.push(name.to_string());
    }
}

/// A Landlock ruleset that handles every file access and allows none.
fn refuse_all_files() -> bool {
    use landlock::{Access, AccessFs, Ruleset, RulesetAttr, RulesetStatus, ABI};
    let restricted = Ruleset::default()
        .handle_access(AccessFs::from_all(ABI::V3))
        .and_then(|r| r.create())
        .and_then(|r| r.restrict_self());
    matches!(
        restricted.map(|s| s.ruleset),
        Ok(RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced)
    )
}

fn apply_seccomp() -> Result<(), Box<dyn std::error::Error>> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        nr::ALLOWED.iter().map(|nr| (*nr, Vec::new())).collect();
    // Setting resource limits, on this process only: its first argument, the pid, is 0.
    let own_pid = SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, 0)?;
    rules.insert(nr::PRLIMIT64, vec![SeccompRule::new(vec![own_pid])?]);
    // seccompiler checks the architecture first: a call made through another ABI (x32,
    // 32-bit) matches nothing here and kills the process too.
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        TargetArch::try_from(std::env::consts::ARCH)?,
    )?;
    let program: BpfProgram = filter.try_into()?;
    seccompiler::apply_filter(&program)?;
    Ok(())
}

/// The calls a locked-down worker makes: found by tracing it through the isolate tests
/// (console output, allocation up to the memory limit, deep recursion, async jobs, the
/// timeout). Nothing opens, connects, signals, forks, maps another process or sets up
/// io_uring.
#[cfg(target_arch = "x86_64")]
mod nr {
    pub const ALLOWED: &[i64] = &[
        0,   // read
        1,   // write
        3,   // close
        5,   // fstat
        9,   // mmap
        10,  // mprotect
        11,  // munmap
        12,  // brk
        13,  // rt_sigaction
        14,  // rt_sigprocmask
        15,  // rt_sigreturn
        20,  // writev
        24,  // sched_yield
        25,  // mremap
        28,  // madvise
        60,  // exit
        131, // sigaltstack
        186, // gettid
        202, // futex
        228, // clock_gettime
        230, // clock_nanosleep
        231, // exit_group
        318, // getrandom
    ];
    pub const PRLIMIT64: i64 = 302;
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const ALLOWED: &[i64] = &[
        63,  // read
        64,  // write
        57,  // close
        80,  // fstat
        222, // mmap
        226, // mprotect
        215, // munmap
        214, // brk
        134, // rt_sigaction
        135, // rt_sigprocmask
        139, // rt_sigreturn
        66,  // writev
        124, // sched_yield
        216, // mremap
        233, // madvise
        93,  // exit
        132, // sigaltstack
        178, // gettid
        98,  // futex
        113, // clock_gettime
        115, // clock_nanosleep
        94,  // exit_group
        278, // getrandom
    ];
    pub const PRLIMIT64: i64 = 261;
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_allowlist_has_nothing_that_reaches_outside_the_process() {
        // x86_64: open, openat, openat2, socket, connect, execve, clone, clone3, fork, kill,
        // tgkill, ptrace, io_uring_setup/enter/register, pidfd_open, process_vm_readv/writev,
        // truncate, ftruncate, rename, symlink, unshare.
        #[cfg(target_arch = "x86_64")]
        for forbidden in [
            2, 257, 437, 41, 42, 59, 56, 435, 57, 62, 234, 101, 425, 426, 427, 434, 310, 311, 76,
            77, 82, 88, 272,
        ] {
            assert!(!super::nr::ALLOWED.contains(&forbidden), "{forbidden}");
        }
    }
}
