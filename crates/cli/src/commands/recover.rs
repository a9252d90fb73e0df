//! `lifeboat recover --kubeadm (ID|latest|--file SNAPSHOT)`: the kubeadm restore runbook as one
//! resumable command (docs/recover.md); `--abort` rolls a run back.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::Args;
use lifeboat_core::Cancel;
use lifeboat_core::backups::fetch_snapshot_into;
use lifeboat_core::files::fetch_files;
use lifeboat_core::pitr::{PointPlan, PointTarget, ReplayReader, SegmentFeed};
use lifeboat_core::private_file::UnlinkedFile;
use lifeboat_core::snapshot_restore::RestoreOptions;
use lifeboat_etcd_data::pitr::Replay;
use lifeboat_recover::files_backup::{check_placeable, choose_files_backup};
use lifeboat_recover::source::{
    RecoveryPin, SourceRequest, choose_etcd_backup, new_cluster_id, node_cluster_id, remove_pins_of_run,
    write_pin,
};
use lifeboat_recover::{
    BumpRequest, Journal, Narrator, NodeHost, Outcome, RecoverOptions, Restoring, Setting, SnapshotFacts,
    abort, check_files_node, choose_bump, discover, earlier_run, lock, old_data, plan, preflight,
    restore_file, resume_or_begin, run, under,
};
use lifeboat_repo::{BackupId, Identity, Repository};

use crate::commands::pitr::{PointArgs, point_plan};
use crate::exit::{Failure, cancel_on_signals};
use crate::output::OutputFormat;
use crate::repo_flags::{IdentityFlags, RepoFlags};

/// etcd is restored but not confirmed serving with the API server: the API server did not
/// become ready in time, or the member waits for the other members of its cluster.
pub const APISERVER_NOT_READY: u8 = 3;

/// Arguments of `recover`.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The backup to restore: its ID, or `latest` (the newest etcd backup).
    #[arg(value_name = "ID", conflicts_with_all = ["file", "abort"])]
    id: Option<String>,
    /// Put this files backup (ID or `latest`) in place first: PKI, kubeconfigs, static Pod
    /// manifests, kubelet configuration, all or nothing (the current ones are saved first).
    #[arg(long, value_name = "ID", conflicts_with = "abort")]
    with_files: Option<String>,
    /// This node's host name, as `backup --host` recorded it [default: this machine's]: the
    /// files backup put in place must be this host's.
    #[arg(long, value_name = "NAME")]
    host: Option<String>,
    /// Put another host's files backup in place (a node rebuilt under a new name).
    #[arg(long, value_name = "NAME", requires = "with_files")]
    files_from_host: Option<String>,
    /// Restore a point in time: a base backup with the segments captured after it replayed.
    #[command(flatten)]
    point: PointArgs,
    /// Restore this snapshot file instead of a backup.
    #[arg(long, value_name = "SNAPSHOT", conflicts_with_all = ["abort", "to_revision", "to_time"])]
    file: Option<PathBuf>,
    /// Read the node as kubeadm set it up (required: the only kind of node supported).
    #[arg(long, required = true)]
    kubeadm: bool,
    /// Print the plan and change nothing.
    #[arg(long, conflicts_with = "abort")]
    dry_run: bool,
    /// Go ahead without asking (required when not on a terminal).
    #[arg(long)]
    yes: bool,
    /// Roll back the run in progress, or one that ended with exit 3: the old data directory and
    /// every manifest as they were.
    #[arg(long, conflicts_with_all = ["to_revision", "to_time"])]
    abort: bool,
    /// Start a new recovery on a node that an earlier run already recovered (it replaces what
    /// was written since).
    #[arg(long, conflicts_with = "abort")]
    new_run: bool,
    /// Start another recovery of the cluster than the one another member began (the backup
    /// pinned in the repository), from the backup given.
    #[arg(long, conflicts_with = "abort")]
    replace_pin: bool,
    /// Restore a backup of another etcd cluster than this node's member belongs to.
    #[arg(long, conflicts_with = "abort")]
    force_cluster: bool,
    /// The node's root: every path is taken under it (another tree, a mounted disk).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// Where the journal, the safety snapshot and the manifests taken out are kept (a node path).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/lifeboat")]
    journal_dir: PathBuf,
    /// Add N to the restored revision, and mark it compacted [default: 1000000000].
    #[arg(long, value_name = "N", conflicts_with = "no_bump")]
    bump_revision: Option<u64>,
    /// No revision bump and no compaction mark: only for a restore into an isolated cluster that
    /// no client has seen.
    #[arg(long)]
    no_bump: bool,
    /// How long the control plane may take to stop.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    stop_timeout: Duration,
    /// How long the restored etcd may take to answer.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    etcd_timeout: Duration,
    /// How long the API server may take to be ready (exit 3 when it is not).
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    apiserver_timeout: Duration,
    #[command(flatten)]
    identity: IdentityFlags,
    #[command(flatten)]
    repo: RepoFlags,
}

/// Steps and notes on stderr, as the run goes.
struct Printed;

impl Narrator for Printed {
    #[allow(clippy::print_stderr)]
    fn step(&self, number: usize, of: usize, text: &str) {
        eprintln!("[{number}/{of}] {text}");
    }

    #[allow(clippy::print_stderr)]
    fn note(&self, text: &str) {
        eprintln!("      {text}");
    }
}

/// The machine the run is on. `LIFEBOAT_FAILPOINT=recover:STEP:ACTION` makes the process kill
/// itself there, so tests crash a run at an exact point.
fn node_host() -> NodeHost {
    NodeHost {
        failpoint: std::env::var("LIFEBOAT_FAILPOINT").ok(),
    }
}

/// What is restored, and what it says about itself.
enum Source {
    Backup {
        repo: Box<Repository>,
        id: BackupId,
        identities: Vec<Identity>,
        /// A point in time: the revisions captured after the backup, replayed to its revision.
        point: Option<Box<PointPlan>>,
    },
    File(PathBuf),
}

struct Resolved {
    source: Source,
    /// The backup ID or the file, as the plan shows it.
    shown: String,
    /// What names the data for the cluster token (the backup ID, the file's sha256 trailer).
    identity: String,
    revision: i64,
    version: Option<String>,
    bytes: u64,
    /// The revision bump the agent's revision mark measures for this backup, if any.
    measured_bump: Option<lifeboat_core::revision_gap::MeasuredBump>,
    /// How the backup was chosen, for the plan.
    why: Option<String>,
    /// The pin a new run writes for the other members.
    pin: Option<RecoveryPin>,
}

async fn resolve(args: &RecoverArgs, node_cluster: Option<u64>) -> anyhow::Result<Resolved> {
    if let Some(file) = &args.file {
        let report = lifeboat_core::snapshot_file::verify(file)?;
        if !report.findings.is_empty() {
            bail!(
                "{} is damaged ({} findings; `lifeboat snapshot verify` lists them); restore another snapshot",
                file.display(),
                report.findings.len()
            );
        }
        let facts = lifeboat_core::snapshot_file::store_facts(file)?;
        let bytes = std::fs::metadata(file)?.len();
        return Ok(Resolved {
            shown: file.display().to_string(),
            identity: trailer_hex(file)?,
            revision: report.status.map_or(0, |s| s.revision),
            version: facts.cluster_version,
            bytes,
            measured_bump: None,
            why: None,
            pin: None,
            source: Source::File(file.clone()),
        });
    }
    if args.id.is_none() && args.point.target().is_none() {
        bail!(
            "name the backup to restore (ID or latest), a point (--to-revision, --to-time) or give --file SNAPSHOT"
        );
    }
    if args.point.to_time.is_some_and(|at| at.relative) {
        bail!(
            "--to-time takes an RFC 3339 time here (2026-12-06T03:12:00Z), not a duration ago: every member, and a resumed run, must restore the same point"
        );
    }
    let repo = args.repo.open().await?;
    let identities = args.identity.require_for(&repo)?;
    // A point resolves to its base backup and revision, which every member then restores.
    let point = match args.point.target() {
        Some(target) => {
            let cluster = args.point.cluster.or(node_cluster);
            Some(point_plan(&repo, cluster, target, &identities).await?)
        }
        None => None,
    };
    let wanted = match (&point, &args.id) {
        (Some(point), _) => point.base.id.to_string(),
        (None, id) => id.clone().unwrap_or_else(|| "latest".into()),
    };
    let chosen = choose_etcd_backup(
        &repo,
        &SourceRequest {
            wanted: &wanted,
            revision: point.as_ref().map(|p| p.revision),
            // A node that lost its data directory still honours the pin of the point's cluster.
            node_cluster: node_cluster.or(point.as_ref().map(|p| p.cluster_id)),
            force_cluster: args.force_cluster,
            replace_pin: args.replace_pin,
        },
    )
    .await?;
    let manifest = chosen.manifest;
    let id = manifest.id.clone();
    let etcd = manifest
        .etcd
        .as_ref()
        .with_context(|| format!("backup {id} holds no etcd snapshot; choose an etcd backup"))?;
    // `latest` while another member's point-in-time recovery is pinned: the same point, from
    // the same base.
    let point = match (point, chosen.revision) {
        (Some(point), _) => Some(point),
        (None, Some(revision)) => {
            let cluster = u64::from_str_radix(&etcd.cluster_id, 16).ok();
            let plan = point_plan(&repo, cluster, PointTarget::Revision(revision), &identities).await?;
            if plan.base.id != id {
                bail!(
                    "the pinned recovery restores backup {id} at revision {revision}, but revision {revision} is now reached from backup {}: give --to-revision {revision} on every member, or --replace-pin",
                    plan.base.id
                );
            }
            Some(plan)
        }
        (None, None) => None,
    };
    let measured_bump =
        lifeboat_core::revision_gap::measured_bump(&repo, &manifest, SystemTime::now()).await?;
    let backup_bytes: u64 = manifest.artefacts.iter().map(|a| a.plain_size).sum();
    let (shown, identity, revision, bytes) = match &point {
        // Named by the cluster and revision: the cluster token every member derives from it.
        Some(point) => (
            format!("backup {id} at revision {}", point.revision),
            format!("{}@{}", etcd.cluster_id, point.revision),
            point.revision,
            backup_bytes + point.segments.iter().map(|s| s.artefact.plain_size).sum::<u64>(),
        ),
        None => (
            format!("backup {id}"),
            id.to_string(),
            etcd.revision,
            backup_bytes,
        ),
    };
    let why = match &point {
        Some(point) => format!(
            "{}; {} captured segments replayed after it",
            chosen.why,
            point.segments.len()
        ),
        None => chosen.why,
    };
    Ok(Resolved {
        measured_bump,
        why: Some(why),
        pin: chosen.pin,
        shown,
        identity,
        revision,
        version: Some(etcd.version.clone()),
        bytes,
        source: Source::Backup {
            repo: Box::new(repo),
            id,
            identities,
            point: point.map(Box::new),
        },
    })
}

/// Removes the repository's pins written by run `run`.
async fn remove_pin(args: &RecoverArgs, run: &str) -> anyhow::Result<usize> {
    let repo = args.repo.open().await?;
    Ok(remove_pins_of_run(&repo, run).await?)
}

/// The snapshot's own sha256 (its trailer): names it without reading it whole.
fn trailer_hex(file: &Path) -> anyhow::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut handle = std::fs::File::open(file)?;
    handle.seek(SeekFrom::End(-32))?;
    let mut trailer = [0u8; 32];
    handle.read_exact(&mut trailer)?;
    Ok(trailer.iter().map(|b| format!("{b:02x}")).collect())
}

fn options(args: &RecoverArgs) -> RecoverOptions {
    RecoverOptions {
        root: args.root.clone(),
        journal_dir: args.journal_dir.clone(),
        stop_timeout: args.stop_timeout,
        etcd_timeout: args.etcd_timeout,
        apiserver_timeout: args.apiserver_timeout,
    }
}

fn confirm(yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "recover stops the control plane and replaces etcd's data: pass --yes to go ahead (--dry-run shows the plan)"
        );
    }
    #[allow(clippy::print_stderr)]
    {
        eprint!("Type yes to carry out this plan: ");
    }
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        bail!("not confirmed; nothing was changed");
    }
    Ok(())
}

fn restorer(snapshot: PathBuf, replay: Option<Arc<dyn Replay>>) -> lifeboat_recover::RestoreFn<'static> {
    Box::new(move |options: RestoreOptions| {
        let options = RestoreOptions { replay, ..options };
        Box::pin(restore_file(snapshot, options))
    })
}

/// The snapshot a run restores: the file given, or the backup fetched into a private file with
/// no name, which goes with the process however it ends (it holds every Secret in the clear).
enum Fetched {
    Given(PathBuf),
    Private(UnlinkedFile),
}

impl Fetched {
    fn path(&self) -> PathBuf {
        match self {
            Fetched::Given(path) => path.clone(),
            Fetched::Private(file) => file.path().to_path_buf(),
        }
    }
}

/// The snapshot the run restores, on the node and verified natively before anything changes: the
/// file given, or the backup fetched (decrypted, checked against its manifest) into a private
/// file of no name in the run's directory, on the node's disk rather than in memory.
async fn snapshot_for(
    resolved: &Resolved,
    journal: &Journal,
    options: &RecoverOptions,
    cancel: &Cancel,
) -> anyhow::Result<Fetched> {
    let fetched = match &resolved.source {
        // Verified when it was resolved.
        Source::File(file) => return Ok(Fetched::Given(file.clone())),
        Source::Backup {
            repo, id, identities, ..
        } => {
            let run_dir = under(&options.root, &journal.run_dir(options));
            std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
                .create(&run_dir)
                .with_context(|| format!("cannot create {}", run_dir.display()))?;
            let private = UnlinkedFile::create(&run_dir)?;
            let manifest = repo.manifest(id).await?;
            let bar = crate::progress::TerminalBar::new("fetch");
            let shown = run_dir.join("(fetched snapshot)");
            fetch_snapshot_into(
                repo,
                &manifest,
                identities,
                (private.handle()?, &shown),
                &bar,
                cancel,
            )
            .await?;
            Fetched::Private(private)
        }
    };
    let report = lifeboat_core::snapshot_file::verify(&fetched.path())?;
    if !report.findings.is_empty() {
        bail!(
            "{} is damaged ({} findings; `lifeboat snapshot verify` lists them); nothing on the node was changed, restore another backup",
            resolved.shown,
            report.findings.len()
        );
    }
    Ok(fetched)
}

pub async fn run_command(args: RecoverArgs, _format: OutputFormat) -> anyhow::Result<()> {
    let options = options(&args);
    let host = node_host();
    let setting = Setting {
        options: &options,
        host: &host,
        narrator: &Printed,
    };
    let mut out = std::io::stdout().lock();
    // Before anything is read or asked: what another run changes meanwhile is never planned on.
    let _lock = lock(&options, args.dry_run)?;
    if args.abort {
        let last = Journal::load(&options)?;
        let Some(mut journal) = last.filter(Journal::abortable) else {
            bail!(
                "no recovery in progress under {} and none that ended unconfirmed (exit 3); nothing to roll back",
                options.journal_dir.display()
            );
        };
        // A node that lost its static Pods has none until the files backup's are in place.
        let node = discover(&options.root, Some(&journal.manifests_aside(&options)), None).ok();
        if let Some(node) = &node {
            journal.check_node(node)?;
        }
        for line in abort(node.as_ref(), &mut journal, setting).await? {
            writeln!(out, "{line}")?;
        }
        // The recovery did not happen: its pin no longer holds for the other members.
        if journal.source.starts_with("backup ") {
            match remove_pin(&args, &journal.run).await {
                Ok(0) => {}
                Ok(_) => writeln!(out, "the repository's pin of this recovery is removed")?,
                Err(error) => writeln!(
                    out,
                    "the repository's pin of this recovery could not be removed ({error:#}); other members' `latest` still resolves to {}",
                    journal.source
                )?,
            }
        }
        writeln!(
            out,
            "Run {} rolled back: the node is as it was before it.",
            journal.run
        )?;
        return Ok(());
    }
    let earlier = earlier_run(&options, args.new_run, args.dry_run)?;
    if let Some(note) = &earlier.note {
        writeln!(out, "Note: {note}.")?;
    }
    let in_progress = earlier.in_progress;
    let aside = in_progress.as_ref().map(|j| j.manifests_aside(&options));
    let on_node = discover(&options.root, aside.as_deref(), None);
    let files_given = match &in_progress {
        Some(journal) => journal.with_files.is_some(),
        None => args.with_files.is_some(),
    };
    // The node is checked first; only a files backup can stand in for its static Pods.
    let on_node = match (on_node, files_given) {
        (Err(error), false) => return Err(error.into()),
        (on_node, _) => on_node,
    };
    // The cluster this node's member belongs to: read from the old data once a run moved it.
    let cluster_dir = match (&in_progress, &on_node) {
        (Some(journal), _) if old_data(journal, &options.root).exists() => {
            Some(old_data(journal, &options.root))
        }
        (_, Ok(node)) => Some(under(&options.root, &node.etcd.host_data_dir)),
        (_, Err(_)) => None,
    };
    let resolved = resolve(&args, cluster_dir.as_deref().and_then(node_cluster_id)).await?;
    let files_id = match (&in_progress, &args.with_files) {
        (Some(journal), _) => journal
            .with_files
            .clone()
            .map(|id| (id, "as the run began".to_string())),
        (None, None) => None,
        (None, Some(text)) => {
            let repo = args.repo.open().await?;
            let backups = repo.list().await?.backups;
            let host = args.host.clone().unwrap_or_else(super::host_name);
            let chosen = choose_files_backup(
                &backups,
                text,
                &host,
                args.files_from_host.as_deref(),
                repo.storage().repo(),
            )?;
            Some((chosen.id.to_string(), format!("host {}", chosen.host)))
        }
    };
    let files_shown = files_id.as_ref().map(|(id, host)| format!("{id} ({host})"));
    let files_id = files_id.map(|(id, _)| id);
    // The files backup, checked against its manifest before anything on the node changes; a
    // node that lost its /etc/kubernetes is read from it.
    let cancel = cancel_on_signals();
    let files_pending = files_id.is_some()
        && !in_progress
            .as_ref()
            .is_some_and(|j| j.is_done(lifeboat_recover::Step::Files));
    let files = match (&files_id, files_pending) {
        (Some(id), true) => {
            let repo = args.repo.open().await?;
            let identities = args.identity.require_for(&repo)?;
            let id = lifeboat_repo::BackupId::parse(id).with_context(|| {
                format!("the journal names files backup {id:?}, which is not a backup ID")
            })?;
            let tar = fetch_files(&repo, &id, &identities, &cancel).await?;
            check_placeable(&tar, &id.to_string(), &options.root)?;
            Some(tar)
        }
        _ => None,
    };
    let node = match (on_node, &files) {
        (Ok(node), _) => node,
        (Err(_), Some(tar)) => discover(&options.root, aside.as_deref(), Some(tar))?,
        (Err(error), None) => return Err(error.into()),
    };
    let bump = choose_bump(
        &node,
        BumpRequest {
            none: args.no_bump,
            given: args.bump_revision,
            measured: resolved.measured_bump.as_ref(),
        },
    );
    let restoring = Restoring {
        source: resolved.shown.clone(),
        identity: resolved.identity.clone(),
        snapshot_revision: resolved.revision,
        bump_revision: bump.0,
    };
    let (mut journal, resuming) = resume_or_begin(
        in_progress,
        &node,
        &restoring,
        files_id.clone(),
        SystemTime::now(),
    )?;
    if let Some(tar) = &files {
        check_files_node(&journal, &options.root, tar)?;
    }
    let facts = SnapshotFacts {
        shown: &resolved.shown,
        version: resolved.version.as_deref(),
        bytes: resolved.bytes,
        fetched: matches!(resolved.source, Source::Backup { .. }),
    };
    let checks = preflight(&node, &facts, &options, crate::output::si_bytes)?;
    writeln!(
        out,
        "Recovery plan for {} on {}:",
        resolved.shown,
        options.root.display()
    )?;
    writeln!(out, "  0. preflight: {}", checks.join("; "))?;
    if let Some(why) = &resolved.why {
        writeln!(out, "     backup: {why}")?;
    }
    if let Some(files) = &files_shown {
        writeln!(out, "     files backup: {files}")?;
    }
    match resuming {
        true => writeln!(
            out,
            "     revision bump: {}, as the run began",
            journal.bump_revision
        )?,
        false => writeln!(out, "     revision bump: {}", bump.1)?,
    }
    for (number, step) in plan(&node, &journal, &options).iter().enumerate() {
        let done = if journal
            .steps()
            .get(number)
            .is_some_and(|step| journal.is_done(*step))
        {
            " (done)"
        } else {
            ""
        };
        writeln!(out, "  {}. {step}{done}", number + 1)?;
    }
    if args.dry_run {
        writeln!(out, "Dry run: nothing was changed.")?;
        return Ok(());
    }
    out.flush()?;
    if resuming {
        writeln!(out, "Resuming run {} after its last completed step.", journal.run)?;
    } else {
        confirm(args.yes)?;
    }
    let snapshot = snapshot_for(&resolved, &journal, &options, &cancel).await?;
    // The captured segments, read and checked before the pin tells other members to follow
    // and before the node is touched; the restore reads them again, a segment at a time.
    let replay: Option<Arc<dyn Replay>> = match &resolved.source {
        Source::Backup {
            repo,
            identities,
            point: Some(point),
            ..
        } => {
            let mut reader = ReplayReader::new(repo, point, identities);
            while reader.next_chunk().await?.is_some() {}
            Some(SegmentFeed::new(repo, point, identities))
        }
        _ => None,
    };
    if let (Some(pin), Source::Backup { repo, .. }, false) = (&resolved.pin, &resolved.source, resuming) {
        // Fetched and verified: the other members' `latest` resolves to this backup from now on.
        let initial_cluster: Vec<String> = node
            .etcd
            .initial_cluster
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect();
        let pin = RecoveryPin {
            run: journal.run.clone(),
            host: args.host.clone().unwrap_or_else(super::host_name),
            new_cluster_id: new_cluster_id(&initial_cluster.join(","), &journal.token)
                .map(|id| format!("{id:x}"))
                .unwrap_or_default(),
            ..pin.clone()
        };
        let cluster = u64::from_str_radix(&pin.cluster_id, 16).unwrap_or_default();
        write_pin(repo, &pin, cluster, SystemTime::now()).await?;
    }
    let outcome = run(
        &node,
        &mut journal,
        setting,
        restorer(snapshot.path(), replay),
        files.as_deref(),
        &cancel,
    )
    .await?;
    drop(snapshot);
    writeln!(
        out,
        "etcd is recovered from {} on member {}.",
        resolved.shown, node.etcd.name
    )?;
    writeln!(
        out,
        "The old data directory is kept as {}; remove it once the cluster is healthy.",
        old_data(&journal, &options.root).display()
    )?;
    writeln!(
        out,
        "Next: restart the kubelet on every other node (systemctl restart kubelet), so that its pods reconnect and relist;"
    )?;
    writeln!(
        out,
        "for a cluster of several members, run the same command with the same backup on every control-plane node."
    )?;
    match outcome {
        Outcome::Recovered => Ok(()),
        Outcome::QuorumPending => Err(Failure {
            code: APISERVER_NOT_READY,
            message: format!(
                "member {} is restored but its cluster has no quorum yet: run the same command on the other members ({})",
                node.etcd.name,
                node.etcd
                    .initial_cluster
                    .iter()
                    .filter(|m| m.name != node.etcd.name)
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
        .into()),
        Outcome::ApiServerNotReady => Err(Failure {
            code: APISERVER_NOT_READY,
            message: format!(
                "etcd is recovered but the API server was not ready within {} s; check its container log (crictl logs), it may need more time",
                args.apiserver_timeout.as_secs()
            ),
        }
        .into()),
    }
}
