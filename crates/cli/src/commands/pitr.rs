//! `lifeboat pitr ranges`: the revisions and times a point-in-time restore can reach;
//! `lifeboat pitr compact`: merges captured segments and removes those no restore can use.

use std::io::Write;
use std::time::SystemTime;

use clap::{Args, Subcommand};
use lifeboat_core::pitr::{PointPlan, PointTarget, ranges};
use lifeboat_core::pitr_compact::{
    CompactOptions, CompactReport, DEFAULT_MAX_BYTES, DEFAULT_PER_MERGE, compact,
};
use lifeboat_repo::{Identity, Repository};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::exit::cancel_on_signals;
use crate::output::{self, OutputFormat};
use crate::repo_flags::{IdentityFlags, RepoFlags};

/// Point-in-time recovery.
#[derive(Debug, Subcommand)]
pub enum PitrCommand {
    /// The restorable ranges (revisions and times) of a cluster: a base backup and the captured
    /// segments after it; nothing between ranges can be restored.
    Ranges(RangesArgs),
    /// Merges runs of captured segments into larger ones (an hour's at the defaults) and removes
    /// segments no restore can use (covered by another, or before the oldest etcd backup).
    Compact(CompactArgs),
}

/// Arguments of `pitr compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    #[command(flatten)]
    repo: RepoFlags,
    #[command(flatten)]
    identity: IdentityFlags,
    /// The etcd cluster (hex ID) when the repository holds several.
    #[arg(long, value_name = "ID", value_parser = parse_cluster)]
    cluster: Option<u64>,
    /// Captured segments one merged segment holds at most (3600: an hour of 1 s segments).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PER_MERGE, value_parser = clap::value_parser!(u64).range(2..))]
    per_merge: u64,
    /// Plain bytes one merged segment holds at most.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BYTES)]
    max_bytes: u64,
    /// Say what would be merged and removed; change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Arguments of `pitr ranges`.
#[derive(Debug, Args)]
pub struct RangesArgs {
    #[command(flatten)]
    repo: RepoFlags,
    /// The etcd cluster (hex ID) when the repository holds several.
    #[arg(long, value_name = "ID", value_parser = parse_cluster)]
    cluster: Option<u64>,
}

/// A cluster ID as Lifeboat prints it (hex).
/// A `--to-time` or `--time`: RFC 3339, or a duration ago.
pub fn parse_point_time(text: &str) -> Result<SystemTime, String> {
    lifeboat_core::pitr::parse_time(text, SystemTime::now()).ok_or_else(|| {
        format!("{text:?} is neither RFC 3339 (2026-12-06T03:12:00Z) nor a duration ago (15m)")
    })
}

/// A `--to-time`, and whether it was given as a duration ago (a point that moves with the
/// clock).
#[derive(Debug, Clone, Copy)]
pub struct PointTime {
    pub time: SystemTime,
    pub relative: bool,
}

fn parse_to_time(text: &str) -> Result<PointTime, String> {
    Ok(PointTime {
        time: parse_point_time(text)?,
        relative: OffsetDateTime::parse(text, &Rfc3339).is_err(),
    })
}

/// The point in time `restore`, `drill` and `recover` take instead of a backup ID.
#[derive(Debug, Args)]
pub struct PointArgs {
    /// The cluster as it was at this revision (point-in-time recovery, from a base backup and
    /// the segments captured after it).
    #[arg(long, value_name = "REVISION", conflicts_with_all = ["id", "to_time"])]
    pub to_revision: Option<i64>,
    /// The cluster as it was at this time: RFC 3339 (2026-12-06T03:12:00Z) or a duration ago
    /// (15m). It resolves to the last revision received at or before it.
    #[arg(long, value_name = "TIME", conflicts_with = "id", value_parser = parse_to_time)]
    pub to_time: Option<PointTime>,
    /// The etcd cluster (hex ID) when the repository holds several.
    #[arg(long, value_name = "ID", value_parser = parse_cluster)]
    pub cluster: Option<u64>,
}

impl PointArgs {
    /// The point asked for, if any.
    pub fn target(&self) -> Option<PointTarget> {
        match (self.to_revision, self.to_time) {
            (Some(revision), _) => Some(PointTarget::Revision(revision)),
            (None, Some(at)) => Some(PointTarget::Time(at.time)),
            (None, None) => None,
        }
    }
}

/// The base backup and segments that reach `target`; a time's resolution is said on stderr.
pub async fn point_plan(
    repo: &Repository,
    cluster: Option<u64>,
    target: PointTarget,
    identities: &[Identity],
) -> anyhow::Result<PointPlan> {
    let plan = lifeboat_core::pitr::plan(repo, cluster, target, identities).await?;
    if let Some(time) = &plan.time {
        super::restore::say_resolution(time);
    }
    Ok(plan)
}

/// A cluster ID as `backups list` shows it (hex).
pub fn parse_cluster(text: &str) -> Result<u64, String> {
    u64::from_str_radix(text.trim_start_matches("0x"), 16)
        .map_err(|_| format!("{text:?} is not a cluster ID (hex, as `lifeboat backups list` shows it)"))
}

impl PitrCommand {
    pub async fn run(self, format: OutputFormat) -> anyhow::Result<()> {
        match self {
            PitrCommand::Ranges(args) => show_ranges(args, format).await,
            PitrCommand::Compact(args) => run_compact(args, format).await,
        }
    }
}

async fn run_compact(args: CompactArgs, format: OutputFormat) -> anyhow::Result<()> {
    let repo = args.repo.open().await?;
    let identities = args.identity.require_for(&repo)?;
    let options = CompactOptions {
        per_merge: args.per_merge,
        max_bytes: args.max_bytes,
        dry_run: args.dry_run,
    };
    let report = compact(&repo, args.cluster, &identities, &options, &cancel_on_signals()).await?;
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => output::json(&mut out, &report)?,
        _ => writeln!(out, "{}", compact_summary(&report))?,
    }
    Ok(())
}

/// One line on what compaction did, for the command and the agent's log.
pub fn compact_summary(report: &CompactReport) -> String {
    let merged: usize = report.merges.iter().map(|m| m.replaced).sum();
    format!(
        "cluster {}: {} segments {} {}: {merged} merged into {}, {} covered by another and {} before the oldest etcd backup removed",
        report.cluster_id,
        report.segments_before,
        if report.dry_run { "would become" } else { "became" },
        report.segments_after,
        report.merges.len(),
        report.removed_covered,
        report.removed_unreachable,
    )
}

async fn show_ranges(args: RangesArgs, format: OutputFormat) -> anyhow::Result<()> {
    let repo = args.repo.open().await?;
    let ranges = ranges(&repo, args.cluster).await?;
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => output::json(&mut out, &ranges)?,
        _ => {
            let rows: Vec<Vec<String>> = ranges
                .iter()
                .map(|r| {
                    vec![
                        r.cluster_id.clone(),
                        r.from_revision.to_string(),
                        r.to_revision.to_string(),
                        r.from_time.clone(),
                        r.to_time.clone(),
                        r.backups.to_string(),
                        r.segments.to_string(),
                    ]
                })
                .collect();
            let header = [
                "CLUSTER", "FROM REV", "TO REV", "FROM", "TO", "BACKUPS", "SEGMENTS",
            ];
            match format {
                OutputFormat::Table => output::grid_boxed(&mut out, &header, &rows)?,
                _ => output::columns(&mut out, &header, &rows)?,
            }
            if ranges.is_empty() {
                writeln!(out, "nothing is restorable: no etcd backup of the cluster")?;
            }
        }
    }
    Ok(())
}
