//! The journal of a run: its parameters and the steps done, rewritten after each step, checked
//! against what a run would have written before anything it names is followed.

use super::*;

/// The steps, in order; the journal records the ones done. `files` runs only with a files
/// backup to put in place.
pub(super) const ALL_STEPS: [&str; 8] = [
    "safety-copy",
    "stop",
    "data-aside",
    "files",
    "restore",
    "start-etcd",
    "start-apiserver",
    "start-rest",
];

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
    pub static_pod_dir: PathBuf,
    pub etcd_file: String,
    pub apiserver_file: Option<String>,
    /// Where the manifests wait while the control plane is down (a node path).
    pub manifests_aside: PathBuf,
    pub data_dir: PathBuf,
    pub data_aside: PathBuf,
    /// The files backup put in place first (`--with-files`), by ID.
    #[serde(default)]
    pub with_files: Option<String>,
    /// What the files backup adds to the node (relative to `/`; what it replaces is in
    /// `before-files.tar`), recorded before it is placed: `abort` removes it.
    #[serde(default)]
    pub added_files: Option<Vec<PathBuf>>,
    pub done: Vec<String>,
    pub finished: bool,
    /// How a finished run ended: `recovered`, `apiserver-not-ready`, `quorum-pending` or
    /// `aborted`.
    #[serde(default)]
    pub outcome: Option<String>,
}

impl Journal {
    /// The steps of this run, in order.
    pub fn steps(&self) -> Vec<&'static str> {
        ALL_STEPS
            .into_iter()
            .filter(|step| *step != "files" || self.with_files.is_some())
            .collect()
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
        // What the journal names is renamed and removed: it must be what this run would have
        // written, not whatever the file says.
        let mut aside = journal.data_dir.clone().into_os_string();
        aside.push(format!(".before-recover-{}", journal.run));
        let sound = !journal.run.is_empty()
            && journal.run.bytes().all(|b| b.is_ascii_alphanumeric())
            && journal.manifests_aside == journal.run_dir(options).join("manifests")
            && journal.data_aside.as_os_str() == aside
            // `abort` removes what it lists: only ever inside the kubeadm set.
            && journal.added_files.iter().flatten().all(|path| {
                path.components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
                    && crate::recover_files::in_kubeadm_set(path, true)
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
        let mut pending = crate::fsio::PendingFile::create(&path)?;
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| failed("journal", e.to_string()))?;
        pending.write_all(&bytes)?;
        pending.commit()?;
        Ok(())
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
        self.finished && self.outcome.as_deref() != Some(OUTCOME_ABORTED)
    }

    /// Marks the run finished with `outcome`.
    pub(super) fn finish(&mut self, outcome: &str, options: &RecoverOptions) -> Result<()> {
        self.finished = true;
        self.outcome = Some(outcome.to_string());
        self.save(options)
    }

    pub fn is_done(&self, step: &str) -> bool {
        self.done.iter().any(|d| d == step)
    }

    pub(super) fn mark(&mut self, step: &str, options: &RecoverOptions) -> Result<()> {
        if !self.is_done(step) {
            self.done.push(step.to_string());
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
    options: &RecoverOptions,
    restoring: &Restoring,
    with_files: Option<String>,
    now: SystemTime,
) -> Journal {
    let run = time::OffsetDateTime::from(now)
        .format(&time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| "run".into());
    let data_dir = node.etcd.host_data_dir.clone();
    let mut aside = data_dir.clone().into_os_string();
    aside.push(format!(".before-recover-{run}"));
    Journal {
        token: token_for(&restoring.identity),
        source: restoring.source.clone(),
        bump_revision: restoring.bump_revision,
        mark_compacted: restoring.bump_revision > 0,
        snapshot_revision: restoring.snapshot_revision,
        static_pod_dir: node.static_pod_dir.clone(),
        etcd_file: node.etcd_file.clone(),
        apiserver_file: node.apiserver.as_ref().map(|(file, _)| file.clone()),
        manifests_aside: options
            .journal_dir
            .join(format!("recover-{run}"))
            .join("manifests"),
        data_dir,
        data_aside: PathBuf::from(aside),
        with_files,
        added_files: None,
        done: Vec::new(),
        finished: false,
        outcome: None,
        run,
    }
}
