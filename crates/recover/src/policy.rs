//! What a run may do before it begins: whether an earlier run is resumed, refused or replaced;
//! the revision bump; and the preflight checks that refuse what cannot work.

use super::*;

/// What the journal on the node says about a new command: the run to resume, if any, and a
/// note for a dry run.
#[derive(Debug)]
pub struct Earlier {
    /// A run that did not finish: the command resumes it (or refuses another source).
    pub in_progress: Option<Journal>,
    /// Why a real run would be refused, shown by a dry run instead.
    pub note: Option<String>,
}

/// Reads the node's last run. A finished recovery is not repeated by accident (a command run
/// again from the shell's history would discard everything written since): a new one is asked
/// for with `new_run`. A run whose rollback began is finished by `--abort`, never resumed.
pub fn earlier_run(options: &RecoverOptions, new_run: bool, dry_run: bool) -> Result<Earlier> {
    let last = Journal::load(options)?;
    // A rollback cut off is finished before anything else, a new run included: a new journal
    // would lose where the old data and manifests wait.
    if let Some(journal) = &last {
        journal.check_resumable()?;
    }
    let mut note = None;
    if let Some(finished) = last.as_ref().filter(|j| j.recovered_node())
        && !new_run
    {
        let message = format!(
            "run {} already recovered this node from {} ({}); a new recovery would discard everything written since: pass --new-run to start one",
            finished.run,
            finished.source,
            finished.outcome.as_deref().unwrap_or("finished")
        );
        if !dry_run {
            return Err(Error::Refused { message });
        }
        note = Some(message);
    }
    let in_progress = last.filter(|j| !j.finished);
    Ok(Earlier { in_progress, note })
}

/// The journal of this command: the run in progress when it restores the same source (on the
/// same node), else a new one. `true` when resumed.
pub fn resume_or_begin(
    in_progress: Option<Journal>,
    node: &Node,
    restoring: &Restoring,
    with_files: Option<String>,
    now: SystemTime,
) -> Result<(Journal, bool)> {
    match in_progress {
        Some(journal) if journal.source == restoring.source => {
            journal.check_node(node)?;
            Ok((journal, true))
        }
        Some(journal) => Err(Error::Refused {
            message: format!(
                "run {} restoring {} is in progress; rerun it with the same source to resume, or `lifeboat recover --kubeadm --abort` to roll it back",
                journal.run, journal.source
            ),
        }),
        None => Ok((new_journal(node, restoring, with_files, now), false)),
    }
}

/// The revision bump asked for.
#[derive(Debug, Clone, Copy)]
pub struct BumpRequest<'a> {
    /// `--no-bump`.
    pub none: bool,
    /// `--bump-revision N`.
    pub given: Option<u64>,
    /// What the agent's revision mark measures for the backup, if anything.
    pub measured: Option<&'a lifeboat_core::revision_gap::MeasuredBump>,
}

/// The bump a new run uses, and why: none, the one given, else the one measured from the
/// agent's revision mark, else [`DEFAULT_BUMP`]. Every member of a cluster must restore with
/// the same bump, and a mark may move between the nodes' runs: a measured bump is used only for
/// a cluster of one member.
pub fn choose_bump(node: &Node, request: BumpRequest<'_>) -> (u64, String) {
    let members = node.etcd.initial_cluster.len();
    match (request.none, request.given, request.measured) {
        (true, _, _) => (0, "none (--no-bump)".into()),
        (false, Some(bump), _) => (bump, format!("{bump} (--bump-revision)")),
        (false, None, Some(measured)) if members <= 1 => (measured.bump, measured.to_string()),
        (false, None, Some(_)) => (
            DEFAULT_BUMP,
            format!(
                "{DEFAULT_BUMP}: a cluster of {members} members restores with the same bump on every node, so the agent's measure (which may move between the runs) is not used; give the same --bump-revision on every node to choose another"
            ),
        ),
        (false, None, None) => (
            DEFAULT_BUMP,
            format!(
                "{DEFAULT_BUMP}: no revision of this cluster was recorded after the snapshot (the agent records one)"
            ),
        ),
    }
}

/// What the preflight knows of the snapshot a run restores.
#[derive(Debug, Clone)]
pub struct SnapshotFacts<'a> {
    /// The backup or file, as the plan shows it.
    pub shown: &'a str,
    /// The etcd version that wrote it, when known.
    pub version: Option<&'a str>,
    /// Its size, about what the restore writes.
    pub bytes: u64,
    /// Whether it is fetched into the run's directory (a backup) rather than read where it is.
    pub fetched: bool,
}

/// Refuses what cannot work, before anything changes; what was checked, for the plan.
/// `shown_bytes` writes a size for people.
pub fn preflight(
    node: &Node,
    snapshot: &SnapshotFacts<'_>,
    options: &RecoverOptions,
    shown_bytes: fn(u64) -> String,
) -> Result<Vec<String>> {
    let refused = |message: String| Error::Refused { message };
    let mut checks = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        return Err(refused(
            "recover must run as root: it stops static Pods and writes etcd's data directory".into(),
        ));
    }
    checks.push("running as root".to_string());
    checks.push(format!(
        "a control-plane node: {} runs etcd member {}{}",
        node.static_pod_dir.join(&node.etcd_file).display(),
        node.etcd.name,
        if node.from_files {
            " (from the files backup)"
        } else {
            ""
        }
    ));
    match (snapshot.version, &node.etcd.image_version) {
        (Some(data), Some(image)) => {
            let (Some(data_version), Some(image_version)) = (
                lifeboat_etcd_data::Version::parse(data),
                lifeboat_etcd_data::Version::parse(image),
            ) else {
                return Err(refused(format!(
                    "cannot compare the snapshot's etcd version {data} with the image's {image}"
                )));
            };
            let note = lifeboat_etcd_data::boot_rule(data_version, image_version).map_err(|why| {
                refused(format!(
                    "{} cannot be restored with the node's etcd image {}: {why}",
                    snapshot.shown, node.etcd.image
                ))
            })?;
            checks.extend(note);
            checks.push(format!("etcd {data} data on etcd {image} ({})", node.etcd.image));
        }
        _ => checks.push(format!(
            "etcd version not compared (snapshot {}, image {})",
            snapshot.version.unwrap_or("unknown"),
            node.etcd.image
        )),
    }
    // The restored directory is about the snapshot's size, and the old one is kept; a backup is
    // fetched into the run's directory, beside the safety snapshot.
    let fetched = if snapshot.fetched { snapshot.bytes } else { 0 };
    for need in space_needs(options, node, snapshot.bytes, fetched)? {
        if need.free < need.needed {
            return Err(refused(format!(
                "{} has {} free, {} need about {}; free space there (the old data directory is kept, not deleted)",
                need.path.display(),
                shown_bytes(need.free),
                need.what,
                shown_bytes(need.needed)
            )));
        }
        checks.push(format!(
            "{} free at {} (about {} needed for {})",
            shown_bytes(need.free),
            need.path.display(),
            shown_bytes(need.needed),
            need.what
        ));
    }
    Ok(checks)
}
