//! `lifeboat forget --keep-...`: retention with restic's rules; every backup's verdict is printed.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use lifeboat_core::forget::{Decision, ForgetOptions, ForgetReport, forget};
use lifeboat_core::retention::Policy;

use crate::exit::{Failure, cancel_on_signals};
use crate::output::{self, OutputFormat};
use crate::repo_flags::RepoFlags;

/// Arguments of `forget`.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Keep the N newest backups.
    #[arg(long, value_name = "N")]
    keep_last: Option<u32>,
    /// Keep the newest backup of each of the last N hours that have one.
    #[arg(long, value_name = "N")]
    keep_hourly: Option<u32>,
    /// Keep the newest backup of each of the last N days that have one.
    #[arg(long, value_name = "N")]
    keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N ISO weeks that have one.
    #[arg(long, value_name = "N")]
    keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months that have one.
    #[arg(long, value_name = "N")]
    keep_monthly: Option<u32>,
    /// Keep the newest backup of each of the last N years that have one.
    #[arg(long, value_name = "N")]
    keep_yearly: Option<u32>,
    /// Keep every backup younger than DURATION (e.g. 30d, 12h) relative to the newest backup.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    keep_within: Option<Duration>,
    /// Only consider backups with this tag; repeatable (all must match).
    #[arg(long, value_name = "TAG")]
    tag: Vec<String>,
    /// Print what would be kept and removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    repo: RepoFlags,
}

pub async fn run(args: ForgetArgs, format: OutputFormat) -> anyhow::Result<()> {
    let repo = args.repo.open().await?;
    let options = ForgetOptions {
        policy: Policy {
            last: args.keep_last,
            hourly: args.keep_hourly,
            daily: args.keep_daily,
            weekly: args.keep_weekly,
            monthly: args.keep_monthly,
            yearly: args.keep_yearly,
            within: args.keep_within,
        },
        tags: args.tag,
        dry_run: args.dry_run,
    };
    let report = forget(&repo, &options, &cancel_on_signals()).await?;
    print(&report, args.dry_run, format)?;
    // The others were judged; untrusted manifests were not, and fail the command, each named.
    if report.damaged.is_empty() {
        return Ok(());
    }
    Err(Failure {
        code: crate::exit::FAILURE,
        message: format!(
            "{} manifests cannot be trusted and were left alone: {}",
            report.damaged.len(),
            report
                .damaged
                .iter()
                .map(|(_, reason)| reason.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
    .into())
}

fn verdict(decision: &Decision, dry_run: bool) -> String {
    match (decision.keep, dry_run) {
        (true, _) => "keep".into(),
        (false, true) => "would remove".into(),
        (false, false) => "removed".into(),
    }
}

fn rules(decision: &Decision) -> String {
    decision
        .rules
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn print(report: &ForgetReport, dry_run: bool, format: OutputFormat) -> anyhow::Result<()> {
    let decisions = &report.decisions;
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => output::json(&mut out, decisions)?,
        OutputFormat::Table => output::grid(
            &mut out,
            &["GROUP", "ID", "CREATED", "ACTION", "KEPT BY"],
            &decisions
                .iter()
                .map(|d| {
                    vec![
                        d.group.clone(),
                        d.id.to_string(),
                        d.created.clone(),
                        verdict(d, dry_run),
                        rules(d),
                    ]
                })
                .collect::<Vec<_>>(),
        )?,
        OutputFormat::Simple => {
            let mut group = None;
            for decision in decisions {
                if group != Some(&decision.group) {
                    writeln!(out, "{}:", decision.group)?;
                    group = Some(&decision.group);
                }
                let by = match decision.keep {
                    true => format!(" ({})", rules(decision)),
                    false => String::new(),
                };
                writeln!(
                    out,
                    "  {:<12} {} {}{by}",
                    verdict(decision, dry_run),
                    decision.id,
                    decision.created
                )?;
            }
            let kept = decisions.iter().filter(|d| d.keep).count();
            let verb = if dry_run { "would remove" } else { "removed" };
            write!(out, "{kept} kept, {verb} {}", decisions.len() - kept)?;
            match report.segments_removed {
                0 => writeln!(out)?,
                n => writeln!(out, "; {verb} {n} captured segments no backup left can reach")?,
            }
        }
    }
    Ok(())
}
