//! `lifeboat repo check [REPO]`: untrusted manifests, missing objects, objects no manifest
//! accounts for and uploads left open. Exit 0 clean, 1 findings.

use std::io::Write;

use clap::Args;
use lifeboat_core::repo_check::{Leftover, RepoCheck, check};
use lifeboat_repo::Repository;

use crate::exit::{Failure, cancel_on_signals};
use crate::output::{self, OutputFormat};
use crate::repo_flags::RepoFlags;

/// Arguments of `repo check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The repository [default: --repo, LIFEBOAT_REPO].
    #[arg(value_name = "REPO")]
    location: Option<String>,
    #[command(flatten)]
    repo: RepoFlags,
}

pub async fn run(args: CheckArgs, format: OutputFormat) -> anyhow::Result<()> {
    let repo = Repository::open(args.repo.storage(args.location.as_deref())?).await?;
    let found = check(&repo, &cancel_on_signals()).await?;
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => output::json(&mut out, &found)?,
        _ => print(&mut out, &found)?,
    }
    if found.is_clean() {
        return Ok(());
    }
    Err(Failure {
        code: crate::exit::FAILURE,
        message: format!(
            "{} has findings (above); `lifeboat repo prune` removes leftovers, `lifeboat backups delete ID` an untrusted manifest",
            found.repo
        ),
    }
    .into())
}

fn leftover_line(kind: &str, leftover: &Leftover) -> String {
    let age = humantime::format_duration(std::time::Duration::from_secs(leftover.age_seconds));
    format!("{kind} {} ({} bytes, {age} old)", leftover.key, leftover.size)
}

fn print(out: &mut impl Write, found: &RepoCheck) -> anyhow::Result<()> {
    writeln!(out, "{}: {} backups", found.repo, found.backups)?;
    for (dir, reason) in &found.untrusted {
        writeln!(out, "untrusted manifest backups/{dir}/manifest.json: {reason}")?;
    }
    for (id, what) in &found.missing {
        writeln!(out, "backup {id} is damaged: {what}")?;
    }
    for leftover in &found.unreferenced {
        writeln!(out, "{}", leftover_line("unreferenced object", leftover))?;
    }
    for skewed in &found.clock_ahead {
        writeln!(
            out,
            "backup {} is named {} ahead of when the storage received it: the clock of host {} runs ahead; it is ordered and kept by the storage's time (fix the host's clock, e.g. with chrony)",
            skewed.id,
            humantime::format_duration(std::time::Duration::from_secs(skewed.ahead_seconds)),
            skewed.host
        )?;
    }
    match &found.open_uploads {
        Some(uploads) => {
            for upload in uploads {
                writeln!(out, "{}", leftover_line("open upload of", upload))?;
            }
        }
        None => writeln!(
            out,
            "open multipart uploads: not listed on this storage; let a lifecycle rule (AbortIncompleteMultipartUpload) remove them"
        )?,
    }
    if found.is_clean() {
        writeln!(out, "no findings")?;
    }
    Ok(())
}
