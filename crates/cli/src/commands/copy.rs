//! `lifeboat copy --from REPO --to REPO...`: what each target lacks, checked there.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use lifeboat_core::copy::{CopyReport, copy};
use lifeboat_repo::Repository;

use crate::exit::{Failure, cancel_on_signals};
use crate::output::{self, OutputFormat};
use crate::progress::TerminalBar;
use crate::repo_flags::{IdentityFlags, S3Flags, TargetS3Flags};

/// Arguments of `copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The repository to copy from [default: LIFEBOAT_REPO].
    #[arg(long, env = "LIFEBOAT_REPO", value_name = "REPO")]
    from: String,
    /// A repository to copy to; repeatable.
    #[arg(long, value_name = "REPO", required = true)]
    to: Vec<String>,
    /// Where re-encryption keeps one plain artefact while sealing it again (a private file).
    #[arg(long, value_name = "DIR", env = "TMPDIR", default_value = "/tmp")]
    temp_dir: PathBuf,
    /// The source's identity: needed only when a target encrypts to other recipients.
    #[command(flatten)]
    identity: IdentityFlags,
    #[command(flatten)]
    s3: S3Flags,
    #[command(flatten)]
    to_s3: TargetS3Flags,
}

pub async fn run(args: CopyArgs, format: OutputFormat) -> anyhow::Result<()> {
    let source = Repository::open(args.s3.storage(&args.from)?).await?;
    let identities = args.identity.load()?;
    let bar = TerminalBar::new("copy");
    // Every target is opened and checked before anything is copied.
    let target_s3 = args.to_s3.over(&args.s3);
    let mut targets = Vec::new();
    for to in &args.to {
        let target = Repository::open(target_s3.storage(to)?).await?;
        if source.config().encryption != target.config().encryption {
            args.identity.require_for(&source)?;
        }
        targets.push(target);
    }
    let cancel = cancel_on_signals();
    let mut reports = Vec::new();
    for target in &targets {
        let report = copy(&source, target, &identities, &args.temp_dir, None, &bar, &cancel).await?;
        if format == OutputFormat::Simple {
            print_simple(&report)?;
        }
        reports.push(report);
    }
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => output::json(&mut out, &reports)?,
        OutputFormat::Table => output::grid(
            &mut out,
            &["TARGET", "COPIED", "SKIPPED", "FAILED", "RE-ENCRYPTED", "LAG"],
            &reports
                .iter()
                .map(|r| {
                    vec![
                        r.target.clone(),
                        r.copied.len().to_string(),
                        r.skipped.to_string(),
                        r.failed.len().to_string(),
                        r.reencrypted.to_string(),
                        lag(r),
                    ]
                })
                .collect::<Vec<_>>(),
        )?,
        OutputFormat::Simple => {}
    }
    let failed: usize = reports.iter().map(|r| r.failed.len()).sum();
    if failed == 0 {
        return Ok(());
    }
    Err(Failure {
        code: crate::exit::FAILURE,
        message: format!("{failed} backups could not be copied; they are not in the target (rerun to retry)"),
    }
    .into())
}

fn lag(report: &CopyReport) -> String {
    report
        .lag_seconds
        .map(|s| humantime::format_duration(std::time::Duration::from_secs(s)).to_string())
        .unwrap_or_else(|| "no backups".into())
}

fn print_simple(report: &CopyReport) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: copied {}, skipped {}, failed {}{}, newest backup {} old",
        report.target,
        report.copied.len(),
        report.skipped,
        report.failed.len(),
        if report.reencrypted { " (re-encrypted)" } else { "" },
        lag(report)
    )?;
    for id in &report.copied {
        writeln!(out, "  copied {id}")?;
    }
    for (id, error) in &report.failed {
        writeln!(out, "  FAILED {id}: {error}")?;
    }
    Ok(())
}
