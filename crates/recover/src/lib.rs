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

use lifeboat_core::Cancel;

pub use error::{Error, Result};

mod abort;
mod control;
mod data;
mod data_place;
mod error;
pub mod files_backup;
mod host;
mod journal;
mod node;
mod node_files;
mod plan;
mod policy;
pub mod source;
mod step;

pub use abort::*;
use control::*;
pub use data::*;
pub use data_place::*;
pub use host::*;
pub use journal::*;
pub use node::*;
use node_files::*;
pub use plan::*;
pub use policy::*;
pub use step::Step;
use step::*;

/// What a step did wrong, as the error of the run.
fn failed(step: &'static str, message: impl Into<String>) -> Error {
    Error::Recovery {
        step,
        message: message.into(),
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Core(lifeboat_core::Error::Io { action, path, source })
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
    /// Step `number` of `of` begins.
    fn step(&self, number: usize, of: usize, text: &str);
    /// Step `number` did its work; the journal does not record it yet.
    fn step_worked(&self, _number: usize, _text: &str) {}
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

impl Outcome {
    /// How the journal names it.
    fn journal_name(self) -> &'static str {
        match self {
            Outcome::Recovered => OUTCOME_RECOVERED,
            Outcome::ApiServerNotReady => OUTCOME_APISERVER,
            Outcome::QuorumPending => OUTCOME_QUORUM,
        }
    }
}

/// What restores the snapshot: called with the data directory to create and the restore
/// settings; returns nothing but success (the caller fetches from a repository or a file).
pub type RestoreFn<'a> = Box<
    dyn FnOnce(
            lifeboat_core::snapshot_restore::RestoreOptions,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>
        + Send
        + 'a,
>;

/// Restores snapshot `file` with `options`, off the async workers: the restore of a `--file` run.
pub async fn restore_file(
    file: PathBuf,
    options: lifeboat_core::snapshot_restore::RestoreOptions,
) -> Result<()> {
    let options = lifeboat_core::snapshot_restore::RestoreOptions {
        snapshot: file,
        ..options
    };
    Ok(lifeboat_core::blocking::blocking(move || {
        lifeboat_core::snapshot_restore::restore(&options).map(|_| ())
    })
    .await?)
}

/// What a run works with besides its journal: the node's options, the machine, and who hears
/// about it.
#[derive(Clone, Copy)]
pub struct Setting<'a> {
    pub options: &'a RecoverOptions,
    pub host: &'a dyn Host,
    pub narrator: &'a dyn Narrator,
}

impl std::fmt::Debug for Setting<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setting")
            .field("options", self.options)
            .finish_non_exhaustive()
    }
}

impl<'a> Setting<'a> {
    fn at(self, step: Step) -> Cx<'a> {
        Cx {
            options: self.options,
            host: self.host,
            narrator: self.narrator,
            step,
        }
    }
}

/// Carries out (or resumes) the run of `journal` on `node`.
pub async fn run(
    node: &Node,
    journal: &mut Journal,
    setting: Setting<'_>,
    restore: RestoreFn<'_>,
    files: Option<&[u8]>,
    cancel: &Cancel,
) -> Result<Outcome> {
    let options = setting.options;
    journal.check_resumable()?;
    journal.save(options)?;
    let mut inputs = Inputs {
        restore: Some(restore),
        files,
        cancel,
    };
    let mut node = node.clone();
    let steps = journal.steps();
    for (index, step) in steps.iter().copied().enumerate() {
        if step.is_done(journal) {
            setting
                .narrator
                .note(&format!("step {} ({step}) was done before; skipped", index + 1));
            continue;
        }
        // Between steps, never inside one: every step must finish once begun.
        if step != Step::StartApiserver {
            cancel.check()?;
        }
        let cx = setting.at(step);
        setting.narrator.step(index + 1, steps.len(), step.name());
        cx.reached("begin")?;
        let applied = step.apply(&mut node, journal, &mut inputs, cx).await?;
        setting.narrator.step_worked(index + 1, step.name());
        cx.reached("worked")?;
        if let Applied::Ended(outcome) = applied {
            // The steps after it have nothing left to do: every manifest is back. One write,
            // so a crash never leaves the steps marked without the outcome.
            for later in &steps[index..] {
                if !journal.is_done(*later) {
                    journal.done.push(*later);
                }
            }
            journal.finish(outcome.journal_name(), options)?;
            return Ok(outcome);
        }
        journal.mark(step, options)?;
    }
    journal.finish(Outcome::Recovered.journal_name(), options)?;
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
