//! `lifeboat dump ID [--artifact NAME]`: an artefact's plain bytes on stdout (e.g. into psql).

use std::io::IsTerminal;

use anyhow::bail;
use clap::Args;
use lifeboat_core::backups::dump;

use crate::exit::cancel_on_signals;
use crate::output::OutputFormat;
use crate::repo_flags::{IdentityFlags, RepoFlags, resolve_id};

/// Arguments of `dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The backup's ID, or `latest`.
    #[arg(value_name = "ID")]
    id: String,
    /// Which artefact (needed when the backup holds several).
    #[arg(long, value_name = "NAME")]
    artifact: Option<String>,
    #[command(flatten)]
    identity: IdentityFlags,
    #[command(flatten)]
    repo: RepoFlags,
}

pub async fn run(args: DumpArgs, _format: OutputFormat) -> anyhow::Result<()> {
    if std::io::stdout().is_terminal() {
        bail!("dump writes the artefact's bytes to stdout; redirect it (> FILE) or pipe it (| psql ...)");
    }
    let repo = args.repo.open().await?;
    let identities = args.identity.require_for(&repo)?;
    let id = resolve_id(&repo, &args.id, None).await?;
    dump(
        &repo,
        &id,
        args.artifact.as_deref(),
        &identities,
        std::io::stdout(),
        &cancel_on_signals(),
    )
    .await?;
    Ok(())
}
