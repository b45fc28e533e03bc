//! What runs leave in the temporary directory while they run: a host run's script or large
//! input file (`scriptd-run-<pid>.<ns>-…`) and an isolated worker's directory
//! (`scriptd-isolate-<pid>.<ns>-…`), each named for the server process that made it and its
//! PID namespace. The server removes them when the run ends; after a crash or `kill -9` nobody
//! does, so a starting server removes those of server processes that no longer exist. Another
//! live server's (or node's) entries are left alone, whatever the temporary directory they
//! share; so are those made in another PID namespace (a container sharing the directory),
//! whose pids this process cannot look up.

use std::path::Path;

const RUN_FILE: &str = "scriptd-run-";
const ISOLATE_DIR: &str = "scriptd-isolate-";

/// The name prefix of a host run's private file.
pub fn run_file_prefix() -> String {
    format!("{RUN_FILE}{}-", owner())
}

/// The name prefix of an isolated worker's directory.
pub fn isolate_dir_prefix() -> String {
    format!("{ISOLATE_DIR}{}-", owner())
}

/// `<pid>.<pid namespace>` of this process.
fn owner() -> String {
    format!("{}.{}", std::process::id(), pid_namespace())
}

/// The inode of this process's PID namespace (`pid:[4026531836]`), or 0 if it cannot be read;
/// read once, not for every run's file.
fn pid_namespace() -> u64 {
    static NAMESPACE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *NAMESPACE.get_or_init(|| {
        std::fs::read_link("/proc/self/ns/pid")
            .ok()
            .and_then(|link| {
                let link = link.to_str()?.to_string();
                link.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
            })
            .unwrap_or(0)
    })
}

/// Removes from `dir` what dead server processes of this PID namespace left; returns how
/// many entries.
pub fn sweep(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let namespace = pid_namespace();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, ns)) = name.to_str().and_then(owner_of) else {
            continue;
        };
        if ns != namespace
            || pid == std::process::id()
            || Path::new(&format!("/proc/{pid}")).exists()
        {
            continue;
        }
        // Not followed if it is a link; a directory is removed without following any inside.
        let gone = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(entry.path()),
            Ok(_) => std::fs::remove_file(entry.path()),
            Err(e) => Err(e),
        };
        removed += usize::from(gone.is_ok());
    }
    removed
}

/// The pid and PID namespace in a leftover's name, if the name is one of ours.
fn owner_of(name: &str) -> Option<(u32, u64)> {
    let rest = name
        .strip_prefix(RUN_FILE)
        .or_else(|| name.strip_prefix(ISOLATE_DIR))?;
    let (owner, _) = rest.split_once('-')?;
    let (pid, ns) = owner.split_once('.')?;
    Some((pid.parse().ok()?, ns.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_dead_servers_of_this_pid_namespace_left_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        // A process that has exited: its pid is free (and not reused this soon in practice).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let (live, ns) = (std::process::id(), pid_namespace());
        let write = |name: &str| std::fs::write(dir.path().join(name), "x").unwrap();
        write(&format!("{RUN_FILE}{dead}.{ns}-abc.js"));
        write(&format!("{RUN_FILE}{live}.{ns}-abc.js"));
        write(&format!("{RUN_FILE}{dead}.{}-abc.js", ns + 1));
        write("scriptd-run-notapid-abc.js");
        write(&format!("other-{dead}.{ns}-abc"));
        let isolate = dir.path().join(format!("{ISOLATE_DIR}{dead}.{ns}-xyz"));
        std::fs::create_dir_all(isolate.join("inner")).unwrap();
        std::fs::write(isolate.join("inner/f"), "x").unwrap();

        assert_eq!(sweep(dir.path()), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut expected = vec![
            format!("{RUN_FILE}{live}.{ns}-abc.js"),
            format!("{RUN_FILE}{dead}.{}-abc.js", ns + 1),
            format!("other-{dead}.{ns}-abc"),
            "scriptd-run-notapid-abc.js".to_string(),
        ];
        expected.sort();
        assert_eq!(left, expected);
        assert_eq!(run_file_prefix(), format!("{RUN_FILE}{live}.{ns}-"));
        assert!(ns > 0, "the PID namespace is read");
    }
}
