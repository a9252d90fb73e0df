//! `lifeboat repo prune [REPO]`: removes objects no manifest accounts for and uploads left
//! open, once older than `--older-than` (so a backup still running is never touched).

use std::io::Write;
use std::time::Duration;

use clap::Args;
use lifeboat_core::repo_check::prune;
use lifeboat_repo::Repository;

use crate::exit::cancel_on_signals;
use crate::output::{self, OutputFormat};
use crate::repo_flags::RepoFlags;

/// Arguments of `repo prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The repository [default: --repo, LIFEBOAT_REPO].
    #[arg(value_name = "REPO")]
    location: Option<String>,
    /// Only leftovers at least this old (e.g. 24h, 30m, 0s).
    #[arg(long, value_name = "AGE", default_value = "24h", value_parser = humantime::parse_duration)]
    older_than: Duration,
    /// Show what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    repo: RepoFlags,
}

pub async fn run(args: PruneArgs, format: OutputFormat) -> anyhow::Result<()> {
    let repo = Repository::open(args.repo.storage(args.location.as_deref())?).await?;
    let report = prune(&repo, args.older_than, args.dry_run, &cancel_on_signals()).await?;
    let mut out = std::io::stdout().lock();
    if format == OutputFormat::Json {
        return output::json(&mut out, &report);
    }
    let verb = if report.dry_run { "would remove" } else { "removed" };
    for leftover in &report.removed {
        writeln!(out, "{verb} {} ({} bytes)", leftover.key, leftover.size)?;
    }
    for upload in &report.aborted_uploads {
        writeln!(out, "{verb} the open upload of {}", upload.key)?;
    }
    writeln!(
        out,
        "{verb} {} objects and {} open uploads; kept {} newer than {}",
        report.removed.len(),
        report.aborted_uploads.len(),
        report.kept_recent,
        humantime::format_duration(args.older_than)
    )?;
    Ok(())
}
