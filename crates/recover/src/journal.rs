//! The journal of a run: its parameters and the steps done, rewritten after each step, checked
//! against what a run would have written before anything it names is followed.

use super::*;

/// [`Journal::outcome`] values.
pub(super) const OUTCOME_RECOVERED: &str = "recovered";
pub(super) const OUTCOME_APISERVER: &str = "apiserver-not-ready";
pub(super) const OUTCOME_QUORUM: &str = "quorum-pending";
pub(super) const OUTCOME_ABORTED: &str = "aborted";

/// The journal of a run: its parameters and the steps done, rewritten after each step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub run: String,
    /// The backup ID, or the snapshot file.
    pub source: String,
    pub token: String,
    pub bump_revision: u64,
    pub mark_compacted: bool,
    /// The snapshot's revision; the restored member serves at least this plus the bump.
    pub snapshot_revision: i64,
    /// The node's static Pod and data directories as the run began (absolute, plain): a node
    /// that no longer has them is refused ([`Journal::check_node`]); every other path the run
    /// writes is derived from them and the run's ID.
    pub static_pod_dir: PathBuf,
    pub data_dir: PathBuf,
    /// The files backup put in place first (`--with-files`), by ID.
    #[serde(default)]
    pub with_files: Option<String>,
    /// What the files backup adds to the node (relative to `/`; what it replaces is in
    /// `before-files.tar`), recorded before it is placed: `abort` removes it.
    #[serde(default)]
    pub added_files: Option<Vec<PathBuf>>,
    pub done: Vec<Step>,
    /// The steps `--abort` has undone: never undone twice, so that what returned is not taken
    /// for what the run wrote.
    #[serde(default)]
    pub undone: Vec<Step>,
    pub finished: bool,
    /// How a finished run ended: `recovered`, `apiserver-not-ready`, `quorum-pending` or
    /// `aborted`.
    #[serde(default)]
    pub outcome: Option<String>,
}

impl Journal {
    /// The steps of this run, in order.
    pub fn steps(&self) -> Vec<Step> {
        Step::ALL
            .into_iter()
            .filter(|step| *step != Step::Files || self.with_files.is_some())
            .collect()
    }

    /// The steps a rollback undoes, last first: those done and the one after them, which may
    /// have been cut off half-way.
    pub(super) fn begun(&self) -> Vec<Step> {
        let steps = self.steps();
        let begun = steps.iter().take_while(|step| self.is_done(**step)).count();
        let mut to_undo: Vec<Step> = steps
            .into_iter()
            .take(begun + 1)
            .filter(|step| !self.undone.contains(step))
            .collect();
        to_undo.reverse();
        to_undo
    }

    /// Where the manifests wait while the control plane is down (a node path).
    pub fn manifests_aside(&self, options: &RecoverOptions) -> PathBuf {
        self.run_dir(options).join("manifests")
    }

    /// Where the old data directory waits (a node path; inside it when it is a mount point).
    pub fn data_aside(&self) -> PathBuf {
        let mut aside = self.data_dir.clone().into_os_string();
        aside.push(format!(".before-recover-{}", self.run));
        PathBuf::from(aside)
    }

    /// The run's private directory (a node path): safety copies, the manifests taken out.
    pub fn run_dir(&self, options: &RecoverOptions) -> PathBuf {
        options.journal_dir.join(format!("recover-{}", self.run))
    }

    pub(super) fn path(options: &RecoverOptions) -> PathBuf {
        under(&options.root, &options.journal_dir).join("recover.json")
    }

    /// The node's last run, finished or not, if any.
    pub fn load(options: &RecoverOptions) -> Result<Option<Journal>> {
        let path = Self::path(options);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            // A journal that cannot be read may hide a run half done: never taken as no run.
            Err(error) => {
                return Err(failed(
                    "journal",
                    format!(
                        "{} cannot be read ({error}); check the node by hand, then move it away to start afresh",
                        path.display()
                    ),
                ));
            }
        };
        let journal: Journal = serde_json::from_slice(&bytes).map_err(|e| {
            failed(
                "journal",
                format!(
                    "{} cannot be read ({e}); move it away to start afresh, after checking the node by hand",
                    path.display()
                ),
            )
        })?;
        // The run's ID names what it writes: letters and digits only; and `abort` removes what
        // it recorded adding only inside the kubeadm set.
        let sound = !journal.run.is_empty()
            && journal.run.bytes().all(|b| b.is_ascii_alphanumeric())
            && [&journal.data_dir, &journal.static_pod_dir].iter().all(|dir| {
                dir.is_absolute()
                    && dir
                        .components()
                        .all(|c| matches!(c, std::path::Component::RootDir | std::path::Component::Normal(_)))
            })
            && journal.added_files.iter().flatten().all(|path| {
                path.components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
                    && crate::files_backup::in_kubeadm_set(path, true)
            });
        if !sound {
            return Err(failed(
                "journal",
                format!(
                    "{} names paths a run does not write; check the node by hand and move the journal away",
                    path.display()
                ),
            ));
        }
        Ok(Some(journal))
    }

    /// Refuses a journal whose data directory or static Pod directory is not this node's.
    pub fn check_node(&self, node: &Node) -> Result<()> {
        if self.data_dir == node.etcd.host_data_dir && self.static_pod_dir == node.static_pod_dir {
            return Ok(());
        }
        Err(failed(
            "journal",
            format!(
                "run {} recorded data directory {} and static Pod directory {}, but this node has {} and {}; check the node by hand",
                self.run,
                self.data_dir.display(),
                self.static_pod_dir.display(),
                node.etcd.host_data_dir.display(),
                node.static_pod_dir.display()
            ),
        ))
    }

    /// Written atomically (temporary name, fsync, rename), 0600.
    pub(super) fn save(&self, options: &RecoverOptions) -> Result<()> {
        let path = Self::path(options);
        let mut pending = lifeboat_core::fsio::PendingFile::create(&path)?;
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| failed("journal", e.to_string()))?;
        pending.write_all(&bytes)?;
        pending.commit()?;
        Ok(())
    }

    /// Refuses to resume a run whose rollback began: steps undone are not redone, and resuming
    /// would start etcd on data that went aside.
    pub fn check_resumable(&self) -> Result<()> {
        if self.undone.is_empty() || self.outcome.as_deref() == Some(OUTCOME_ABORTED) {
            return Ok(());
        }
        Err(failed(
            "journal",
            format!(
                "run {}'s rollback was cut off; run `lifeboat recover --kubeadm --abort` again to finish it",
                self.run
            ),
        ))
    }

    /// Whether `--abort` may roll the run back: one in progress, or one that ended with etcd
    /// recovered but the control plane not confirmed (exit 3).
    pub fn abortable(&self) -> bool {
        !self.finished
            || matches!(
                self.outcome.as_deref(),
                Some(OUTCOME_APISERVER) | Some(OUTCOME_QUORUM)
            )
    }

    /// Whether a finished run recovered the node (a new run would replace what came since).
    pub fn recovered_node(&self) -> bool {
        self.finished && self.outcome.as_deref() != Some(OUTCOME_ABORTED) && self.undone.is_empty()
    }

    /// Marks the run finished with `outcome`.
    pub(super) fn finish(&mut self, outcome: &str, options: &RecoverOptions) -> Result<()> {
        self.finished = true;
        self.outcome = Some(outcome.to_string());
        self.save(options)
    }

    pub fn is_done(&self, step: Step) -> bool {
        self.done.contains(&step)
    }

    pub(super) fn mark_undone(&mut self, step: Step, options: &RecoverOptions) -> Result<()> {
        if !self.undone.contains(&step) {
            self.undone.push(step);
        }
        self.save(options)
    }

    pub(super) fn mark(&mut self, step: Step, options: &RecoverOptions) -> Result<()> {
        if !self.is_done(step) {
            self.done.push(step);
        }
        self.save(options)
    }
}

/// The initial cluster token every member of one recovery uses, from what is restored: so each
/// node, running the same command, joins the same new cluster and none an old one.
pub fn token_for(source_identity: &str) -> String {
    let digest = sha2::Sha256::digest(source_identity.as_bytes());
    format!("lifeboat-{}", hex::encode(&digest[..8]))
}

/// What a run restores.
#[derive(Debug, Clone)]
pub struct Restoring {
    /// The backup ID or the snapshot file, as the plan shows it.
    pub source: String,
    /// What names the data for the cluster token (the backup ID, the file's sha256 trailer).
    pub identity: String,
    pub snapshot_revision: i64,
    /// Added to the restored revision, which is then marked compacted (0: neither); see
    /// docs/recover.md for its size.
    pub bump_revision: u64,
}

/// A new journal for a run restoring `restoring` on `node`.
pub fn new_journal(
    node: &Node,
    restoring: &Restoring,
    with_files: Option<String>,
    now: SystemTime,
) -> Journal {
    let run = time::OffsetDateTime::from(now)
        .format(&time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| "run".into());
    Journal {
        token: token_for(&restoring.identity),
        source: restoring.source.clone(),
        bump_revision: restoring.bump_revision,
        mark_compacted: restoring.bump_revision > 0,
        snapshot_revision: restoring.snapshot_revision,
        static_pod_dir: node.static_pod_dir.clone(),
        data_dir: node.etcd.host_data_dir.clone(),
        with_files,
        added_files: None,
        done: Vec::new(),
        undone: Vec::new(),
        finished: false,
        outcome: None,
        run,
    }
}
