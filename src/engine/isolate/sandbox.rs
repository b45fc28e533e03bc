//! Locks the worker process down before it runs any script, in independent layers: resource
//! limits; not dumpable; a user namespace of its own where the kernel lets an unprivileged
//! process have one (so it holds no privilege over anything outside); `no_new_privs`; Landlock
//! with every file access refused, where the kernel has it; and a seccomp **allowlist** of the
//! few system calls a running QuickJS needs (memory, writing to the pipes it holds, time,
//! exiting), checked for the architecture, every other call killing the process. Each layer
//! is tried on its own; what the kernel does not offer is reported, and the rest still apply.

use nix::sys::resource::{setrlimit, Resource};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};
use std::collections::BTreeMap;

pub struct Layers {
    pub active: Vec<String>,
    pub unavailable: Vec<String>,
}

/// Address space for the engine heap plus the worker's own code and stacks.
const BASE_ADDRESS_SPACE: u64 = 256 * 1024 * 1024;

/// The layers' filters, made before the job arrives: they do not depend on it, and making them
/// (compiling the seccomp program, creating the Landlock ruleset) then costs the run nothing.
pub struct Prepared {
    landlock: Option<landlock::RulesetCreated>,
    seccomp: Option<BpfProgram>,
}

pub fn prepare() -> Prepared {
    use landlock::{Access, AccessFs, Ruleset, RulesetAttr, ABI};
    Prepared {
        landlock: Ruleset::default()
            .handle_access(AccessFs::from_all(ABI::V3))
            .and_then(|r| r.create())
            .ok(),
        seccomp: seccomp_program().ok(),
    }
}

impl Prepared {
    /// Turns every layer on, with the job's limits.
    pub fn lock_down(self, memory_limit_bytes: usize, timeout_ms: u64) -> Layers {
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
        let landlock = self.landlock.is_some_and(refuse_all_files);
        record(&mut layers, "landlock", landlock);
        let seccomp = self
            .seccomp
            .is_some_and(|program| seccompiler::apply_filter(&program).is_ok());
        record(&mut layers, "seccomp", seccomp);
        layers
    }
}

fn record(layers: &mut Layers, name: &str, ok: bool) {
    if ok {
        layers.active.push(name.to_string());
    } else {
        layers.unavailable.push(name.to_string());
    }
}

/// Restricts the worker to the ruleset, which handles every file access and allows none.
fn refuse_all_files(ruleset: landlock::RulesetCreated) -> bool {
    use landlock::RulesetStatus;
    matches!(
        ruleset.restrict_self().map(|s| s.ruleset),
        Ok(RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced)
    )
}

fn seccomp_program() -> Result<BpfProgram, Box<dyn std::error::Error>> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> =
        nr::ALLOWED.iter().map(|nr| (*nr, Vec::new())).collect();
    // seccompiler checks the architecture first: a call made through another ABI (x32,
    // 32-bit) matches nothing here and kills the process too.
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        TargetArch::try_from(std::env::consts::ARCH)?,
    )?;
    Ok(filter.try_into()?)
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
