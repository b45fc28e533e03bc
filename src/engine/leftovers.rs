//! What runs leave in the temporary directory while they run: a host run's script or large
//! input file (`scriptd-run-<pid>-…`) and an isolated worker's directory
//! (`scriptd-isolate-<pid>-…`), each named for the server process that made it. The server
//! removes them when the run ends; after a crash or `kill -9` nobody does, so a starting
//! server removes those of server processes that no longer exist. Another live server's (or
//! node's) entries are left alone, whatever the temporary directory they share.

use std::path::Path;

const RUN_FILE: &str = "scriptd-run-";
const ISOLATE_DIR: &str = "scriptd-isolate-";

/// The name prefix of a host run's private file.
pub fn run_file_prefix() -> String {
    format!("{RUN_FILE}{}-", std::process::id())
}

/// The name prefix of an isolated worker's directory.
pub fn isolate_dir_prefix() -> String {
    format!("{ISOLATE_DIR}{}-", std::process::id())
}

/// Removes from `dir` what dead server processes left; returns how many entries.
pub fn sweep(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(owner_pid) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
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

/// The pid in a leftover's name, if the name is one of ours.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix(RUN_FILE)
        .or_else(|| name.strip_prefix(ISOLATE_DIR))?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_dead_servers_left_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        // A process that has exited: its pid is free (and not reused this soon in practice).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let live = std::process::id();
        let write = |name: &str| std::fs::write(dir.path().join(name), "x").unwrap();
        write(&format!("{RUN_FILE}{dead}-abc.js"));
        write(&format!("{RUN_FILE}{live}-abc.js"));
        write("scriptd-run-notapid-abc.js");
        write(&format!("other-{dead}-abc"));
        let isolate = dir.path().join(format!("{ISOLATE_DIR}{dead}-xyz"));
        std::fs::create_dir_all(isolate.join("inner")).unwrap();
        std::fs::write(isolate.join("inner/f"), "x").unwrap();

        assert_eq!(sweep(dir.path()), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut expected = vec![
            format!("{RUN_FILE}{live}-abc.js"),
            format!("other-{dead}-abc"),
            "scriptd-run-notapid-abc.js".to_string(),
        ];
        expected.sort();
        assert_eq!(left, expected);
        assert!(run_file_prefix().starts_with(&format!("{RUN_FILE}{live}-")));
    }
}
