//! The run as a typed step machine: each [`Step`] says what it will do (`describe`), does it
//! (`apply`), knows whether it is done (`is_done`) and undoes it (`undo`). A crash may fall
//! between any two actions: `apply` and `undo` are safe to repeat from wherever one stopped.

use super::*;

/// The steps of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// A snapshot of the running member (and the node's files, with a files backup).
    SafetyCopy,
    /// The control plane's manifests out of the static Pod directory; wait until it is gone.
    Stop,
    /// The old data directory set aside, never deleted.
    DataAside,
    /// The files backup put in place (only with one).
    Files,
    /// The snapshot restored into the data directory.
    Restore,
    /// etcd's manifest back; wait until it answers.
    StartEtcd,
    /// The API server's manifest back; wait until it is ready.
    StartApiserver,
    /// The other manifests back.
    StartRest,
}

/// How a step ended when it did not fail.
pub(super) enum Applied {
    /// Done: the next step follows.
    Done,
    /// The run ends here with this outcome, every manifest back.
    Ended(Outcome),
}

/// What an action needs to know: the run's options, the machine, who hears about it, and the
/// step it belongs to (for failpoints).
#[derive(Clone, Copy)]
pub(super) struct Cx<'a> {
    pub options: &'a RecoverOptions,
    pub host: &'a dyn Host,
    pub narrator: &'a dyn Narrator,
    pub step: Step,
}

impl Cx<'_> {
    pub fn root(&self) -> &Path {
        &self.options.root
    }

    /// The run reached `action` of its step.
    pub fn reached(&self, action: &str) -> Result<()> {
        self.host.reached(self.step, action)
    }
}

/// What only some steps use: the restore, once, and the files backup.
pub(super) struct Inputs<'a, 'b> {
    pub restore: Option<RestoreFn<'a>>,
    pub files: Option<&'b [u8]>,
    pub cancel: &'b Cancel,
}

impl Step {
    pub const ALL: [Step; 8] = [
        Step::SafetyCopy,
        Step::Stop,
        Step::DataAside,
        Step::Files,
        Step::Restore,
        Step::StartEtcd,
        Step::StartApiserver,
        Step::StartRest,
    ];

    /// Its name in the journal, the plan and failpoints.
    pub fn name(self) -> &'static str {
        match self {
            Step::SafetyCopy => "safety-copy",
            Step::Stop => "stop",
            Step::DataAside => "data-aside",
            Step::Files => "files",
            Step::Restore => "restore",
            Step::StartEtcd => "start-etcd",
            Step::StartApiserver => "start-apiserver",
            Step::StartRest => "start-rest",
        }
    }

    pub fn is_done(self, journal: &Journal) -> bool {
        journal.is_done(self)
    }

    /// Carries the step out (or finishes it after a crash in its middle).
    pub(super) async fn apply(
        self,
        node: &mut Node,
        journal: &mut Journal,
        inputs: &mut Inputs<'_, '_>,
        cx: Cx<'_>,
    ) -> Result<Applied> {
        match self {
            Step::SafetyCopy => safety_copy(node, journal, inputs.files, cx, inputs.cancel).await?,
            Step::Stop => stop(node, journal, cx).await?,
            Step::DataAside => data_aside(journal, cx)?,
            Step::Files => {
                let tar = inputs
                    .files
                    .ok_or_else(|| failed("files", "the files backup was not fetched"))?;
                check_files_node(journal, cx.root(), tar)?;
                if journal.added_files.is_none() {
                    // Once, before anything is placed: a rerun would find its own additions.
                    journal.added_files = Some(added_files(journal, cx.options, tar)?);
                    journal.save(cx.options)?;
                    cx.reached("recorded-additions")?;
                }
                put_files(journal, tar, cx)?;
                // The restore follows the etcd.yaml that came with the files.
                *node = discover(cx.root(), Some(&journal.manifests_aside(cx.options)), None)?;
                journal.check_node(node)?;
            }
            Step::Restore => {
                let restore = inputs
                    .restore
                    .take()
                    .ok_or_else(|| failed("restore", "the restore ran once already"))?;
                restore_step(node, journal, restore, cx).await?;
            }
            // Its cluster needs the other members: the rest goes back, nothing more to wait for.
            Step::StartEtcd if !start_etcd(node, journal, cx).await? => {
                put_back(journal, &aside_names(journal, cx)?, cx)?;
                return Ok(Applied::Ended(Outcome::QuorumPending));
            }
            // The rest goes back all the same: the node is left as the kubelet expects.
            Step::StartApiserver if !start_apiserver(node, journal, cx).await? => {
                put_back(journal, &aside_names(journal, cx)?, cx)?;
                return Ok(Applied::Ended(Outcome::ApiServerNotReady));
            }
            Step::StartEtcd | Step::StartApiserver => {}
            Step::StartRest => put_back(journal, &aside_names(journal, cx)?, cx)?,
        }
        Ok(Applied::Done)
    }

    /// Undoes the step, whether it finished or was cut off (or never began: then nothing is
    /// there to undo). Lines say what was done, for the caller to show.
    pub(super) async fn undo(
        self,
        node: Option<&Node>,
        journal: &Journal,
        cx: Cx<'_>,
    ) -> Result<Vec<String>> {
        let mut done = Vec::new();
        match self {
            Step::SafetyCopy | Step::StartApiserver | Step::StartRest => {}
            Step::Restore => done.extend(restored_aside(journal, cx)?),
            // A restored etcd (and what followed it) may run: stopped again.
            Step::StartEtcd => match node {
                Some(node) => stop(node, journal, cx).await?,
                None => {
                    return Err(failed(
                        "abort",
                        format!(
                            "the node has no etcd static Pod in {} or {}; check the node by hand",
                            journal.static_pod_dir.display(),
                            journal.manifests_aside(cx.options).display()
                        ),
                    ));
                }
            },
            Step::Files => {
                let before = under(cx.root(), &journal.run_dir(cx.options)).join("before-files.tar");
                if before.exists() {
                    let tar = std::fs::read(&before).map_err(io("read", &before))?;
                    remove_added_files(journal, cx)?;
                    put_files(journal, &tar, cx)?;
                    done.push(format!(
                        "the node's files are back as they were (from {})",
                        before.display()
                    ));
                }
            }
            Step::DataAside => done.extend(data_back(journal, cx)?),
            Step::Stop => {
                let names = aside_names(journal, cx)?;
                put_back(journal, &names, cx)?;
                if !names.is_empty() {
                    done.push(format!(
                        "{} manifests are back in {}",
                        names.len(),
                        journal.static_pod_dir.display()
                    ));
                }
            }
        }
        Ok(done)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
