//! `lifeboat drill [ID|latest] | --to-revision R | --to-time T | --file SNAPSHOT`: the restore
//! drill, timed phase by phase.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use lifeboat_core::drill::{DrillOptions, DrillReport, DrillSource, Outcome, drill};
use lifeboat_core::{Cancel, Progress};
use lifeboat_etcd_proc::EtcdBinary;
use lifeboat_repo::Repository;

use crate::commands::pitr::{PointArgs, point_plan};
use crate::etcd_flags::EtcdFlags;
use crate::exit::{Failure, cancel_on_signals};
use crate::output::{self, OutputFormat};
use crate::progress::TerminalBar;
use crate::repo_flags::{IdentityFlags, RepoFlags, resolve_id};

/// The drill could not run (no etcd binary, no such backup, storage unreachable).
pub const COULD_NOT_RUN: u8 = 2;

/// Arguments of `drill`.
#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The backup to drill: its ID, or `latest` (the newest etcd backup).
    #[arg(
        value_name = "ID",
        conflicts_with = "file",
        required_unless_present_any = ["file", "to_revision", "to_time"]
    )]
    id: Option<String>,
    /// Drill a point in time: a base backup with the captured segments replayed to it.
    #[command(flatten)]
    point: PointArgs,
    /// Drill a snapshot file (or a member's `db`) instead of a backup.
    #[arg(long, value_name = "SNAPSHOT", conflicts_with_all = ["to_revision", "to_time"])]
    file: Option<PathBuf>,
    /// The etcd server binary to boot the restore with [default: `etcd` on PATH].
    #[arg(long = "etcd", env = "LIFEBOAT_ETCD", value_name = "PATH")]
    etcd_binary: Option<PathBuf>,
    /// Restore a cluster of this many members on loopback (1 or 3).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=7))]
    members: u8,
    /// A backup older than this is stale (a warning, or a failure with --fail-on-stale).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    max_age: Duration,
    /// Fail the drill when the backup is older than --max-age.
    #[arg(long)]
    fail_on_stale: bool,
    /// The recovery time objective: the drill fails when restoring takes longer.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    rto: Duration,
    /// How long each member may take to serve its first linearizable read.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    boot_timeout: Duration,
    /// Leave the restored etcd running and print its endpoint (stop it yourself).
    #[arg(long)]
    keep: bool,
    /// Where the private temporary directory is made [default: the system's temp dir].
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Also write the JSON report to FILE (atomically).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    #[command(flatten)]
    identity: IdentityFlags,
    #[command(flatten)]
    repo: RepoFlags,
    /// The live cluster, to measure how far it moved on since the backup (revision lag).
    #[command(flatten)]
    live: EtcdFlags,
}

/// Errors before or around the drill are "could not run" (exit 2), not a failed drill.
fn could_not_run(error: anyhow::Error) -> anyhow::Error {
    if matches!(
        error.downcast_ref::<lifeboat_core::Error>(),
        Some(lifeboat_core::Error::Interrupted { .. })
    ) {
        return error;
    }
    Failure {
        code: COULD_NOT_RUN,
        message: crate::exit::one_line(&error),
    }
    .into()
}

pub async fn run(args: DrillArgs, format: OutputFormat) -> anyhow::Result<()> {
    let report = run_drill(&args).await.map_err(could_not_run)?;
    if let Some(path) = &args.report {
        let mut pending =
            lifeboat_core::fsio::PendingFile::create(path).map_err(|e| could_not_run(e.into()))?;
        pending
            .write_all(&serde_json::to_vec_pretty(&report)?)
            .and_then(|()| pending.commit())
            .map_err(|e| could_not_run(e.into()))?;
    }
    print(&report, format)?;
    if report.result == Outcome::Passed {
        return Ok(());
    }
    let failed = failed_checks(&report);
    Err(Failure {
        code: crate::exit::FAILURE,
        message: format!("drill of {} failed: {}", report.backup, failed),
    }
    .into())
}

async fn run_drill(args: &DrillArgs) -> anyhow::Result<DrillReport> {
    let binary = EtcdBinary::locate(args.etcd_binary.as_deref(), std::env::var_os("PATH").as_deref())?;
    let options = DrillOptions {
        binary,
        members: usize::from(args.members),
        max_age: args.max_age,
        fail_on_stale: args.fail_on_stale,
        rto_objective: args.rto,
        keep: args.keep,
        work_dir: args.work_dir.clone().unwrap_or_else(std::env::temp_dir),
        live: match args.live.given() {
            true => Some(args.live.clone().resolve()?),
            false => None,
        },
        boot_timeout: args.boot_timeout,
    };
    let cancel = cancel_on_signals();
    let bar = TerminalBar::new("fetch");
    if let Some(file) = &args.file {
        return Ok(drill(DrillSource::File(file.clone()), &options, &bar, &cancel).await?);
    }
    let repo = args.repo.open().await?;
    let identities = args.identity.require_for(&repo)?;
    let source = match (args.point.target(), &args.id) {
        (Some(target), _) => {
            let plan = point_plan(&repo, args.point.cluster, target, &identities).await?;
            DrillSource::Point {
                repo: &repo,
                plan: Box::new(plan),
                identities,
            }
        }
        (None, Some(id)) => DrillSource::Backup {
            repo: &repo,
            id: resolve_id(&repo, id, Some("etcd")).await?,
            identities,
        },
        (None, None) => anyhow::bail!(
            "name a backup (ID or latest), a point (--to-revision, --to-time) or give --file SNAPSHOT"
        ),
    };
    drill_and_record(&repo, source, &options, &bar, &cancel).await
}

/// Drills `source` of `repo` and stores the record in the repository: the history `drills
/// list` shows (a drill that ran is worth keeping, whatever its result).
pub async fn drill_and_record(
    repo: &Repository,
    source: DrillSource<'_>,
    options: &DrillOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> anyhow::Result<DrillReport> {
    let report = drill(source, options, progress, cancel).await?;
    repo.put_drill(&report.id, serde_json::to_vec_pretty(&report)?)
        .await?;
    Ok(report)
}

/// The failed checks of `report`, each with what it saw, on one line.
pub fn failed_checks(report: &DrillReport) -> String {
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| c.result == Outcome::Failed)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    failed.join("; ")
}

pub fn outcome(o: Outcome) -> &'static str {
    match o {
        Outcome::Passed => "passed",
        Outcome::Failed => "FAILED",
        Outcome::Warning => "warning",
        Outcome::Skipped => "skipped",
    }
}

/// The report as text: the result, the RTO against its objective, each phase and each check.
pub fn print(report: &DrillReport, format: OutputFormat) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if format == OutputFormat::Json {
        return output::json(&mut out, report);
    }
    let rto = match report.rto.seconds {
        Some(seconds) => format!(
            "{seconds:.1} s (objective {:.0} s: {})",
            report.rto.objective_seconds,
            if report.rto.met { "met" } else { "MISSED" }
        ),
        None => "not proven".to_string(),
    };
    let lag = report
        .rpo
        .revision_lag
        .map(|lag| format!(", {lag} revisions behind the live cluster"))
        .unwrap_or_default();
    output::table(
        &mut out,
        &[
            ("Drill", format!("{} {}", report.id, outcome(report.result))),
            ("Backup", report.backup.clone()),
            ("Size", output::si_bytes(report.size)),
            (
                "etcd",
                format!("{} ({} member(s))", report.etcd_version, report.members),
            ),
            ("RTO", rto),
            (
                "RPO",
                format!(
                    "{} age {:.0} s{lag}",
                    if report.point_revision.is_some() {
                        "point"
                    } else {
                        "backup"
                    },
                    report.rpo.backup_age_seconds
                ),
            ),
        ],
    )?;
    writeln!(out)?;
    output::grid(
        &mut out,
        &["PHASE", "SECONDS"],
        &report
            .phases
            .iter()
            .map(|p| vec![p.name.clone(), format!("{:.3}", p.seconds)])
            .collect::<Vec<_>>(),
    )?;
    writeln!(out)?;
    output::grid(
        &mut out,
        &["CHECK", "RESULT", "DETAIL"],
        &report
            .checks
            .iter()
            .map(|c| vec![c.name.clone(), outcome(c.result).to_string(), c.detail.clone()])
            .collect::<Vec<_>>(),
    )?;
    if let Some(kept) = &report.kept {
        writeln!(
            out,
            "\nKept running: {} (PIDs {:?}), data in {dir}; connect with --cacert {dir}/ca.crt --cert {dir}/client.crt --key {dir}/client.key; stop it with `kill {}` and remove the directory",
            kept.endpoints.join(", "),
            kept.pids,
            kept.pids
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            dir = kept.dir.display(),
        )?;
    }
    Ok(())
}
