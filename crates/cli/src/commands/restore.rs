//! `lifeboat restore ID --data-dir DIR`: fetch, decrypt, verify, restore natively.

use std::path::PathBuf;

use clap::Args;
use lifeboat_core::backups::restore_backup;

use crate::commands::snapshot::restore::{RestoreFlags, print};
use crate::exit::cancel_on_signals;
use crate::output::OutputFormat;
use crate::progress::TerminalBar;
use crate::repo_flags::{IdentityFlags, RepoFlags, resolve_id};

/// Arguments of `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup's ID, or `latest` (the newest etcd backup).
    #[arg(value_name = "ID")]
    id: String,
    #[command(flatten)]
    flags: RestoreFlags,
    #[command(flatten)]
    identity: IdentityFlags,
    #[command(flatten)]
    repo: RepoFlags,
}

pub async fn run(args: RestoreArgs, format: OutputFormat) -> anyhow::Result<()> {
    let repo = args.repo.open().await?;
    let identities = args.identity.require_for(&repo)?;
    let id = resolve_id(&repo, &args.id, Some("etcd")).await?;
    // The snapshot is fetched into a private temporary file beside the data directory.
    let options = args.flags.options(PathBuf::new());
    let bar = TerminalBar::new("fetch");
    let (manifest, report) =
        restore_backup(&repo, &id, &identities, &options, &bar, &cancel_on_signals()).await?;
    print(&format!("backup {}", manifest.id), &report, format)
}
