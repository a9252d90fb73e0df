//! `lifeboat backup --repo REPO`: a snapshot streamed from etcd into the repository, or with
//! `--stream NAME -- CMD...` a command's output.

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use lifeboat_core::backup::{BackupOptions, BackupOutcome, Labels, backup_if_changed};
use lifeboat_core::files::{FilesOptions, KUBEADM_SET, backup_files};
use lifeboat_core::stream::backup_stream;
use lifeboat_repo::Manifest;

use crate::etcd_flags::{EtcdFlags, check_files_exist};
use crate::exit::cancel_on_signals;
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
    /// Store the standard output of the command after `--` as artefact NAME (e.g. a pg_dump)
    /// instead of an etcd snapshot; a failing command makes no backup.
    #[arg(long, value_name = "NAME", requires = "command")]
    stream: Option<String>,
    /// The command whose output --stream stores.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
    /// Store the control-plane files (kubeadm's PKI, kubeconfigs, static Pod manifests, kubelet
    /// configuration) instead of an etcd snapshot.
    #[arg(long, conflicts_with = "stream")]
    files: bool,
    /// The tree --files reads (a node's `/`, or a copy of one).
    #[arg(long, value_name = "DIR", default_value = "/", requires = "files")]
    root: PathBuf,
    /// Another path or glob (relative to --root) for --files; repeatable.
    #[arg(long, value_name = "PATTERN", requires = "files")]
    include: Vec<String>,
    /// A glob (relative to --root) --files leaves out, e.g. 'etc/kubernetes/pki/*.key'; repeatable.
    #[arg(long, value_name = "PATTERN", requires = "files")]
    exclude: Vec<String>,
    /// Store nothing when the cluster has not changed since its newest backup in the repository
    /// (same revision, same HashKV there): that backup is marked current instead, and counts as
    /// fresh.
    #[arg(long, conflicts_with_all = ["stream", "files"])]
    skip_unchanged: bool,
    #[command(flatten)]
    etcd: EtcdFlags,
}

pub async fn run(args: BackupArgs, format: OutputFormat) -> anyhow::Result<()> {
    let labels = Labels {
        host: args.host.unwrap_or_else(super::host_name),
        tags: args.tag,
        cluster: None,
    };
    let cancel = cancel_on_signals();
    let manifest = match args.stream {
        None if args.files => {
            let repo = args.repo.open().await?;
            let options = FilesOptions {
                root: args.root,
                include: KUBEADM_SET
                    .iter()
                    .map(|p| p.to_string())
                    .chain(args.include)
                    .collect(),
                exclude: args.exclude,
            };
            let bar = TerminalBar::new("files");
            backup_files(&repo, &options, &labels, &bar, &cancel).await?.0
        }
        Some(name) => {
            let repo = args.repo.open().await?;
            let bar = TerminalBar::new("stream");
            backup_stream(&repo, &name, &args.command, &labels, &bar, &cancel).await?
        }
        None => {
            if !args.command.is_empty() {
                bail!("a command after -- is only run with --stream NAME");
            }
            let connect = args.etcd.resolve()?;
            check_files_exist(&connect)?;
            let repo = args.repo.open().await?;
            let options = BackupOptions { connect, labels };
            let bar = TerminalBar::new("backup");
            match args.skip_unchanged {
                true => match backup_if_changed(&repo, &options, &bar, &cancel).await? {
                    BackupOutcome::Stored(manifest) => manifest,
                    BackupOutcome::Unchanged { same_as, revision } => {
                        return print_unchanged(&same_as, revision, format);
                    }
                },
                false => lifeboat_core::backup::backup(&repo, &options, &bar, &cancel).await?,
            }
        }
    };
    print(&manifest, format)
}

/// What `--skip-unchanged` says when nothing was stored.
fn print_unchanged(same_as: &Manifest, revision: i64, format: OutputFormat) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => output::json(
            &mut out,
            &serde_json::json!({"result": "unchanged", "same_as": same_as.id.to_string(), "revision": revision}),
        )?,
        OutputFormat::Table => output::table(
            &mut out,
            &[
                ("result", "unchanged".to_string()),
                ("same as", same_as.id.to_string()),
                ("revision", revision.to_string()),
            ],
        )?,
        OutputFormat::Simple => {
            writeln!(out, "{}", same_as.id)?;
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "Backup unchanged: the cluster is at revision {revision}, as backup {} holds it; nothing stored, that backup is marked current",
                    same_as.id
                );
            }
        }
    }
    Ok(())
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
