//! Drills left behind by a process that died (SIGKILL, the OOM killer): their members die with
//! it (the parent-death signal), and their directories, which hold restored data and so every
//! Secret of the cluster, are removed when the next drill starts in the same place. A drill's
//! directory names its owner (PID and start time, so a reused PID is not taken for it); it is
//! left alone while the owner runs, and when it was kept on purpose (`--keep`).

use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::{Error, Result};

const OWNER: &str = "owner";
const KEPT: &str = "kept";
/// How drill directories are named (`tempfile`'s prefix).
pub(crate) const PREFIX: &str = "lifeboat-drill-";

/// When process `pid` started, in clock ticks since boot (`/proc/PID/stat`, field 22).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Records this process as the owner of drill directory `dir`.
pub(crate) fn claim(dir: &Path) -> Result<()> {
    let pid = std::process::id();
    let owner = format!("{pid} {}\n", start_time(pid).unwrap_or_default());
    let path = dir.join(OWNER);
    std::fs::write(&path, owner).map_err(|source| Error::Io {
        action: "write",
        path,
        source,
    })
}

/// Marks `dir` as kept on purpose: no later drill removes it.
pub(crate) fn keep(dir: &Path) {
    let _ = std::fs::write(dir.join(KEPT), b"");
}

/// Whether the owner recorded in `dir` still runs; `None` when no owner is recorded.
fn owner_runs(dir: &Path) -> Option<bool> {
    let text = std::fs::read_to_string(dir.join(OWNER)).ok()?;
    let mut fields = text.split_whitespace();
    let pid: u32 = fields.next()?.parse().ok()?;
    let started: u64 = fields.next()?.parse().ok()?;
    Some(start_time(pid) == Some(started))
}

/// Kills what still runs on data under `dir` (a member whose parent-death signal did not fire).
fn kill_members_in(dir: &Path) {
    let needle = format!("--data-dir={}/", dir.display());
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return;
    };
    for process in processes.flatten() {
        let Some(pid) = process.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(command_line) = std::fs::read(process.path().join("cmdline")) else {
            continue;
        };
        let runs_here = command_line
            .split(|b| *b == 0)
            .any(|arg| arg.starts_with(needle.as_bytes()));
        if runs_here {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Removes the drill directories in `work_dir` whose owner is gone and that were not kept;
/// returns them. Failures are logged, never fatal: the drill at hand goes on.
pub(crate) fn sweep(work_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        let ours = entry.file_name().to_str().is_some_and(|n| n.starts_with(PREFIX))
            && entry.file_type().is_ok_and(|t| t.is_dir())
            && !dir.join(KEPT).exists();
        if !ours || owner_runs(&dir) != Some(false) {
            continue;
        }
        kill_members_in(&dir);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                info!("removed {}, left by a drill whose process died", dir.display());
                removed.push(dir);
            }
            Err(error) => warn!("cannot remove {}, left by a dead drill: {error}", dir.display()),
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dead_owners_directory_is_swept() {
        let work = tempfile::tempdir().unwrap();
        let mine = work.path().join(format!("{PREFIX}mine"));
        let dead = work.path().join(format!("{PREFIX}dead"));
        let kept = work.path().join(format!("{PREFIX}kept"));
        let unowned = work.path().join(format!("{PREFIX}unowned"));
        let other = work.path().join("something-else");
        for dir in [&mine, &dead, &kept, &unowned, &other] {
            std::fs::create_dir(dir).unwrap();
        }
        claim(&mine).unwrap();
        // A PID that runs, with another start time: the owner's PID was reused.
        std::fs::write(dead.join(OWNER), format!("{} 1\n", std::process::id())).unwrap();
        std::fs::write(kept.join(OWNER), "999999999 1\n").unwrap();
        keep(&kept);
        std::fs::write(other.join(OWNER), "999999999 1\n").unwrap();
        assert_eq!(owner_runs(&mine), Some(true));
        assert_eq!(sweep(work.path()), std::slice::from_ref(&dead));
        for dir in [&mine, &kept, &unowned, &other] {
            assert!(dir.exists(), "{}", dir.display());
        }
        assert!(!dead.exists());
    }
}
