//! `lifeboat restore-files ID --target DIR`: a files backup unpacked with modes, owners, mtimes.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use lifeboat_core::files::restore_files;

use crate::exit::cancel_on_signals;

use crate::output::{self, OutputFormat};
use crate::repo_flags::{IdentityFlags, RepoFlags, resolve_id};

/// Arguments of `restore-files`.
#[derive(Debug, Args)]
pub struct RestoreFilesArgs {
    /// The files backup's ID, or `latest` (the newest files backup).
    #[arg(value_name = "ID")]
    id: String,
    /// An absent or empty directory to unpack into (copy what you need from there into /).
    #[arg(long, value_name = "DIR")]
    target: PathBuf,
    #[command(flatten)]
    identity: IdentityFlags,
    #[command(flatten)]
    repo: RepoFlags,
}

pub async fn run(args: RestoreFilesArgs, format: OutputFormat) -> anyhow::Result<()> {
    let repo = args.repo.open().await?;
    let identities = args.identity.require_for(&repo)?;
    let id = resolve_id(&repo, &args.id, Some("files")).await?;
    let entries = restore_files(&repo, &id, &identities, &args.target, &cancel_on_signals()).await?;
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => output::json(
            &mut out,
            &serde_json::json!({ "id": id, "target": args.target, "entries": entries }),
        )?,
        _ => writeln!(
            out,
            "Restored {entries} entries of backup {id} into {} (modes, owners and mtimes kept)",
            args.target.display()
        )?,
    }
    Ok(())
}
