//! `drill`: the backup-validation pipeline operators copy from guides and never run, as one timed
//! operation. Fetch (download, decrypt, decompress, sha256), verify (native), restore (native, in
//! a private temporary directory), boot a throwaway etcd on 127.0.0.1 until its first
//! linearizable read, check (revision, keys, HashKV against the member's at backup time,
//! Kubernetes content, freshness), then tear down. RTO is the wall time until the checks pass.
//! A point-in-time drill restores a base backup with captured revisions replayed, and checks
//! the restored data's HashKV at the point against the live member's recorded one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::Either;
use lifeboat_etcd_conn::{ConnectOptions, connect_first_healthy};
use lifeboat_etcd_data::pitr::{Replay, ReplayReport};
use lifeboat_etcd_data::{HashKv, HashRules, Trailer};
use lifeboat_etcd_proc::{EtcdBinary, EtcdProcess, InitialCluster, Launch, free_port};
use lifeboat_repo::{BackupId, EtcdFacts, Identity, Manifest, Repository, timestamp};

use crate::backups::{HashKvComparison, hash_kv_comparison};
use crate::blocking::{blocking, joined, start_blocking};
pub use crate::drill_report::{
    Check, DrillReport, Kept, KubernetesContent, Outcome, Phase, Results, Rpo, Rto,
};
use crate::pitr::PointPlan;
use crate::snapshot_restore::{RestoreOptions, restore};
use crate::{Cancel, Error, Progress, Result};

/// How a drill runs.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    pub binary: EtcdBinary,
    /// Members of the restored cluster: 1, or 3 to prove a quorum forms.
    pub members: usize,
    /// A backup older than this is stale.
    pub max_age: Duration,
    /// A stale backup fails the drill instead of warning.
    pub fail_on_stale: bool,
    /// The recovery time objective the measured RTO is compared with.
    pub rto_objective: Duration,
    /// Leave the restored etcd running and its directory in place.
    pub keep: bool,
    /// Where the private temporary directory is made.
    pub work_dir: PathBuf,
    /// The live cluster, to measure the revision lag.
    pub live: Option<ConnectOptions>,
    /// How long each member may take to serve its first linearizable read.
    pub boot_timeout: Duration,
}

/// What a drill restores.
pub enum DrillSource<'a> {
    Backup {
        repo: &'a Repository,
        id: BackupId,
        identities: Vec<Identity>,
    },
    /// A point in time: the plan's base backup with its captured segments replayed.
    Point {
        repo: &'a Repository,
        plan: Box<PointPlan>,
        identities: Vec<Identity>,
    },
    File(PathBuf),
}

/// The report's fields as the run fills them.
struct Run {
    started: Instant,
    phase_started: Instant,
    phases: Vec<Phase>,
    checks: Vec<Check>,
}

impl Run {
    fn phase(&mut self, name: &str) {
        self.phases.push(Phase {
            name: name.into(),
            seconds: self.phase_started.elapsed().as_secs_f64(),
        });
        self.phase_started = Instant::now();
    }

    fn check(&mut self, name: &str, result: Outcome, detail: impl Into<String>) -> Outcome {
        self.checks.push(Check {
            name: name.into(),
            result,
            detail: detail.into(),
        });
        result
    }

    fn pass_if(&mut self, name: &str, ok: bool, detail: String) -> Outcome {
        let result = if ok { Outcome::Passed } else { Outcome::Failed };
        self.check(name, result, detail)
    }
}

/// The worst of some outcomes (failed over warning over passed); skipped only if all are.
fn worst(outcomes: &[Outcome]) -> Outcome {
    let rank = |o: &Outcome| match o {
        Outcome::Failed => 3,
        Outcome::Warning => 2,
        Outcome::Passed => 1,
        Outcome::Skipped => 0,
    };
    outcomes
        .iter()
        .copied()
        .max_by_key(rank)
        .unwrap_or(Outcome::Skipped)
}

/// What the source says about the snapshot before it is read.
struct Fetched {
    path: PathBuf,
    manifest: Option<Manifest>,
    size: u64,
    created: Option<SystemTime>,
    /// The damage found while fetching, if any.
    damage: Option<String>,
    /// The version rule applied before the fetch (a backup names its member's version).
    version_check: Option<String>,
    /// A point in time: the revisions replayed after the snapshot's.
    replay: Option<Arc<dyn Replay>>,
    /// When the backup was last found current (its unchanged mark), if ever.
    unchanged_at: Option<SystemTime>,
    /// A backup's snapshot, decrypted: held with no name, so it goes with the process however it
    /// ends. `path` (`/proc/self/fd/N`) reads it while this lives: every thread that reads it
    /// holds a clone, so the descriptor is not closed (and its number reused) under one.
    private: Option<Arc<crate::private_file::UnlinkedFile>>,
}

/// Runs a drill. `Err` means it could not run (no such backup, an etcd too old for the data,
/// storage unreachable); failed checks are in the report.
pub async fn drill(
    source: DrillSource<'_>,
    options: &DrillOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<DrillReport> {
    cancel.run(drill_uncancelled(source, options, progress)).await
}

async fn drill_uncancelled(
    source: DrillSource<'_>,
    options: &DrillOptions,
    progress: &dyn Progress,
) -> Result<DrillReport> {
    let now = SystemTime::now();
    let start = Instant::now();
    let id = BackupId::new(now);
    let mut run = Run {
        started: start,
        phase_started: start,
        phases: Vec::new(),
        checks: Vec::new(),
    };
    crate::drill_sweep::sweep(&options.work_dir);
    // Declared before the members, so they are stopped before it is removed.
    let dir = private_dir(&options.work_dir)?;
    crate::drill_sweep::claim(dir.path())?;
    let (label, repository) = match &source {
        DrillSource::Backup { repo, id, .. } => (id.to_string(), Some(repo.storage().repo().to_string())),
        DrillSource::Point { repo, plan, .. } => (
            format!(
                "backup {} + {} segments to revision {}",
                plan.base.id,
                plan.segments.len(),
                plan.revision
            ),
            Some(repo.storage().repo().to_string()),
        ),
        DrillSource::File(path) => (path.display().to_string(), None),
    };
    let point = match &source {
        DrillSource::Point { plan, .. } => Some(plan.as_ref()),
        _ => None,
    };
    let mut fetched = fetch(&source, options, dir.path(), progress).await?;
    run.phase("fetch");
    let facts = match point {
        Some(plan) => point_facts(plan),
        None => fetched.manifest.as_ref().and_then(|m| m.etcd.clone()),
    };

    let mut stats = None;
    let mut integrity = match &fetched.damage {
        Some(damage) => run.check("integrity", Outcome::Failed, damage.clone()),
        None => Outcome::Passed,
    };
    if integrity == Outcome::Passed {
        let (path, held) = (fetched.path.clone(), fetched.private.clone());
        // A fetched backup's sha256 matched its manifest, which etcd's checked trailer produced.
        let sha_checked = fetched.manifest.is_some();
        let report = blocking(move || {
            let _held = held;
            match sha_checked {
                true => crate::snapshot_file::verify_sha_checked(&path),
                false => crate::snapshot_file::verify(&path),
            }
        })
        .await?;
        let status = report.status;
        let has_trailer = !matches!(report.trailer, Trailer::Absent);
        let mut findings: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
        // etcd's snapshots always end in one; only a member's `db` given as a file lacks it.
        if !has_trailer && fetched.manifest.is_some() {
            findings.push("the stored snapshot has no sha256 trailer".into());
        }
        integrity = match (findings.is_empty(), status) {
            (true, Some(status)) => {
                stats = Some(status);
                let trailer = if has_trailer {
                    "sha256 trailer matches"
                } else {
                    "no trailer (a member's db)"
                };
                run.check(
                    "integrity",
                    Outcome::Passed,
                    format!("{trailer}; bbolt and etcd structure sound"),
                )
            }
            _ => run.check("integrity", Outcome::Failed, findings.join("; ")),
        };
    }
    run.phase("verify");

    let mut restore_outcome = Outcome::Skipped;
    let mut content = Outcome::Skipped;
    let mut rto_seconds = None;
    let mut members = Vec::new();
    let mut kubernetes = None;
    if let (Outcome::Passed, None) = (integrity, &fetched.manifest) {
        // A snapshot file says which etcd wrote it only in its cluster version.
        let path = fetched.path.clone();
        let facts = blocking(move || crate::snapshot_file::store_facts(&path)).await?;
        if let Some(version) = &facts.cluster_version {
            let detail = version_detail(options, version)?;
            run.check("etcd version", Outcome::Passed, detail);
        }
    }
    if let Some(detail) = &fetched.version_check {
        run.check("etcd version", Outcome::Passed, detail.clone());
    }
    let expected = Expected {
        // A snapshot of an empty key space has no revision of its own; etcd serves it at 1.
        revision: facts
            .as_ref()
            .map_or(stats.as_ref().map_or(0, |s| s.revision), |f| f.revision)
            .max(1),
        hash_revision: point.map_or(stats.as_ref().map_or(0, |s| s.revision), |p| p.revision),
        keys: point
            .is_none()
            .then(|| facts.as_ref().map(|f| f.live_keys))
            .flatten(),
        source: if point.is_some() { "point" } else { "backup" },
    };
    if let (Outcome::Passed, Some(stats)) = (integrity, &stats) {
        // The restored member hashes by the rules of the binary that boots it.
        let rules = HashRules::of(Some(options.binary.version));
        // The snapshot's own HashKV needs only the file: it is computed while the members are
        // restored and booted.
        let file_hashes = point.is_none().then(|| {
            let (path, revision, facts) = (fetched.path.clone(), stats.revision, facts.clone());
            let held = fetched.private.clone();
            start_blocking(move || {
                let _held = held;
                snapshot_hashes(&path, revision, facts.as_ref(), rules)
            })
        });
        let tls = crate::drill_tls::generate(dir.path())?;
        let plan = plan_members(options, dir.path(), &id, tls)?;
        let replayed;
        (restore_outcome, replayed) = restore_members(
            &mut run,
            &plan,
            (&fetched.path, &fetched.private),
            fetched.replay.clone(),
        )
        .await?;
        // A point is as old as the newest revision replayed.
        if let Some(ms) = replayed
            .and_then(|r| r.last_received_unix_ms)
            .and_then(|ms| u64::try_from(ms).ok())
        {
            fetched.created = Some(UNIX_EPOCH + Duration::from_millis(ms));
        }
        // A point's HashKV is the restored data's, read before etcd opens it.
        let hashes = match file_hashes {
            Some(hashes) => Either::Left(joined(hashes)),
            None => {
                let (path, facts) = (plan.members[0].data_dir.join("member/snap/db"), facts.clone());
                let revision = expected.hash_revision;
                let hashed = blocking(move || snapshot_hashes(&path, revision, facts.as_ref(), rules)).await;
                Either::Right(std::future::ready(hashed))
            }
        };
        run.phase("restore");
        if restore_outcome == Outcome::Passed {
            restore_outcome = boot(&mut run, &plan, options, &mut members).await;
        }
        run.phase("boot");
        if restore_outcome == Outcome::Passed {
            let checked = check_content(&mut run, &members, &expected, hashes).await?;
            content = checked.0;
            kubernetes = checked.1;
            run.phase("check");
            // A warning (a HashKV that cannot be compared) does not stop the proof.
            if content != Outcome::Failed {
                rto_seconds = Some(run.started.elapsed().as_secs_f64());
            }
        }
    }

    // Freshness counts from the backup's unchanged mark when it has one.
    let current_until = match (fetched.created, fetched.unchanged_at) {
        (Some(created), Some(checked)) => Some(created.max(checked)),
        (created, checked) => created.or(checked),
    };
    let age = current_until
        .and_then(|at| now.duration_since(at).ok())
        .unwrap_or_default();
    let stale = age > options.max_age;
    let freshness = match (stale, options.fail_on_stale) {
        (false, _) => Outcome::Passed,
        (true, true) => Outcome::Failed,
        (true, false) => Outcome::Warning,
    };
    run.check(
        "freshness",
        freshness,
        match fetched.unchanged_at {
            Some(_) => format!(
                "backup found current {} ago (its cluster unchanged since it); objective {}",
                humanize(age),
                humanize(options.max_age)
            ),
            None => format!(
                "backup is {} old; objective {}",
                humanize(age),
                humanize(options.max_age)
            ),
        },
    );
    let revision_lag = match (&options.live, &stats) {
        // The live cluster only adds the revision lag: when it cannot be reached, the drill's
        // own result stands and the report says why the lag is missing.
        (Some(live), Some(_)) => match connect_first_healthy(live).await {
            Ok(member) => Some(member.status().revision - expected.revision),
            Err(error) => {
                run.check(
                    "revision-lag",
                    Outcome::Warning,
                    format!("live cluster not reached: {error}"),
                );
                None
            }
        },
        _ => None,
    };
    let rto_met = rto_seconds.is_some_and(|s| s <= options.rto_objective.as_secs_f64());
    if let Some(seconds) = rto_seconds {
        run.pass_if(
            "rto",
            rto_met,
            format!(
                "restored and checked in {seconds:.1} s; objective {}",
                humanize(options.rto_objective)
            ),
        );
    }

    let kept = if options.keep && !members.is_empty() {
        let endpoints = members.iter().map(|m| m.endpoint().to_string()).collect();
        let pids = members.into_iter().filter_map(EtcdProcess::detach).collect();
        crate::drill_sweep::keep(dir.path());
        Some(Kept {
            endpoints,
            pids,
            dir: dir.keep(),
        })
    } else {
        for member in &mut members {
            member.stop().await;
        }
        drop(members);
        drop(dir);
        None
    };
    run.phase("teardown");

    let results = Results {
        integrity,
        restore: restore_outcome,
        content,
        freshness,
    };
    let passed = integrity == Outcome::Passed
        && restore_outcome == Outcome::Passed
        && content != Outcome::Failed
        && freshness != Outcome::Failed
        && rto_met;
    Ok(DrillReport {
        id,
        timestamp: timestamp(now),
        backup: label,
        cluster_id: fetched
            .manifest
            .as_ref()
            .and_then(|m| m.cluster_id().map(str::to_string)),
        repository,
        size: fetched.size,
        backup_time: fetched.created.map(timestamp),
        etcd_binary: options.binary.path.display().to_string(),
        etcd_version: options.binary.version.to_string(),
        members: options.members,
        result: if passed { Outcome::Passed } else { Outcome::Failed },
        results,
        etcd: stats,
        point_revision: point.map(|p| p.revision),
        checks: run.checks,
        kubernetes,
        phases: run.phases,
        rto: Rto {
            seconds: rto_seconds,
            objective_seconds: options.rto_objective.as_secs_f64(),
            met: rto_met,
        },
        rpo: Rpo {
            backup_age_seconds: age.as_secs_f64(),
            max_age_seconds: options.max_age.as_secs_f64(),
            revision_lag,
        },
        kept,
    })
}

fn humanize(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..120 => format!("{seconds}s"),
        120..7200 => format!("{}m", seconds / 60),
        7200..172_800 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

fn private_dir(parent: &Path) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix(crate::drill_sweep::PREFIX)
        .tempdir_in(parent)
        .map_err(|source| Error::Io {
            action: "create a temporary directory in",
            path: parent.to_path_buf(),
            source,
        })?;
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).map_err(
        |source| Error::Io {
            action: "restrict",
            path: dir.path().to_path_buf(),
            source,
        },
    )?;
    Ok(dir)
}

/// etcd's upgrade policy for booting `data_version` data on the drill's binary, as a check's
/// detail; refused data is an error (the drill cannot run).
fn version_detail(options: &DrillOptions, data_version: &str) -> Result<String> {
    let note = options.binary.check_runs(data_version)?;
    let applied = format!("etcd {data_version} data on etcd {}", options.binary.version);
    Ok(match note {
        Some(note) => format!("{applied}: {note}"),
        None => applied,
    })
}

async fn fetch(
    source: &DrillSource<'_>,
    options: &DrillOptions,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<Fetched> {
    match source {
        DrillSource::Point {
            repo,
            plan,
            identities,
        } => {
            let backup = DrillSource::Backup {
                repo,
                id: plan.base.id.clone(),
                identities: identities.clone(),
            };
            let fetched = Box::pin(fetch(&backup, options, dir, progress)).await?;
            Ok(Fetched {
                replay: Some(crate::pitr::SegmentFeed::new(repo, plan, identities)),
                // A point is as fresh as what it replays, not as its base.
                unchanged_at: None,
                ..fetched
            })
        }
        DrillSource::File(path) => {
            let metadata = std::fs::metadata(path).map_err(|source| Error::Io {
                action: "read",
                path: path.clone(),
                source,
            })?;
            Ok(Fetched {
                path: path.clone(),
                manifest: None,
                size: metadata.len(),
                created: metadata.modified().ok(),
                damage: None,
                version_check: None,
                replay: None,
                unchanged_at: None,
                private: None,
            })
        }
        DrillSource::Backup { repo, id, identities } => {
            let manifest = repo.manifest(id).await?;
            let artefact = crate::backups::etcd_artefact(&manifest)?;
            let version_check = match &manifest.etcd {
                Some(facts) => Some(version_detail(options, &facts.version)?),
                None => None,
            };
            let private = Arc::new(crate::private_file::UnlinkedFile::create(dir)?);
            let path = private.path().to_path_buf();
            let shown = dir.join("(fetched snapshot)");
            let fetched = crate::backups::fetch_snapshot_into(
                repo,
                &manifest,
                identities,
                (private.handle()?, &shown),
                progress,
                &Cancel::new(),
            )
            .await;
            let damage = match fetched {
                Ok(()) => None,
                Err(Error::BackupDamaged { object, finding, .. }) => Some(format!("{object}: {finding}")),
                Err(error) => return Err(error),
            };
            Ok(Fetched {
                path,
                size: artefact.plain_size,
                created: time::OffsetDateTime::parse(
                    &manifest.created,
                    &time::format_description::well_known::Rfc3339,
                )
                .ok()
                .map(SystemTime::from),
                unchanged_at: repo.unchanged_at(id).await?,
                manifest: Some(manifest),
                damage,
                version_check,
                replay: None,
                private: Some(private),
            })
        }
    }
}

impl std::fmt::Debug for DrillSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DrillSource::Backup { id, .. } => {
                f.debug_struct("Backup").field("id", id).finish_non_exhaustive()
            }
            DrillSource::Point { plan, .. } => f
                .debug_struct("Point")
                .field("base", &plan.base.id)
                .field("revision", &plan.revision)
                .finish_non_exhaustive(),
            DrillSource::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// One member of the throwaway cluster.
struct PlannedMember {
    name: String,
    data_dir: PathBuf,
    peer_url: String,
    client_url: String,
    log: PathBuf,
}

struct Plan {
    members: Vec<PlannedMember>,
    tls: lifeboat_etcd_proc::ServerTls,
    initial_cluster: String,
    token: String,
}

fn plan_members(
    options: &DrillOptions,
    dir: &Path,
    drill: &BackupId,
    tls: lifeboat_etcd_proc::ServerTls,
) -> Result<Plan> {
    let mut members = Vec::new();
    for index in 1..=options.members {
        let name = format!("drill-{index}");
        members.push(PlannedMember {
            data_dir: dir.join(format!("{name}.etcd")),
            peer_url: format!("http://127.0.0.1:{}", free_port()?),
            client_url: format!("https://127.0.0.1:{}", free_port()?),
            log: dir.join(format!("{name}.log")),
            name,
        });
    }
    let initial_cluster = members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url))
        .collect::<Vec<_>>()
        .join(",");
    Ok(Plan {
        members,
        tls,
        initial_cluster,
        // A token of its own: the throwaway members can never join the live cluster.
        token: format!("lifeboat-drill-{drill}"),
    })
}

async fn restore_members(
    run: &mut Run,
    plan: &Plan,
    (snapshot, held): (&Path, &Option<Arc<crate::private_file::UnlinkedFile>>),
    replay: Option<Arc<dyn Replay>>,
) -> Result<(Outcome, Option<ReplayReport>)> {
    let mut restored = Vec::new();
    let mut replayed = None;
    for member in &plan.members {
        let options = RestoreOptions {
            snapshot: snapshot.to_path_buf(),
            data_dir: member.data_dir.clone(),
            wal_dir: None,
            name: member.name.clone(),
            initial_cluster: plan.initial_cluster.clone(),
            initial_cluster_token: plan.token.clone(),
            initial_advertise_peer_urls: vec![member.peer_url.clone()],
            // The verify phase has just proved the trailer; hashing it again would only cost time.
            skip_hash_check: true,
            bump_revision: 0,
            mark_compacted: false,
            replay: replay.clone(),
        };
        let held = held.clone();
        match blocking(move || {
            let _held = held;
            restore(&options)
        })
        .await
        {
            Ok(report) => {
                restored.push(report.member_id);
                replayed = report.backend.replayed;
            }
            Err(error @ (Error::Interrupted { .. } | Error::DiskFull { .. })) => return Err(error),
            Err(error) => {
                return Ok((run.check("restore", Outcome::Failed, error.to_string()), None));
            }
        }
    }
    let detail = replayed
        .as_ref()
        .map(|r| format!(", {} captured revisions replayed", r.revisions))
        .unwrap_or_default();
    let outcome = run.check(
        "restore",
        Outcome::Passed,
        format!(
            "{} member data directories written natively{detail}",
            restored.len()
        ),
    );
    Ok((outcome, replayed))
}

async fn boot(run: &mut Run, plan: &Plan, options: &DrillOptions, members: &mut Vec<EtcdProcess>) -> Outcome {
    for planned in &plan.members {
        let launch = Launch {
            binary: options.binary.clone(),
            name: planned.name.clone(),
            data_dir: planned.data_dir.clone(),
            client_url: planned.client_url.clone(),
            peer_url: planned.peer_url.clone(),
            initial: None::<InitialCluster>,
            tls: Some(plan.tls.clone()),
            log: planned.log.clone(),
            loopback_timing: true,
            // Kept members outlive the drill on purpose; the others die with it.
            die_with_parent: !options.keep,
            // Reads only: a snapshot above etcd's default quota boots and answers under it.
            quota_bytes: None,
        };
        match EtcdProcess::spawn(launch) {
            Ok(process) => members.push(process),
            Err(error) => return run.check("boot", Outcome::Failed, error.to_string()),
        }
    }
    for member in members.iter_mut() {
        if let Err(error) = member.wait_ready(options.boot_timeout).await {
            return run.check("boot", Outcome::Failed, error.to_string());
        }
    }
    let endpoints: Vec<&str> = members.iter().map(EtcdProcess::endpoint).collect();
    run.check(
        "boot",
        Outcome::Passed,
        format!(
            "etcd {} served a linearizable read at {}",
            options.binary.version,
            endpoints.join(", ")
        ),
    )
}

/// What the restored member must hold.
struct Expected {
    /// The revision the member serves: the backup's, or the point's.
    revision: i64,
    /// Where the member's HashKV is taken: the snapshot's revision, or the point's.
    hash_revision: i64,
    /// The member's keys at backup time (unknown at a point).
    keys: Option<u64>,
    /// "backup" or "point", as the checks name it.
    source: &'static str,
}

/// The facts a point drill is checked against: the base's, at the point's revision, with the
/// newest HashKV the live member answered at or below it.
fn point_facts(plan: &PointPlan) -> Option<EtcdFacts> {
    let mut facts = plan.base.etcd.clone()?;
    facts.revision = plan.revision;
    facts.hash_kv = crate::pitr::newest_proof(plan).map(|(recorded, _)| recorded);
    if facts.hash_kv.is_none() {
        facts.hash_kv_missing = Some("no HashKV was recorded at or below the point".into());
    }
    Some(facts)
}

async fn check_content(
    run: &mut Run,
    members: &[EtcdProcess],
    expected: &Expected,
    hashes: impl Future<Output = Result<(HashKv, HashKvComparison)>>,
) -> Result<(Outcome, Option<KubernetesContent>)> {
    let mut outcomes = Vec::new();
    let Some(first) = members.first() else {
        return Ok((Outcome::Skipped, None));
    };
    let mut member = first.connect().await?;
    let revision = member.status().revision;
    outcomes.push(run.pass_if(
        "revision",
        revision == expected.revision,
        format!(
            "restored member at revision {revision}; {} at {}",
            expected.source, expected.revision
        ),
    ));
    if let Some(had) = expected.keys {
        let keys = member.count_keys(0).await?;
        outcomes.push(run.pass_if(
            "keys",
            u64::try_from(keys).ok() == Some(had),
            format!("{keys} keys; the member had {had} at backup time"),
        ));
    }
    let booted = member.hash_kv(expected.hash_revision).await?;
    let (native, comparison) = hashes.await?;
    outcomes.push(hash_check(
        run,
        booted.map(|b| b.hash),
        native.hash,
        &comparison,
        expected.source,
    ));

    if members.len() > 1 {
        outcomes.push(quorum_check(run, members, expected.hash_revision).await?);
    }
    let kubernetes = kubernetes_content(&mut member).await?;
    if let Some(content) = &kubernetes {
        let has = |name: &str| content.namespaces.iter().any(|n| n == name);
        outcomes.push(run.pass_if(
            "kubernetes",
            !content.namespaces.is_empty() && has("default") && has("kube-system"),
            format!(
                "{} namespaces (default: {}, kube-system: {}); {} resources, {} objects",
                content.namespaces.len(),
                has("default"),
                has("kube-system"),
                content.resources.len(),
                content.resources.values().sum::<u64>()
            ),
        ));
    }
    Ok((worst(&outcomes), kubernetes))
}

/// The snapshot's HashKV at `revision`, and how the member's record at backup time compares.
fn snapshot_hashes(
    path: &Path,
    revision: i64,
    facts: Option<&EtcdFacts>,
    rules: HashRules,
) -> Result<(HashKv, HashKvComparison)> {
    let native = crate::snapshot_file::hash_kv(path, Some(revision), None, rules)?;
    let comparison = hash_kv_comparison(path, facts, Some((native, rules)))?;
    Ok((native, comparison))
}

/// The restored member's HashKV against the member's at backup time, and against the file's.
fn hash_check(
    run: &mut Run,
    booted: Option<u32>,
    native: u32,
    comparison: &HashKvComparison,
    source: &str,
) -> Outcome {
    let Some(booted) = booted else {
        return run.check(
            "hashkv",
            Outcome::Failed,
            format!("the restored member refused HashKV at the {source}'s revision"),
        );
    };
    // A point's data is hashed as restored, before etcd opened it; a backup's in its snapshot.
    let (data, when, changed_by) = match source {
        "point" => ("the restored data", "capture time", "booting"),
        _ => ("the snapshot", "backup time", "the restore"),
    };
    if booted != native {
        return run.check(
            "hashkv",
            Outcome::Failed,
            format!(
                "the restored member hashes to {booted}, {data} to {native}: {changed_by} changed the data"
            ),
        );
    }
    match comparison {
        HashKvComparison::Equal(recorded) => run.check(
            "hashkv",
            Outcome::Passed,
            format!(
                "{} at revision {}, equal to the member's at {when}",
                recorded.hash, recorded.revision
            ),
        ),
        HashKvComparison::Differs { recorded, computed } => run.check(
            "hashkv",
            Outcome::Failed,
            format!(
                "the {source} hashes to {computed} at revision {}, the member's was {}: the {source} is not what the member held",
                recorded.revision, recorded.hash
            ),
        ),
        HashKvComparison::Short(reason) => run.check("hashkv", Outcome::Failed, reason.clone()),
        HashKvComparison::NotComparable(reason) => run.check(
            "hashkv",
            Outcome::Warning,
            format!("restored member equals {data} ({booted}); not comparable with the member: {reason}"),
        ),
    }
}

async fn quorum_check(run: &mut Run, members: &[EtcdProcess], revision: i64) -> Result<Outcome> {
    let mut leaders = Vec::new();
    let mut hashes = Vec::new();
    for process in members {
        let mut member = process.connect().await?;
        leaders.push(member.refresh_status().await?.leader);
        hashes.push(member.hash_kv(revision).await?.map(|h| h.hash));
    }
    let one_leader = leaders.iter().all(|l| *l != 0 && *l == leaders[0]);
    let same_hash = hashes.iter().all(|h| h.is_some() && *h == hashes[0]);
    Ok(run.pass_if(
        "quorum",
        one_leader && same_hash,
        format!(
            "{} members; leader {:x} seen by all: {one_leader}; HashKV {:?} equal on all: {same_hash}",
            members.len(),
            leaders[0],
            hashes.iter().flatten().collect::<Vec<_>>()
        ),
    ))
}

/// Namespaces and objects per resource when the key space holds Kubernetes objects, counted as
/// `lifeboat k8s ls --count` counts them.
async fn kubernetes_content(member: &mut lifeboat_etcd_conn::Member) -> Result<Option<KubernetesContent>> {
    let prefix = crate::k8s_objects::DEFAULT_PREFIX;
    let keys: Vec<String> = member
        .keys(format!("{prefix}/").as_bytes())
        .await?
        .into_iter()
        .map(|key| String::from_utf8_lossy(&key).into_owned())
        .collect();
    if keys.is_empty() {
        return Ok(None);
    }
    let mut resources = BTreeMap::new();
    for ((resource, _), count) in crate::k8s_objects::count_objects(prefix, keys.iter().map(String::as_str)) {
        *resources.entry(resource).or_insert(0) += count;
    }
    let namespaces = keys
        .iter()
        .filter_map(|key| crate::k8s_objects::parse_key(prefix, key))
        .filter(|(resource, _, _)| resource == "namespaces")
        .map(|(_, _, name)| name)
        .collect();
    Ok(Some(KubernetesContent {
        namespaces,
        resources,
    }))
}
