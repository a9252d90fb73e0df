//! `lifeboat backup --repo REPO`: a snapshot streamed from etcd into the repository.

use std::io::Write;

use clap::Args;
use lifeboat_core::backup::{BackupOptions, backup};
use lifeboat_core::repo::Manifest;

use crate::etcd_flags::{EtcdFlags, check_files_exist};
use crate::exit::shutdown_signal;
use crate::output::{self, OutputFormat};
use crate::progress::TerminalBar;
use crate::repo_flags::RepoFlags;

/// Arguments of `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    repo: RepoFlags,
    /// A label recorded in the manifest (e.g. nightly, pre-upgrade); repeatable.
    #[arg(long, value_name = "TAG")]
    tag: Vec<String>,
    /// Host name recorded in the manifest [default: this machine's].
    #[arg(long, value_name = "NAME")]
    host: Option<String>,
    #[command(flatten)]
    etcd: EtcdFlags,
}

pub async fn run(args: BackupArgs, format: OutputFormat) -> anyhow::Result<()> {
    let connect = args.etcd.resolve()?;
    check_files_exist(&connect)?;
    let repo = args.repo.open().await?;
    let options = BackupOptions {
        connect,
        host: args.host.unwrap_or_else(host_name),
        tags: args.tag,
    };
    let bar = TerminalBar::new("backup");
    let manifest = backup(&repo, &options, &bar, shutdown_signal()).await?;
    print(&manifest, format)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

fn print(manifest: &Manifest, format: OutputFormat) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => output::json(&mut out, manifest)?,
        OutputFormat::Table => output::table(&mut out, &output::manifest_rows(manifest))?,
        OutputFormat::Simple => {
            writeln!(out, "{}", manifest.id)?;
            let summary = output::manifest_summary(manifest);
            #[allow(clippy::print_stderr)]
            {
                eprintln!("Backup {} stored: {summary}", manifest.id);
            }
        }
    }
    Ok(())
}
