//! `recover --kubeadm`: the kubeadm restore runbook as one resumable run (docs/recover.md).
//!
//! Everything is read from the node (under `root`): the kubelet's static Pod directory and the
//! etcd static Pod. Every step is recorded in a journal before the next begins, and each step is
//! safe to run again after a crash in its middle, so a rerun resumes and `abort` rolls back to the
//! node as it was: manifests in place, the old data directory back.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use lifeboat_etcd_conn::{ConnectOptions, TlsFiles};
use lifeboat_kubeadm::{EtcdManifest, parse_etcd_manifest, static_pod_path};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::{Cancel, Error, Result};

mod abort;
mod control;
mod data;
mod data_place;
mod journal;
mod node;
mod node_files;
mod plan;

pub use abort::*;
use control::*;
pub use data::*;
pub use data_place::*;
pub use journal::*;
pub use node::*;
use node_files::*;
pub use plan::*;

/// What a step did wrong, as the error of the run.
fn failed(step: &'static str, message: impl Into<String>) -> Error {
    Error::Recovery {
        step,
        message: message.into(),
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { action, path, source }
}

/// `path` (absolute on the node) inside `root`.
pub fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(relative_to_root(path))
}

/// A node path as the files backup names it: relative to `/`.
fn relative_to_root(path: &Path) -> PathBuf {
    path.strip_prefix("/").unwrap_or(path).to_path_buf()
}

/// How the run goes.
#[derive(Debug, Clone)]
pub struct RecoverOptions {
    /// The node's `/` (another tree for tests or a mounted disk).
    pub root: PathBuf,
    /// Where the journal, the safety copies and the manifests taken out live (a node path).
    pub journal_dir: PathBuf,
    /// How long the control plane may take to stop once its manifests are gone.
    pub stop_timeout: Duration,
    /// How long the restored etcd may take to answer.
    pub etcd_timeout: Duration,
    /// How long the API server may take to be ready.
    pub apiserver_timeout: Duration,
}

/// The revision bump when nothing says how far the cluster went past the backup (OpenShift's
/// choice): far beyond any resourceVersion a client can have seen.
pub const DEFAULT_BUMP: u64 = 1_000_000_000;

/// What the caller hears as the run goes.
pub trait Narrator: Send + Sync {
    /// Step `number` begins.
    fn step(&self, number: usize, text: &str);
    /// Step `number` did its work; the journal does not record it yet.
    fn step_worked(&self, number: usize, text: &str);
    /// Within step `step`, the action `action` is done (a point a crash may fall on; tests
    /// place failpoints here).
    fn action_done(&self, _step: &str, _action: &str) {}
    fn note(&self, text: &str);
}

/// How the run ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// etcd and the API server (when the node runs one) are back.
    Recovered,
    /// etcd is recovered; the API server did not become ready in time.
    ApiServerNotReady,
    /// This member is restored and started; its cluster serves once enough of the other members
    /// are restored the same way.
    QuorumPending,
}

/// What restores the snapshot: called with the data directory to create and the restore
/// settings; returns nothing but success (the caller fetches from a repository or a file).
pub type RestoreFn<'a> = Box<
    dyn FnOnce(
            crate::snapshot_restore::RestoreOptions,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>
        + Send
        + 'a,
>;

/// Restores snapshot `file` with `options`, off the async workers: the restore of a `--file` run.
pub async fn restore_file(file: PathBuf, options: crate::snapshot_restore::RestoreOptions) -> Result<()> {
    let options = crate::snapshot_restore::RestoreOptions {
        snapshot: file,
        ..options
    };
    crate::blocking::blocking(move || crate::snapshot_restore::restore(&options).map(|_| ())).await
}

/// Carries out (or resumes) the run of `journal` on `node`.
pub async fn run(
    node: &Node,
    journal: &mut Journal,
    options: &RecoverOptions,
    restore: RestoreFn<'_>,
    files: Option<&[u8]>,
    narrator: &dyn Narrator,
    cancel: &Cancel,
) -> Result<Outcome> {
    let root = options.root.as_path();
    journal.save(options)?;
    let mut restore = Some(restore);
    let mut node = node.clone();
    let node = &mut node;
    for (index, step) in journal.steps().into_iter().enumerate() {
        if journal.is_done(step) {
            narrator.note(&format!("step {} ({step}) was done before; skipped", index + 1));
            continue;
        }
        // Between steps, never inside one: every step must finish once begun.
        if step != "start-apiserver" {
            cancel.check()?;
        }
        narrator.step(index + 1, step);
        match step {
            "safety-copy" => safety_copy(node, journal, options, narrator, cancel).await?,
            "stop" => stop(node, journal, options, narrator).await?,
            "data-aside" => data_aside(journal, root)?,
            "files" => {
                let tar = files.ok_or_else(|| failed("files", "the files backup was not fetched"))?;
                if journal.added_files.is_none() {
                    // Once, before anything is placed: a rerun would find its own additions.
                    journal.added_files = Some(added_files(journal, options, tar)?);
                    journal.save(options)?;
                }
                put_files(journal, options, tar)?;
                // The restore follows the etcd.yaml that came with the files.
                *node = discover(root, Some(&journal.manifests_aside), None)?;
            }
            "restore" => {
                let restore = restore
                    .take()
                    .ok_or_else(|| failed("restore", "the restore ran once already"))?;
                restore_step(node, journal, root, restore, narrator).await?;
            }
            "start-etcd" if !start_etcd(node, journal, options, narrator).await? => {
                // Its cluster needs the other members: the rest goes back, nothing more to wait for.
                put_back(root, journal, &aside_names(root, journal))?;
                for step in ["start-etcd", "start-apiserver", "start-rest"] {
                    journal.mark(step, options)?;
                }
                journal.finish(OUTCOME_QUORUM, options)?;
                return Ok(Outcome::QuorumPending);
            }
            "start-apiserver" if !start_apiserver(node, journal, options, narrator).await? => {
                // The rest goes back all the same: the node is left as the kubelet expects.
                put_back(root, journal, &aside_names(root, journal))?;
                journal.mark("start-apiserver", options)?;
                journal.mark("start-rest", options)?;
                journal.finish(OUTCOME_APISERVER, options)?;
                return Ok(Outcome::ApiServerNotReady);
            }
            "start-rest" => put_back(root, journal, &aside_names(root, journal))?,
            _ => {}
        }
        narrator.step_worked(index + 1, step);
        journal.mark(step, options)?;
    }
    journal.finish(OUTCOME_RECOVERED, options)?;
    Ok(Outcome::Recovered)
}

/// Only one recovery at a time on a node: an exclusive lock held for the run.
pub fn lock(options: &RecoverOptions, dry_run: bool) -> Result<Option<nix::fcntl::Flock<std::fs::File>>> {
    let dir = under(&options.root, &options.journal_dir);
    let path = dir.join("recover.lock");
    // A dry run writes nothing: without a lock file no run holds it.
    if dry_run && !path.exists() {
        return Ok(None);
    }
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&dir)
        .map_err(io("create", &dir))?;
    let file = std::fs::OpenOptions::new()
        .create(!dry_run)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io("open", &path))?;
    let locked =
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
            failed(
                "preflight",
                format!(
                    "another lifeboat recover holds {}; wait for it to end",
                    path.display()
                ),
            )
        })?;
    Ok(Some(locked))
}

/// Free bytes on the file system that holds `path` (or its nearest existing parent).
pub fn free_bytes(path: &Path) -> Result<u64> {
    let mut at = path;
    while !at.exists() {
        at = at.parent().unwrap_or(Path::new("/"));
    }
    let stat = nix::sys::statvfs::statvfs(at).map_err(|e| io("statvfs", at)(std::io::Error::from(e)))?;
    Ok(stat.blocks_available().saturating_mul(stat.fragment_size()))
}
