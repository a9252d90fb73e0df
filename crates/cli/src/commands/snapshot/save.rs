//! `lifeboat snapshot save FILE`

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use lifeboat_core::snapshot_save::{SaveOptions, SaveReport, save};

use crate::etcd_flags::{EtcdFlags, check_files_exist};
use crate::exit::cancel_on_signals;
use crate::output::{self, OutputFormat};
use crate::progress::TerminalBar;

/// Arguments of `snapshot save`.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// The snapshot file to write (FILE.sha256 is written beside it).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    etcd: EtcdFlags,
}

pub async fn run(args: SaveArgs, format: OutputFormat) -> anyhow::Result<()> {
    let connect = args.etcd.resolve()?;
    check_files_exist(&connect)?;
    let options = SaveOptions {
        connect,
        path: args.file,
        force: args.force,
    };
    let bar = TerminalBar::new("snapshot");
    // Dropping the save future on a signal removes FILE.part (see fsio::PendingFile).
    let report = save(&options, &bar, &cancel_on_signals()).await?;
    print(&report, format)
}

fn print(report: &SaveReport, format: OutputFormat) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => output::json(&mut out, report)?,
        OutputFormat::Table => output::table(&mut out, &rows(report))?,
        OutputFormat::Simple => {
            writeln!(out, "Snapshot saved at {}", report.file.display())?;
            writeln!(
                out,
                "{} bytes, sha256 {}, revision {}, {} keys, cluster {}, member {} ({}), etcd {}, {:.2}s",
                report.bytes,
                report.sha256,
                report.revision,
                report.total_key,
                report.cluster_id,
                report.member_id,
                report.endpoint,
                report.etcd_version,
                report.seconds
            )?;
        }
    }
    Ok(())
}

fn rows(report: &SaveReport) -> Vec<(&'static str, String)> {
    vec![
        ("file", report.file.display().to_string()),
        ("bytes", report.bytes.to_string()),
        ("sha256", report.sha256.clone()),
        ("revision", report.revision.to_string()),
        ("total keys", report.total_key.to_string()),
        ("hash", format!("{:x}", report.hash)),
        ("cluster id", report.cluster_id.clone()),
        ("member id", report.member_id.clone()),
        ("endpoint", report.endpoint.clone()),
        ("etcd version", report.etcd_version.clone()),
        ("seconds", format!("{:.2}", report.seconds)),
    ]
}
